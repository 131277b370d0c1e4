"""Side work as hooks: a new logger without an edit to the loop, the Weights & Biases hook in its
offline mode, the run's length as the user gave it, and the plan's arithmetic."""

from __future__ import annotations

import json
import sys
from typing import ClassVar

import pytest
import torch

from conftest import EVAL_FLAGS, tiny_train
from ganforge.steplog import read_step_log
from ganforge.training import hooks as hooks_module
from ganforge.training.hooks import Hook, Hooks
from ganforge.training.schedule import Iteration, RunPlan, checkpointed_epochs


class RecordingLogger(Hook):
    """A logger of a test's own: remembers what it heard."""

    heard: ClassVar[list[tuple]] = []

    def __init__(self, config, run_dir, start_step) -> None:
        RecordingLogger.heard = [("start", start_step)]

    def after_step(self, it: Iteration) -> None:
        self.heard.append(("step", it.step, sorted(it.stats)))

    def on_record(self, step, kind, record, scalars) -> None:
        self.heard.append((kind, step, sorted(scalars)))

    def on_images(self, step, name, images) -> None:
        self.heard.append(("images", step, tuple(images.shape)))

    def close(self) -> None:
        self.heard.append(("close",))


def test_a_new_logger_is_one_hook_and_one_table_line(tmp_path, monkeypatch):
    monkeypatch.setattr(hooks_module, "LOGGERS", {"tensorboard": RecordingLogger})
    run = tmp_path / "run"
    assert tiny_train(run, "--max-steps", "4", "--tensorboard", *EVAL_FLAGS) == 0
    heard = RecordingLogger.heard
    assert heard[0] == ("start", 0) and heard[-1] == ("close",)
    assert [h[1] for h in heard if h[0] == "step"] == [1, 2, 3, 4]
    assert all("d_loss" in h[2] and "g_loss" in h[2] for h in heard if h[0] == "step")
    evaluations = [h for h in heard if h[0] == "eval"]
    assert [h[1] for h in evaluations] == [2, 4] and "fid" in evaluations[0][2]
    # The grids of steps 2 and 4 and the final one, 16 images each.
    assert [h[1:] for h in heard if h[0] == "images"] == [
        (2, (16, 1, 28, 28)),
        (4, (16, 1, 28, 28)),
        (4, (16, 1, 28, 28)),
    ]


def test_hooks_run_when_due_and_every_hook_hears_a_record():
    class Every2(RecordingLogger):
        def __init__(self) -> None:
            self.heard = []

        def due(self, it: Iteration) -> bool:
            return it.step % 2 == 0

    from ganforge.console import SILENT

    first, second = Every2(), Every2()
    hooks = Hooks(SILENT, [first, second])
    for step in (1, 2, 3, 4):
        hooks.after_step(Iteration(step, 0, False, {"d_loss": 1.0}, torch.zeros(1)))
    hooks.record(4, "eval", {"fid": 3.0}, {"fid": 3.0})
    hooks.close()
    for hook in (first, second):
        assert hook.heard == [
            ("step", 2, ["d_loss"]),
            ("step", 4, ["d_loss"]),
            ("eval", 4, ["fid"]),
            ("close",),
        ]
    assert hooks.steps_seen == 4


def test_the_wandb_hook_logs_offline_and_resumes_the_same_wandb_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    assert tiny_train(run, "--max-steps", "4", "--wandb", *EVAL_FLAGS) == 0
    run_id = (run / "wandb-id").read_text().strip()
    offline = sorted((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and offline[0].name.endswith(run_id)
    (records,) = offline[0].glob("run-*.wandb")  # what `wandb sync` would send
    logged = records.read_bytes()
    assert logged.count(b"train/d_loss") >= 4 and b"eval/fid" in logged
    grids = sorted((offline[0] / "files" / "media" / "images").glob("samples_*.png"))
    assert {g.name.split("_")[1] for g in grids} == {"2", "4"}  # the final grid is at step 4

    assert tiny_train(run.parent / "other", "--max-steps", "2", "--quiet") == 0  # no --wandb
    assert not (run.parent / "other" / "wandb").exists()
    from ganforge.cli import main

    assert main(["train", "--resume", str(run), "--max-steps", "6", "--quiet"]) == 0
    assert (run / "wandb-id").read_text().strip() == run_id  # the same W&B run goes on
    assert len(sorted((run / "wandb").glob(f"offline-run-*{run_id}"))) == 2


def test_wandb_missing_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb → ImportError
    assert tiny_train(tmp_path / "run", "--max-steps", "2", "--wandb") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "ganforge: error: --wandb needs the wandb package: pip install 'ganforge[wandb]'"
    ]
    assert not (tmp_path / "run").exists()


def test_a_length_the_user_gives_is_the_runs_length(tmp_path):
    # 64 images of batch 32: the preset's 10 epochs are 20 iterations; --max-steps 25 wins.
    run = tmp_path / "run"
    assert tiny_train(run, "--train-size", "64", "--max-steps", "25") == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 25 and summary["stopped_by"] == "steps"
    assert json.loads((run / "config.json").read_text())["epochs"] == 0


def test_a_run_that_ends_before_the_length_asked_for_says_why(tmp_path):
    run = tmp_path / "run"
    assert tiny_train(run, "--train-size", "64", "--epochs", "2", "--max-steps", "25") == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["stopped_by"] == "epochs"
    stops = [r for r in read_step_log(run / "metrics.jsonl") if "stopped" in r]
    assert [r["stopped"] for r in stops] == ["--epochs 2 ended the run before --max-steps 25"]


@pytest.mark.parametrize(
    ("epochs", "max_steps", "expected"),
    [
        (5, None, (35, "epochs")),
        (5, 1000, (35, "epochs")),
        (5, 20, (20, "steps")),
        (0, 1000, (1000, "steps")),
        (0, None, (None, "time_budget")),
    ],
)
def test_the_plan_of_a_run(epochs, max_steps, expected):
    plan = RunPlan.of(7, epochs, max_steps)
    assert (plan.total, plan.ends_by) == expected


def test_short_epochs_are_checkpointed_every_kth():
    assert checkpointed_epochs(300) == 1 and checkpointed_epochs(7) == 36
    plan = RunPlan.of(7, 100, None)
    assert [e for e in range(80) if plan.epoch_checkpoint_due(e)] == [35, 71]
