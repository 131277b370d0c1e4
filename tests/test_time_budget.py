"""Quality per second: training time logged with every evaluation, ``--time-budget``, and FID
against training seconds in the report and in ``ganforge compare``."""

from __future__ import annotations

import json

from conftest import EVAL_FLAGS, tiny_train
from ganforge.cli import main
from ganforge.steplog import read_step_log


def test_each_evaluation_logs_the_training_seconds_spent_so_far(tmp_path):
    run = tmp_path / "run"
    assert tiny_train(run, "--max-steps", "6", *EVAL_FLAGS) == 0
    records = read_step_log(run / "metrics.jsonl")
    evaluations = [r for r in records if "fid" in r]
    assert [r["step"] for r in evaluations] == [2, 4, 6]
    times = [r["train_time_s"] for r in evaluations]
    assert times == sorted(times) and times[0] > 0
    # The steps alone: less than the wall time since the start, which includes the side work.
    wall = {r["step"]: r["time"] for r in records if "d_loss" in r}
    assert all(r["train_time_s"] <= wall[r["step"]] + 1e-3 for r in evaluations)  # rounded
    summary = json.loads((run / "summary.json").read_text())
    assert 0 < summary["train_time_s"] <= summary["wall_time_s"]
    assert "FID against training time" in (run / "report.html").read_text()


def test_a_time_budget_ends_the_run_as_its_last_step_would_and_resumes_when_raised(
    tmp_path, capsys
):
    run = tmp_path / "run"
    # A budget that the first iteration spends: the run finishes after it, checkpoint and all.
    assert tiny_train(run, "--time-budget", "0.001", "--max-steps", "50", *EVAL_FLAGS) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 1 and summary["stopped_by"] == "time_budget"
    assert (run / "checkpoints" / "step_0000001.pt").is_file() and (run / "eval.json").is_file()
    stops = [r for r in read_step_log(run / "metrics.jsonl") if "stopped" in r]
    assert len(stops) == 1 and stops[0]["step"] == 1
    assert stops[0]["stopped"].startswith("time budget of 0.001 s spent")

    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    assert "give a larger --time-budget to train on" in capsys.readouterr().err
    resumed = ["train", "--resume", str(run), "--time-budget", "1000", "--max-steps", "3"]
    assert main([*resumed, "--quiet"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["stopped_by"] == "steps"


def test_compare_draws_fid_against_training_seconds(tmp_path, capsys):
    runs = []
    for seed in ("1", "2"):
        runs.append(tmp_path / f"run-{seed}")
        assert tiny_train(runs[-1], "--max-steps", "4", "--seed", seed, *EVAL_FLAGS) == 0
    chart, timed = tmp_path / "compare.png", tmp_path / "time.png"
    args = ["compare", *map(str, runs), "--num", "64", "--chart", str(chart)]
    assert main([*args, "--time-chart", str(timed)]) == 0
    assert (
        timed.stat().st_size > 0
        and f"FID against training time: {timed}" in capsys.readouterr().out
    )
    assert main([*args, "--time-chart", str(tmp_path / "time.jpg")]) == 2
    assert "must end in .png" in capsys.readouterr().err
