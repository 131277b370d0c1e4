"""Data-parallel training: two CPU processes under torchrun (gloo) against one process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import ddp_worker
from conftest import EVAL_FLAGS, TINY_FLAGS, write_mnist_root
from ganforge.cli import main
from ganforge.steplog import read_step_log
from ganforge.training.distributed import Shard, wrap_for_data_parallel
from ganforge.training.performance import cpu_has_native_bf16

WORKER = Path(ddp_worker.__file__)
#: How closely two processes match one, in what the default precision (auto) computes here:
#: fp32 rounds split matmuls at the 1e-6 scale; bf16 keeps 8 bits of mantissa, so sums split
#: over two processes round apart at the 1e-3 scale.
LOSS_REL, FID_REL = (1e-2, 1e-2) if cpu_has_native_bf16() else (1e-5, 1e-4)


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node 2 ARGS`` with this interpreter."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", *args]
    # A session of its own, so that a timeout ends the workers too, not torchrun alone.
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


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
        assert mine["d_loss"] == pytest.approx(theirs["d_loss"], rel=LOSS_REL)
        assert mine["g_loss"] == pytest.approx(theirs["g_loss"], rel=LOSS_REL)
    # The DDP run's checkpoint is an ordinary one: a single process samples from it.
    grid = tmp_path / "grid.png"
    assert main(["sample", str(tmp_path / "ddp"), "--num", "4", "--grid", str(grid)]) == 0
    assert grid.is_file()


def test_a_fine_tuned_accumulating_run_under_torchrun_matches_one_process(tmp_path):
    # --init-from, --freeze-d, --accumulate and DiffAugment together: 2 processes × 2
    # micro-batches of 4 make the same global batch of 16 as one process's whole batch.
    source = tmp_path / "source"
    assert main(["train", "--out", str(source), *TINY_FLAGS, "--max-steps", "2"]) == 0
    flags = [*TINY_FLAGS, "--max-steps", "3", "--batch-size", "16", "--init-from", str(source)]
    flags += ["--freeze-d", "1", "--augment", "diffaugment", "--precision", "fp32"]
    ddp = ["-m", "ganforge", "train", "--out", str(tmp_path / "ddp"), *flags, "--accumulate", "2"]
    result = torchrun(*ddp, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert main(["train", "--out", str(tmp_path / "one"), *flags]) == 0
    assert (tmp_path / "ddp" / "init_from.json").is_file()
    ends = [
        torch.load(sorted((tmp_path / run / "checkpoints").glob("step_*.pt"))[-1])
        for run in ("ddp", "one")
    ]
    for key in ("generator", "discriminator"):
        for name, value in ends[0][key].items():
            torch.testing.assert_close(value, ends[1][key][name], rtol=0, atol=1e-4)
    frozen = ends[0]["discriminator"]["net.1.weight"]  # mlp D's first block
    start = torch.load(sorted((source / "checkpoints").glob("step_*.pt"))[-1])
    assert torch.equal(frozen, start["discriminator"]["net.1.weight"])


def test_torchrun_run_evaluates_on_rank_0_alone_like_a_single_process(tmp_path, monkeypatch):
    # A data root of its own, so that the floor and ceiling (cached in it) are scored under
    # torchrun too; rank 1 is gone by the time rank 0 scores the final samples.
    monkeypatch.setenv("GANFORGE_DATA", str(write_mnist_root(tmp_path / "data")))
    flags = [*TINY_FLAGS, *EVAL_FLAGS, "--max-steps", "4", "--batch-size", "16"]
    result = torchrun(
        "-m", "ganforge", "train", "--out", str(tmp_path / "ddp"), *flags, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for noise in ("Traceback", "Connection closed", "deprecated"):
        assert noise not in result.stderr, result.stderr[-2000:]
    assert main(["train", "--out", str(tmp_path / "one"), *flags]) == 0

    def contents(run: Path) -> set[str]:
        return {str(p.relative_to(run)) for p in run.rglob("*")}

    ddp, one = tmp_path / "ddp", tmp_path / "one"
    assert {"summary.json", "eval.json", "report.html"} <= contents(ddp)
    assert contents(ddp) == contents(one)
    # Same weights up to float rounding (see above), so the same scores.
    fids = [
        [x["fid"] for x in read_step_log(run / "metrics.jsonl") if "fid" in x] for run in (ddp, one)
    ]
    assert len(fids[0]) == 2 and fids[0] == pytest.approx(fids[1], rel=FID_REL)
    mine, theirs = (json.loads((run / "eval.json").read_text()) for run in (ddp, one))
    assert mine["samples"]["fid"] == pytest.approx(theirs["samples"]["fid"], rel=FID_REL)


def test_data_parallel_wrap_syncs_no_buffers_per_forward_and_warns_nothing(tmp_path):
    import torch.distributed as dist

    # A one-process group is enough for DDP to be built; the shard says "distributed" so that
    # the wrap happens.
    dist.init_process_group("gloo", init_method=(tmp_path / "store").as_uri(), rank=0, world_size=1)
    try:
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch's FutureWarning for broadcast_buffers
            wrapped = wrap_for_data_parallel(model, Shard(0, 2), torch.device("cpu"))
        assert wrapped.module is model and not wrapped.forward_sync_buffers
    finally:
        dist.destroy_process_group()


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
    single = read_step_log(tmp_path / "one" / "metrics.jsonl")
    for run in ("ddp-first", "one-first"):
        moved = read_step_log(tmp_path / run / "metrics.jsonl")
        assert [r["step"] for r in moved] == [1, 2, 3, 4]
        for mine, theirs in zip(moved, single, strict=True):
            assert mine["d_loss"] == pytest.approx(theirs["d_loss"], rel=LOSS_REL), run
            assert mine["g_loss"] == pytest.approx(theirs["g_loss"], rel=LOSS_REL), run


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


FAILING = Path(__file__).parent / "ddp_failing_train.py"


@pytest.mark.parametrize(("failing_rank", "kind"), [(0, "disk-full"), (1, "crash")])
def test_a_failing_rank_is_heard_by_every_rank(tmp_path, failing_rank, kind):
    run = tmp_path / "run"
    flags = [*TINY_FLAGS, "--max-steps", "30", "--batch-size", "16", "--sample-every", "1"]
    inject = [str(FAILING), str(failing_rank), "3", kind]
    result = torchrun(*inject, "train", "--out", str(run), *flags, cwd=tmp_path)
    assert result.returncode != 0
    # Every rank stopped at the failing iteration, none trained on to the end.
    steps = [r["step"] for r in read_step_log(run / "metrics.jsonl") if "d_loss" in r]
    assert steps == [1, 2, 3]
    errors = [line for line in result.stderr.splitlines() if "ganforge: error:" in line]
    if failing_rank == 0:
        # Rank 0 says what failed; rank 1 says that rank 0 failed, and why, in the same line.
        assert any(
            line.endswith(
                f"cannot write to the run folder {run}: No space left on device; the "
                f"last checkpoint, {run / 'checkpoints' / 'step_0000000.pt'}, is intact: "
                f"make room, then continue with --resume {run}"
            )
            for line in errors
        ), result.stderr[-3000:]
        assert any("rank 0 failed at step 3: cannot write to the run folder" in e for e in errors)
    else:
        # Rank 0 keeps the iteration every rank finished, and names the rank and its error.
        checkpoint = run / "checkpoints" / "step_0000003.pt"
        assert checkpoint.is_file()
        assert any(
            f"rank 1 failed at step 3: RuntimeError: injected failure; the last checkpoint is "
            f"{checkpoint}" in line
            for line in errors
        ), result.stderr[-3000:]


FINALISATION_PROBE = """
import atexit
from ganforge.cli import script


class Probe:
    def __del__(self):
        print("interpreter finalised", flush=True)


probe = Probe()
atexit.register(print, "exit handlers ran", flush=True)
script()
"""


@pytest.mark.parametrize("under_torchrun", [False, True])
def test_a_torchrun_worker_leaves_without_finalising_the_interpreter(under_torchrun):
    # DDP keeps its gloo group's threads alive past destroy_process_group, and one of them
    # aborted about one worker in ten during interpreter finalisation (SIGABRT after a good
    # run); workers skip that phase, keeping exit handlers and the exit status.
    env = {k: v for k, v in os.environ.items() if k != "TORCHELASTIC_RUN_ID"}
    if under_torchrun:
        env["TORCHELASTIC_RUN_ID"] = "test"
    result = subprocess.run(
        [sys.executable, "-c", FINALISATION_PROBE, "presets"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "colour" in result.stdout  # the command's own output, flushed
    assert "exit handlers ran" in result.stdout
    assert ("interpreter finalised" in result.stdout) is not under_torchrun
