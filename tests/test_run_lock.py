"""One writer per run folder: the lock a training run holds on its folder (ganforge.run_lock).

As a user meets it: ``ganforge train --resume RUN`` (or a second ``--out RUN``) in another
terminal while RUN trains is refused in one line that names the training process, and touches
nothing; a run killed with ``kill -9`` leaves nothing that blocks its resume; ``sample``,
``eval``, ``report``, ``interpolate`` and ``export`` work while a run trains (``compare``
reads finished runs only, by a rule of its own).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import TINY_FLAGS, tiny_train
from ganforge.checkpoint_file import checkpoint_paths, load_checkpoint
from ganforge.cli import main
from ganforge.errors import GanforgeError
from ganforge.run_lock import (
    LOCK_NAME,
    Holder,
    RunFolderBusy,
    check_no_writer,
    hold_run_folder,
)
from ganforge.steplog import read_step_log
from ganforge.training import run as training_run
from test_distributed import torchrun

#: The refusal, for a holder with process id ``pid`` on this host.
REFUSAL = (
    r"run folder {run} is being written by ganforge process {pid} on host {host} "
    r"\(since \d\d:\d\d:\d\d\); wait for it to finish or stop it first"
)

#: A process that holds the folder ``argv[1]`` until it is killed.
HOLD = """
import sys, time
from pathlib import Path
from ganforge.run_lock import hold_run_folder
with hold_run_folder(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""

#: A process that tries to hold, then to look at, the folder ``argv[1]``: prints "held" and
#: "free", or the refusal (exit 3).
TRY = """
import sys
from pathlib import Path
from ganforge.run_lock import RunFolderBusy, check_no_writer, hold_run_folder
try:
    with hold_run_folder(Path(sys.argv[1])):
        print("held")
    check_no_writer(Path(sys.argv[1]))
    print("free")
except RunFolderBusy as exc:
    print(exc)
    sys.exit(3)
"""


def refusal(run: Path, pid: int) -> str:
    return REFUSAL.format(run=re.escape(str(run)), pid=pid, host=re.escape(socket.gethostname()))


def python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )


def ganforge(*args: str) -> subprocess.CompletedProcess:
    """``ganforge ARGS`` in a process of its own, as from another terminal."""
    return subprocess.run(
        [sys.executable, "-m", "ganforge", *args], capture_output=True, text=True, timeout=300
    )


def ganforge_at_once(*commands: list[str]) -> list[subprocess.CompletedProcess]:
    """:func:`ganforge` for each of ``commands``, all started at once (each start-up of
    Python and torch costs seconds)."""
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "ganforge", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    outputs = [p.communicate(timeout=300) for p in started]
    return [
        subprocess.CompletedProcess(p.args, p.returncode, *output)
        for p, output in zip(started, outputs, strict=True)
    ]


def records(run: Path) -> list[dict]:
    """The holder records in ``run`` (one while a process holds it)."""
    return [json.loads(p.read_text()) for p in sorted(run.glob(f"{LOCK_NAME}.*.json"))]


def wait_until(condition: Callable[[], bool], process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 180
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"never saw {what} (exit status {process.poll()})")
        time.sleep(0.05)


def newest_step(run: Path) -> int:
    paths = checkpoint_paths(run) if run.is_dir() else []
    return int(paths[-1].stem[5:]) if paths else -1


def start_training(run: Path, log: Path, *flags: str) -> subprocess.Popen:
    """``ganforge train --out RUN`` in the background, long enough to be met while it trains:
    no epoch limit, a checkpoint every 2 iterations; its output goes to ``log``."""
    command = [sys.executable, "-m", "ganforge", "train", "--out", str(run), *TINY_FLAGS]
    command += ["--epochs", "100000", "--max-steps", "100000", "--checkpoint-every", "2"]
    with log.open("w") as out:
        return subprocess.Popen([*command, *flags], stdout=out, stderr=subprocess.STDOUT)


def training(run: Path, log: Path, *flags: str) -> subprocess.Popen:
    """:func:`start_training`, returned once it has written a checkpoint after a step."""
    process = start_training(run, log, *flags)
    wait_until(lambda: newest_step(run) >= 2, process, f"a checkpoint of {run}")
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


# -- the lock itself -------------------------------------------------------------------------


def test_a_held_folder_refuses_another_process_naming_the_holder(tmp_path):
    with hold_run_folder(tmp_path) as lock:
        assert lock.held and lock.holder.pid == os.getpid()
        assert records(tmp_path) == [
            {"pid": os.getpid(), "host": socket.gethostname(), "since": lock.holder.since}
        ]
        other = python(TRY, str(tmp_path))
        assert other.returncode == 3, other.stderr
        assert re.fullmatch(refusal(tmp_path, os.getpid()), other.stdout.strip())
    assert not lock.held
    # Let go: the other process holds it, then finds it free; the lock file stays, empty.
    other = python(TRY, str(tmp_path))
    assert (other.returncode, other.stdout.split()) == (0, ["held", "free"]), other.stderr
    assert (tmp_path / LOCK_NAME).read_bytes() == b"" and records(tmp_path) == []


def test_a_sigkilled_holder_leaves_no_lock_behind(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderBusy, match=refusal(tmp_path, holder.pid)):
            check_no_writer(tmp_path)
        with (
            pytest.raises(RunFolderBusy, match=refusal(tmp_path, holder.pid)),
            hold_run_folder(tmp_path),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert [r["pid"] for r in records(tmp_path)] == [holder.pid]  # it had no time to tidy up
    check_no_writer(tmp_path)
    with hold_run_folder(tmp_path) as lock:
        assert [r["pid"] for r in records(tmp_path)] == [os.getpid()]  # the stale one is gone
        assert lock.holder.pid == os.getpid()


def test_one_process_cannot_hold_a_folder_twice(tmp_path):
    with hold_run_folder(tmp_path):
        with (
            pytest.raises(RunFolderBusy, match=refusal(tmp_path, os.getpid())),
            hold_run_folder(tmp_path),
        ):
            pass
        # A holder whose record is gone (deleted by hand) is still refused, unnamed.
        for path in tmp_path.glob(f"{LOCK_NAME}.*.json"):
            path.unlink()
        with pytest.raises(RunFolderBusy, match="written by another ganforge process; wait"):
            check_no_writer(tmp_path)
    with hold_run_folder(tmp_path):
        pass


def test_looking_at_a_folder_takes_and_creates_nothing(tmp_path):
    check_no_writer(tmp_path / "nowhere")
    check_no_writer(tmp_path)
    assert not (tmp_path / "nowhere").exists() and list(tmp_path.iterdir()) == []
    with hold_run_folder(tmp_path):
        pass
    check_no_writer(tmp_path)  # a free lock file
    other = python(TRY, str(tmp_path))  # the look let go of it
    assert other.stdout.split() == ["held", "free"], other.stderr


def test_a_folder_that_cannot_hold_a_lock_is_one_line(tmp_path):
    with (
        pytest.raises(GanforgeError, match=r"cannot write the run folder .*nowhere: No such"),
        hold_run_folder(tmp_path / "nowhere"),
    ):
        pass


def test_the_holder_names_the_day_when_it_is_not_today():
    old = Holder(1234, "h", time.mktime((2024, 5, 1, 12, 1, 2, 0, 0, -1)))
    assert old.describe() == "ganforge process 1234 on host h (since 2024-05-01 12:01:02)"
    now = Holder(1234, "h", time.time())
    assert re.fullmatch(r"ganforge process 1234 on host h \(since \d\d:\d\d:\d\d\)", now.describe())


# -- training: the writer --------------------------------------------------------------------


def test_a_second_writer_beside_a_training_run_is_refused_and_changes_nothing(tmp_path):
    run, log = tmp_path / "run", tmp_path / "train.log"
    # A time budget ends the run by itself, normally, after the second writers have tried
    # (a refusal that names the run's process shows that they tried while it trained).
    process = training(run, log, "--time-budget", "30", "--sample-every", "1000")
    try:
        (run / ".half-written.tmp").write_text("what --resume clears away")
        config = (run / "config.json").stat()
        seconds = ganforge_at_once(
            ["train", "--resume", str(run), "--quiet"], ["train", "--out", str(run), *TINY_FLAGS]
        )
        for second in seconds:
            assert second.returncode == 2, second.stderr
            lines = second.stderr.splitlines()
            assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
            assert re.fullmatch("ganforge: error: " + refusal(run, process.pid), lines[0])
        # Neither cut the log, cleared the run's files, rewrote its config or held the lock.
        assert (run / ".half-written.tmp").exists()
        assert (run / "config.json").stat().st_mtime_ns == config.st_mtime_ns
        assert [r["pid"] for r in records(run)] == [process.pid]
        assert process.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        stop(process)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_by"] == "time_budget"
    steps = [r["step"] for r in read_step_log(run / "metrics.jsonl") if "d_loss" in r]
    assert steps == list(range(1, summary["steps"] + 1))  # one record a step, none cut
    assert load_checkpoint(checkpoint_paths(run)[-1])["step"] == summary["steps"]
    assert records(run) == []  # the run let go of the folder


def test_a_resume_is_refused_before_it_changes_any_file(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    assert tiny_train(run, "--max-steps", "4", "--checkpoint-every", "2") == 0
    # What a resume changes before it trains: a broken newest checkpoint set aside, temporary
    # files removed, the summary of the shorter finish removed, log records after its step cut.
    broken = run / "checkpoints" / "step_0000008.pt"
    broken.write_bytes(b"not a checkpoint")
    (run / "checkpoints" / ".step_0000010.pt.tmp").write_bytes(b"half")
    with (run / "metrics.jsonl").open("a") as log:
        log.write(json.dumps({"step": 5, "d_loss": 1.0, "g_loss": 1.0}) + "\n")

    def files() -> dict[Path, bytes]:
        return {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}

    # Without the quick look at start-up, which would refuse it first, the lock the resume
    # takes must refuse it before any of those changes.
    monkeypatch.setattr(training_run, "check_no_writer", lambda run_dir: None)
    resume = ["train", "--resume", str(run), "--max-steps", "6", "--quiet"]
    with hold_run_folder(run):
        before = files()
        assert main(resume) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(errors) == 1
        assert re.fullmatch("ganforge: error: " + refusal(run, os.getpid()), errors[0])
        assert files() == before
    assert main(resume) == 0  # free: now it does all of that, and trains on
    assert not broken.exists() and broken.with_name(broken.name + ".broken").exists()
    assert not list(run.rglob("*.tmp"))
    steps = [r["step"] for r in read_step_log(run / "metrics.jsonl") if "d_loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_a_sigkilled_training_run_resumes(tmp_path):
    run, log = tmp_path / "run", tmp_path / "train.log"
    process = training(run, log, "--sample-every", "1000")
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert [r["pid"] for r in records(run)] == [process.pid]  # what kill -9 leaves
    step = newest_step(run)
    resumed = ganforge("train", "--resume", str(run), "--max-steps", str(step + 2), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / "summary.json").read_text())["steps"] == step + 2
    assert records(run) == []


def test_readers_work_while_a_run_trains(tmp_path):
    run, log = tmp_path / "run", tmp_path / "train.log"
    process = training(run, log, "--sample-every", "2")
    try:
        sampled = ganforge("sample", str(run), "--num", "4", "--grid", str(tmp_path / "x.png"))
        assert sampled.returncode == 0, sampled.stderr
        assert (tmp_path / "x.png").is_file()
        # The readers that write into the run folder (eval: eval.json, and the report as
        # `ganforge report` rebuilds it; interpolate: its grid and GIF), in one process: each
        # start-up of Python and torch costs seconds. (export reads the run as sample does;
        # compare reads finished runs only.)
        readers = [
            ["eval", str(run), "--num", "32", "--prdc-num", "32"],
            ["interpolate", str(run), "--steps", "3", "--rows", "2"],
        ]
        code = "import sys\nfrom ganforge.cli import main\nfor args in eval(sys.argv[1]):\n"
        code += "    print('exit', args[0], main(args), flush=True)\n"
        result = python(code, repr(readers))
        exits = [line.split()[1:] for line in result.stdout.splitlines() if line[:5] == "exit "]
        assert exits == [[args[0], "0"] for args in readers], result.stderr[-3000:]
        assert process.poll() is None, "the run ended before the readers had read it"
        assert (run / "eval.json").is_file() and (run / "interpolation.png").is_file()
        # And the run trains on after them.
        seen = newest_step(run)
        wait_until(lambda: newest_step(run) > seen, process, "a newer checkpoint")
    finally:
        stop(process)


def test_under_torchrun_every_rank_stops_with_the_holders_line(tmp_path):
    run = tmp_path / "run"
    flags = [*TINY_FLAGS, "--batch-size", "16", "--sample-every", "100"]
    assert main(["train", "--out", str(run), *flags, "--max-steps", "2"]) == 0
    # Rank 0's lock in the run (the quick look at start-up switched off) and the quick look
    # that each rank takes: each way, both ranks say the same line and nothing changes.
    script = tmp_path / "no_quick_look.py"
    script.write_text(
        "import sys\nfrom ganforge.training import run\n"
        "run.check_no_writer = lambda run_dir: None\n"
        "from ganforge.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    )
    resume = ["train", "--resume", str(run), "--max-steps", "4"]
    with hold_run_folder(run):
        before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
        for launch in ([str(script)], ["-m", "ganforge"]):
            result = torchrun(*launch, *resume, cwd=tmp_path)
            assert result.returncode != 0
            # Both ranks write into one stderr, through torchrun: a line may run into the next.
            errors = re.findall(r"ganforge: error: .*?(?=ganforge: error: |\n|$)", result.stderr)
            assert len(errors) == 2, result.stderr[-3000:]
            for line in errors:
                assert re.search(refusal(run, os.getpid()), line), result.stderr[-3000:]
        assert before == {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
