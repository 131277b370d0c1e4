"""Data-parallel training: two CPU processes under torchrun (gloo) against one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ddp_worker
from conftest import TINY_FLAGS
from ganforge.cli import main
from ganforge.distributed import Shard
from ganforge.reporting import read_metrics

WORKER = Path(ddp_worker.__file__)


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node 2 ARGS`` with this interpreter."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_shards_of_a_batch_are_disjoint_and_cover_it():
    parts = [list(range(12))[Shard(rank, 3).local_slice(12)] for rank in range(3)]
    assert parts == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


@pytest.mark.parametrize("architecture", ["mlp", "dcgan"])
def test_two_processes_hold_identical_weights_and_match_one(architecture, tmp_path):
    steps = 5 if architecture == "mlp" else 3
    out = tmp_path / "ddp.pt"
    result = torchrun(str(WORKER), str(out), architecture, str(steps), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    ddp = torch.load(out)
    # DDP all-reduces the gradients, so both ranks apply the very same update each step.
    assert ddp["rank_gaps"] == [0.0] * steps
    single = ddp_worker.run(architecture, steps)
    if architecture == "dcgan":
        # Each rank normalises with the BatchNorm statistics of its half batch (SyncBatchNorm
        # is CUDA-only), so this is a different run from the single process's: what must hold
        # is that the ranks agree (above) and that it trained.
        assert all(torch.isfinite(torch.tensor(list(s.values()))).all() for s in ddp["stats"])
        assert (ddp["weights"] - single["weights"]).abs().max() > 0
        return
    # Same global batch and noise: the two runs differ by float rounding only (split
    # matmuls, summed gradients), which Adam's normalised steps keep at the 1e-5 scale.
    for mine, theirs in zip(ddp["stats"], single["stats"], strict=True):
        for key in mine:
            assert mine[key] == pytest.approx(theirs[key], rel=1e-5, abs=1e-6), key
    torch.testing.assert_close(ddp["weights"], single["weights"], rtol=0, atol=1e-4)


def test_torchrun_cli_run_matches_a_single_process_run(tmp_path):
    flags = [*TINY_FLAGS, "--max-steps", "4", "--batch-size", "16", "--sample-every", "2"]
    result = torchrun(
        "-m", "ganforge", "train", "--out", str(tmp_path / "ddp"), *flags, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert main(["train", "--out", str(tmp_path / "one"), *flags]) == 0

    ddp_summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert ddp_summary["processes"] == 2 and ddp_summary["steps"] == 4
    lines = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4]  # one writer: rank 0
    single = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    for mine, theirs in zip(lines, single, strict=True):
        assert mine["d_loss"] == pytest.approx(theirs["d_loss"], rel=1e-5)
        assert mine["g_loss"] == pytest.approx(theirs["g_loss"], rel=1e-5)
    # The DDP run's checkpoint is an ordinary one: a single process samples from it.
    grid = tmp_path / "grid.png"
    assert main(["sample", str(tmp_path / "ddp"), "--num", "4", "--grid", str(grid)]) == 0
    assert grid.is_file()


def test_runs_move_between_one_process_and_torchrun_by_resuming(tmp_path):
    flags = [*TINY_FLAGS, "--batch-size", "16", "--sample-every", "100"]
    assert main(["train", "--out", str(tmp_path / "one"), *flags, "--max-steps", "4"]) == 0
    # Two steps under torchrun, two more in one process; and the other way round.
    result = torchrun(
        "-m", "ganforge", "train", "--out", str(tmp_path / "ddp-first"), *flags,
        "--max-steps", "2", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    resume = ["train", "--resume", str(tmp_path / "ddp-first"), "--max-steps", "4", "--quiet"]
    assert main(resume) == 0
    assert main(["train", "--out", str(tmp_path / "one-first"), *flags, "--max-steps", "2"]) == 0
    result = torchrun(
        "-m", "ganforge", "train", "--resume", str(tmp_path / "one-first"), "--max-steps", "4",
        "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    single = read_metrics(tmp_path / "one" / "metrics.jsonl")
    for run in ("ddp-first", "one-first"):
        moved = read_metrics(tmp_path / run / "metrics.jsonl")
        assert [r["step"] for r in moved] == [1, 2, 3, 4]
        for mine, theirs in zip(moved, single, strict=True):
            assert mine["d_loss"] == pytest.approx(theirs["d_loss"], rel=1e-5), run
            assert mine["g_loss"] == pytest.approx(theirs["g_loss"], rel=1e-5), run


def test_every_rank_stops_with_rank_0s_error_instead_of_waiting_for_it(tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("an earlier run")
    result = torchrun("-m", "ganforge", "train", "--out", str(used), *TINY_FLAGS, cwd=tmp_path)
    assert result.returncode != 0
    message = f"ganforge: error: run folder {used} already exists and is not empty"
    assert result.stderr.count(message) == 2  # rank 0 and rank 1 both say why, then exit
    assert [p.name for p in used.iterdir()] == ["keep.txt"]


def test_a_global_batch_must_split_evenly_over_processes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert main(["train", "--out", str(tmp_path / "run"), *TINY_FLAGS]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "ganforge: error: batch size 32 does not split evenly over 3 processes; "
        "the batch size is the global batch"
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("penalty", ["--gp-weight", "--r1-gamma"])
def test_gradient_penalties_are_refused_under_torchrun(tmp_path, monkeypatch, capsys, penalty):
    for name, value in (("WORLD_SIZE", "2"), ("RANK", "0"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(name, value)
    assert main(["train", "--out", str(tmp_path / "run"), *TINY_FLAGS, penalty, "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "DDP does not support: train them in one process" in err
    assert not (tmp_path / "run").exists()


def test_sync_bn_on_the_cpu_is_refused_in_one_line(tmp_path, capsys):
    flags = [*TINY_FLAGS, "--preset", "dcgan", "--sync-bn", "--device", "cpu"]
    assert main(["train", "--out", str(tmp_path / "run"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SyncBatchNorm does not run on the CPU" in err
    assert not (tmp_path / "run").exists()
