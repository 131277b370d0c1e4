"""Runs that survive: exact resume, signals, SIGKILL at random moments, NaNs, full disks.

The promise under test: whatever stops a run (Ctrl-C, ``kill``, ``kill -9``, a NaN, a full
disk), what it had written stays loadable, and ``--resume`` continues it to the very weights
the uninterrupted run reaches.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import EVAL_FLAGS, TINY_FLAGS, tiny_train
from ganforge import __version__
from ganforge.checkpoint_file import checkpoint_paths, load_checkpoint
from ganforge.cli import main
from ganforge.objectives import OBJECTIVES, Objective, gan_discriminator_loss
from ganforge.steplog import read_step_log
from ganforge.training.schedule import checkpointed_epochs


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def newest(run: Path) -> dict:
    return load_checkpoint(checkpoint_paths(run)[-1])


def assert_same_state(a: dict, b: dict) -> None:
    """Bit-identical weights, BatchNorm buffers and optimizer states."""
    assert a["step"] == b["step"]
    for key in ("generator", "discriminator", "generator_ema"):
        assert (a.get(key) is None) == (b.get(key) is None)
        if a.get(key) is None:
            continue
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"
    assert a.get("ada") == b.get("ada")
    for key in ("g_optimizer", "d_optimizer"):
        for index, state in a[key]["state"].items():
            for name, value in state.items():
                assert torch.equal(value, b[key]["state"][index][name]), f"{key}[{index}].{name}"


def logged_steps(run: Path) -> list[dict]:
    """The per-step records without their wall-clock times."""
    return [
        {k: v for k, v in record.items() if k != "time"}
        for record in read_step_log(run / "metrics.jsonl")
        if "d_loss" in record or "loss" in record
    ]


# 600 training images in batches of 32: 18 iterations per epoch; 320 images: 10.
@pytest.mark.parametrize(
    ("preset", "images", "first", "total", "extra"),
    [
        ("gan", 600, 7, 14, ()),  # stops and ends mid-epoch
        ("gan", 600, 18, 36, ()),  # stops and ends on epoch boundaries
        # BatchNorm, standing statistics re-estimated for each checkpoint; the continuation
        # crosses an epoch boundary
        ("dcgan", 320, 6, 12, ()),
        ("wgan-gp", 320, 1, 3, ()),  # 5 critic updates of 32 per step, penalty draws: 2 per epoch
        ("hinge-sn", 320, 6, 12, ()),  # spectral norm's power-iteration vectors
        ("dcgan-ema", 320, 6, 12, ()),  # the generator's EMA
        ("cgan", 320, 6, 12, ()),  # labels of real images, and of fakes drawn with the noise
        ("vae", 320, 6, 12, ()),  # the reparameterisation's normal draws
        ("dcgan", 320, 6, 12, ("--no-standing-stats",)),  # the running statistics alone
        # ADA's p, moved every 4 iterations by 4·32/2000, and the signs counted between
        ("dcgan", 320, 6, 12, ("--augment", "ada", "--ada-images", "2000")),
        # every GAN hack at once: augmentation, label draws, annealed noise, two decaying rates
        (
            "gan",
            600,
            7,
            14,
            (
                "--augment",
                "diffaugment",
                "--real-label",
                "0.9",
                "--flip-labels",
                "0.1",
                "--instance-noise",
                "0.2",
                "--lr-d",
                "2e-3",
                "--lr-g",
                "5e-4",
                "--lr-decay",
                "linear",
            ),
        ),
    ],
)
def test_resume_gives_the_uninterrupted_run_bit_for_bit(
    tmp_path, preset, images, first, total, extra
):
    whole, split = tmp_path / "whole", tmp_path / "split"
    flags = ["--preset", preset, "--train-size", str(images), *extra]
    assert tiny_train(whole, *flags, "--max-steps", str(total)) == 0
    assert tiny_train(split, *flags, "--max-steps", str(first)) == 0
    assert main(["train", "--resume", str(split), "--max-steps", str(total), "--quiet"]) == 0
    assert_same_state(newest(split), newest(whole))
    assert logged_steps(split) == logged_steps(whole)  # the same losses at every step
    summary = json.loads((split / "summary.json").read_text())
    assert summary["steps"] == total
    if "--lr-decay" in extra:  # the last step's rate had fallen, the same in both runs
        base = float(extra[extra.index("--lr-g") + 1])
        assert 0 < newest(split)["g_optimizer"]["param_groups"][0]["lr"] < base
    assert json.loads((split / "config.json").read_text())["max_steps"] == total


def test_resume_refusals(tmp_path, capsys):
    run = tmp_path / "run"
    assert tiny_train(run, "--max-steps", "3") == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    assert "has finished all its 3 steps" in error_lines(capsys)[0]
    assert main(["train", "--resume", str(run), "--lr", "0.5", "--batch-size", "64"]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 2  # one line per refused flag
    assert "--lr cannot change when resuming (the run has 0.001); start a new run" in lines[1]
    assert "--batch-size cannot change when resuming (the run has 32)" in lines[0]
    assert main(["train", "--resume", str(run), "--preset", "dcgan"]) == 2
    assert "--preset cannot be given with it" in error_lines(capsys)[0]
    assert main(["train", "--resume", str(tmp_path / "nowhere")]) == 2
    assert "no such run folder" in error_lines(capsys)[0]
    # Giving a run's own value again is not a change.
    assert main(["train", "--resume", str(run), "--lr", "0.001", "--max-steps", "3"]) == 2
    assert "has finished" in error_lines(capsys)[0]
    assert before == {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_resume_finishes_a_run_stopped_after_its_last_step(tmp_path):
    """Killed during its final evaluation or report: resuming trains nothing and finishes."""
    run = tmp_path / "run"
    assert tiny_train(run, "--max-steps", "3") == 0
    for name in ("summary.json", "report.html", "loss_curve.png"):
        (run / name).unlink()
    log = (run / "metrics.jsonl").read_text()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert json.loads((run / "summary.json").read_text())["steps"] == 3
    assert (run / "report.html").is_file() and (run / "loss_curve.png").is_file()
    assert (run / "metrics.jsonl").read_text() == log


def test_a_checkpoint_from_a_newer_ganforge_says_what_differs(tmp_path, capsys):
    run = tmp_path / "run"
    assert tiny_train(run, "--max-steps", "3") == 0
    checkpoint = torch.load(checkpoint_paths(run)[-1], weights_only=True)
    checkpoint.update(ganforge_version="9.0.0", step=4)
    checkpoint["config"]["new_knob"] = 1
    torch.save(checkpoint, run / "checkpoints" / "step_0000004.pt")
    assert main(["train", "--resume", str(run), "--max-steps", "8"]) == 2
    line = error_lines(capsys)[0]
    assert "written by ganforge 9.0.0 with config keys this ganforge" in line
    assert f"({__version__}) does not know: new_knob" in line
    checkpoint.update(format_version=2)
    torch.save(checkpoint, run / "checkpoints" / "step_0000004.pt")
    assert main(["train", "--resume", str(run), "--max-steps", "8"]) == 2
    assert (
        f"has checkpoint format 2, this ganforge ({__version__}) reads format 1"
        in (error_lines(capsys)[0])
    )


def test_a_broken_newest_checkpoint_falls_back_to_the_one_before(tmp_path, capsys):
    run = tmp_path / "run"
    assert tiny_train(run, "--max-steps", "6", "--checkpoint-every", "3") == 0
    (run / "summary.json").unlink()
    newest_path = checkpoint_paths(run)[-1]
    newest_path.write_bytes(newest_path.read_bytes()[:1000])  # a disk fault, not a kill
    assert main(["train", "--resume", str(run), "--max-steps", "6"]) == 0  # not --quiet
    assert "skipped a checkpoint" in capsys.readouterr().err
    assert newest(run)["step"] == 6


def test_best_checkpoint_is_the_lowest_fid_and_survives_rotation(tmp_path):
    run = tmp_path / "run"
    assert tiny_train(run, *EVAL_FLAGS, "--max-steps", "8", "--keep-checkpoints", "1") == 0
    fids = {r["step"]: r["fid"] for r in read_step_log(run / "metrics.jsonl") if "fid" in r}
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["fid"] == min(fids.values())
    assert best["step"] == min(fids, key=fids.get)
    assert [p.name for p in checkpoint_paths(run)] == ["step_0000008.pt"]
    assert json.loads((run / "summary.json").read_text())["best_fid_during_training"] == best["fid"]


def test_warnings_reach_the_report(tmp_path):
    run = tmp_path / "run"
    assert tiny_train(run, "--max-steps", "3") == 0
    with open(run / "metrics.jsonl", "a") as log:
        log.write(json.dumps({"step": 3, "warning": "step 3: mode collapse <b>"}) + "\n")
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "Warnings during training" in page and "step 3: mode collapse &lt;b&gt;" in page


# ---------------------------------------------------------------------------------------------
# Signals and kills: real subprocesses


def start_training(out: Path, *flags: str, resume: bool = False) -> subprocess.Popen:
    where = ["--resume", str(out)] if resume else ["--out", str(out), *TINY_FLAGS]
    return subprocess.Popen(
        [sys.executable, "-m", "ganforge", "train", *where, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_steps(run: Path, process: subprocess.Popen, steps: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        log = run / "metrics.jsonl"
        if log.is_file() and len(log.read_text().splitlines()) >= steps:
            return
        time.sleep(0.02)
    raise AssertionError(f"no {steps} steps logged: {process.poll()}")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_finishes_the_step_checkpoints_and_exits(tmp_path, signum, code):
    run = tmp_path / "run"
    process = start_training(run, "--epochs", "500")
    wait_for_steps(run, process, 3)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    match = re.search(rf"stopped by {signum.name} at step (\d+) of 9000; checkpoint (\S+);", stderr)
    assert match, stderr
    assert f"continue with: ganforge train --resume {run}" in stderr and "Traceback" not in stderr
    step = int(match.group(1))
    assert newest(run)["step"] == step and Path(match.group(2)) == checkpoint_paths(run)[-1]
    assert logged_steps(run)[-1]["step"] == step
    assert not (run / "summary.json").exists()


def run_files(run: Path) -> dict[Path, str]:
    """Hashes of the files a run had finished writing (not the temporary ones)."""
    return {
        path: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in run.rglob("*")
        if path.is_file() and not path.name.endswith(".tmp")
    }


def newest_step(run: Path) -> int:
    """The step of the newest checkpoint (0 without one): with ``--checkpoint-every 1``, how
    far the run has come."""
    paths = checkpoint_paths(run) if run.exists() else []
    return int(paths[-1].stem[5:]) if paths else 0


def temporary_files(run: Path) -> set[Path]:
    return set((run / "checkpoints").glob(".*.tmp")) if (run / "checkpoints").is_dir() else set()


def kill_at_random(
    run: Path, process: subprocess.Popen, mode: str, rng: random.Random, start: int
) -> bool:
    """SIGKILL ``process``, which trains on from step ``start``: at a random moment of its
    start-up (``startup``), after 1 to 12 more steps (``steps``), or while it writes a
    checkpoint after at least one step (``write``). True when the kill landed in a checkpoint
    write of this process (a temporary file of its own is left)."""
    leftovers = temporary_files(run)
    deadline = time.monotonic() + 120
    if mode == "startup":
        deadline = time.monotonic() + rng.uniform(0.2, 3.0)
    target = start + (rng.randint(1, 12) if mode == "steps" else 1)
    while time.monotonic() < deadline and process.poll() is None:
        progressed = mode != "startup" and newest_step(run) >= target
        if progressed and (mode == "steps" or temporary_files(run) - leftovers):
            break
        time.sleep(0.001 if mode == "write" else 0.01)
    process.kill()
    process.wait()
    return bool(temporary_files(run) - leftovers)


def test_sigkill_at_random_moments_never_loses_the_run(tmp_path):
    flags = ["--max-steps", "60", "--checkpoint-every", "1", "--sample-every", "1000"]
    reference = tmp_path / "reference"
    assert tiny_train(reference, *flags) == 0
    run, rng = tmp_path / "run", random.Random(0)
    resumed_kills, during_write, finished = 0, 0, False

    def start_or_resume() -> tuple[subprocess.Popen, bool]:
        fresh = not (run.exists() and checkpoint_paths(run))
        if fresh and run.exists():  # killed before its first checkpoint: start it again
            shutil.rmtree(run)
        return start_training(run, *flags, resume=not fresh), not fresh

    for mode in ("startup", "steps", "write", "steps", "write", "steps", "write"):
        before = run_files(run) if run.exists() else {}
        start = newest_step(run)
        process, resumed = start_or_resume()
        during_write += kill_at_random(run, process, mode, rng, start)
        if process.returncode == 0:
            finished = True
            break
        resumed_kills += resumed and newest_step(run) > start
        # Every checkpoint on disk loads, and no file written before this round has changed
        # (the log is appended to, and a resume rewrites it without the steps after its start).
        for path in checkpoint_paths(run) if run.exists() else []:
            load_checkpoint(path)
        after = run_files(run) if run.exists() else {}
        for path, digest in before.items():
            if path in after and path.name not in ("metrics.jsonl", "config.json"):
                assert after[path] == digest, f"{path} changed"
    # Resumed sessions were killed after making progress, some during a checkpoint write.
    print(f"killed {resumed_kills} resumed sessions, {during_write} during a checkpoint write")
    assert resumed_kills >= 3 and during_write >= 1, (resumed_kills, during_write)
    if not finished:
        process, _ = start_or_resume()
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    assert_same_state(newest(run), newest(reference))
    assert logged_steps(run) == logged_steps(reference)
    assert not list(run.rglob("*.tmp"))


# ---------------------------------------------------------------------------------------------
# NaNs and full disks: in-process, with the fault injected


def poisoned_gan_objective(nan_steps) -> Objective:
    """The BCE objective whose discriminator loss is NaN at the given steps (1-based)."""
    calls = {"step": 0}

    def discriminator_loss(real, fake):
        calls["step"] += 1
        loss = gan_discriminator_loss(real, fake)
        return loss * float("nan") if calls["step"] in nan_steps else loss

    original = OBJECTIVES["gan"]
    return Objective("gan", discriminator_loss, original.generator_loss, original.score_summary)


def test_a_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(OBJECTIVES, "gan", poisoned_gan_objective({8}))
    run = tmp_path / "run"
    assert tiny_train(run, "--max-steps", "12", "--checkpoint-every", "3") == 2
    line = " ".join(error_lines(capsys))
    assert "step 8: the discriminator loss and generator loss became NaN or Inf" in line
    assert "the discriminator's weights hold NaN or Inf" in line
    assert f"the last good checkpoint is {run / 'checkpoints' / 'step_0000006.pt'}" in line
    assert [p.name for p in checkpoint_paths(run)] == ["step_0000003.pt", "step_0000006.pt"]
    good = load_checkpoint(checkpoint_paths(run)[-1])
    assert all(torch.isfinite(t).all() for t in good["discriminator"].values())
    assert not (run / "summary.json").exists()


def test_skip_step_drops_the_nan_update_and_goes_on(tmp_path, monkeypatch):
    clean, skipping = tmp_path / "clean", tmp_path / "skip"
    assert tiny_train(clean, "--max-steps", "10", "--on-nan", "skip-step") == 0
    monkeypatch.setitem(OBJECTIVES, "gan", poisoned_gan_objective({8}))
    assert tiny_train(skipping, "--max-steps", "10", "--on-nan", "skip-step") == 0
    records = logged_steps(skipping)
    assert [r["skipped_updates"] for r in records] == [0] * 7 + [1, 0, 0]
    assert json.loads((skipping / "summary.json").read_text())["skipped_updates"] == 1
    state = newest(skipping)
    assert all(torch.isfinite(t).all() for t in state["discriminator"].values())
    # Until the NaN, checking the gradients changed nothing: the same numbers as a clean run.
    assert records[:7] == logged_steps(clean)[:7]


@pytest.mark.parametrize(
    ("per_epoch", "every"), [(1, 250), (18, 14), (249, 2), (250, 1), (390, 1), (781, 1)]
)
def test_epoch_ends_are_checkpointed_at_least_250_iterations_apart(per_epoch, every):
    assert checkpointed_epochs(per_epoch) == every


def test_a_run_of_short_epochs_checkpoints_every_kth_epoch_end(tmp_path):
    """600 images in batches of 32: 18 iterations an epoch, so every 14th epoch end (252)."""
    run = tmp_path / "run"
    flags = ["--epochs", "20", "--max-steps", "260", "--keep-checkpoints", "10"]
    flags += ["--sample-every", "1000"]
    assert tiny_train(run, *flags) == 0
    assert [load_checkpoint(p)["step"] for p in checkpoint_paths(run)] == [0, 252, 260]


def test_skip_step_gives_up_when_every_update_is_nan(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(OBJECTIVES, "gan", poisoned_gan_objective(set(range(1, 1000))))
    run = tmp_path / "run"
    flags = ["--max-steps", "80", "--on-nan", "skip-step", "--checkpoint-every", "18"]
    assert tiny_train(run, *flags) == 2
    assert "step 50: each of the last 50 steps had a NaN or Inf gradient" in error_lines(capsys)[0]
    assert newest(run)["step"] == 36  # the last checkpoint before the failure


def test_a_full_disk_mid_run_is_one_clear_error_and_keeps_the_checkpoint(
    tmp_path, monkeypatch, capsys
):
    import ganforge.files

    real_fsync = os.fsync
    run = tmp_path / "run"

    def fsync_until_the_disk_fills(fd):
        if (run / "checkpoints" / "step_0000003.pt").exists():  # the disk is full from here
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(ganforge.files.os, "fsync", fsync_until_the_disk_fills)
    assert tiny_train(run, "--max-steps", "12", "--checkpoint-every", "3") == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and "No space left on device" in lines[0]
    kept = run / "checkpoints" / "step_0000003.pt"
    assert f"the last checkpoint, {kept}, is intact" in lines[0]
    assert [p.name for p in checkpoint_paths(run)] == ["step_0000000.pt", "step_0000003.pt"]
    assert not list(run.rglob("*.tmp"))
    monkeypatch.setattr(ganforge.files.os, "fsync", real_fsync)  # room again: it resumes
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    whole = tmp_path / "whole"
    assert tiny_train(whole, "--max-steps", "12", "--checkpoint-every", "3") == 0
    assert_same_state(newest(run), newest(whole))


def test_an_unwritable_run_folder_mid_run_is_one_clear_error(tmp_path, monkeypatch, capsys):
    import ganforge.training.hooks

    real_save_grid = ganforge.training.hooks.save_grid

    def save_grid(images, path, *args):
        if "step_0000006" in str(path):
            raise PermissionError(errno.EACCES, "Permission denied")
        real_save_grid(images, path, *args)

    monkeypatch.setattr(ganforge.training.hooks, "save_grid", save_grid)
    run = tmp_path / "run"
    assert tiny_train(run, "--max-steps", "12", "--checkpoint-every", "3") == 2
    lines = error_lines(capsys)
    assert (
        len(lines) == 1 and f"cannot write to the run folder {run}: Permission denied" in lines[0]
    )
    assert newest(run)["step"] == 3


def test_atomic_torch_save_streams_and_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    """A checkpoint goes straight into its temporary file (no whole-file buffer in memory);
    when the write fails half-way, the old file is untouched and no temporary file is left."""
    import io

    import ganforge.checkpoint_file
    from ganforge.checkpoint_file import atomic_torch_save

    path = tmp_path / "step.pt"
    atomic_torch_save({"weights": torch.arange(10)}, path)
    before = path.read_bytes()

    written_into = []
    real_save = torch.save

    def save_then_fail(obj, f, *args, **kwargs):
        written_into.append(f)
        real_save(obj, f, *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ganforge.checkpoint_file.torch, "save", save_then_fail)
    with pytest.raises(OSError):
        atomic_torch_save({"weights": torch.zeros(1000)}, path)
    assert isinstance(written_into[0], io.BufferedWriter)  # a file on disk, not a buffer
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["step.pt"]
