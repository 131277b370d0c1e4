"""One writer per run folder: the process that trains into a run folder holds a lock on it.

The lock is an OS file lock (``flock``) on ``RUN/.lock``, held through an open file for as long
as the run lasts. The operating system drops it when that file closes, so a process that dies,
even by SIGKILL, leaves no stale lock to clean up. Another writer (``ganforge train --resume
RUN`` beside a running ``ganforge train --out RUN``) is refused in one line that names the
holder's process and host; readers (``sample``, ``eval``, ``export``, the report) never take it.

The lock file stays empty and is never removed (removing it would let two processes lock two
different files of the same name). Who holds it is written beside it, in a record file of the
holder's own (``RUN/.lock.<pid>.<token>.json``) that the holder removes when it lets go and
the next holder removes when a SIGKILL left it behind; a record of its own, so that no file a
previous session wrote is ever rewritten.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ganforge.errors import GanforgeError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
try:
    import msvcrt
except ImportError:  # everywhere but Windows
    msvcrt = None

#: The lock file's name inside a run folder.
LOCK_NAME = ".lock"
#: How long a refused process waits for a holder that has locked but not yet written its
#: record (the two are a few microseconds apart), in seconds.
RECORD_WAIT_S = 1.0


class RunFolderBusy(GanforgeError):
    """Another process is writing the run folder (it holds the folder's lock)."""


@dataclass(frozen=True)
class Holder:
    """The process that holds a run folder's lock: its ``pid`` on ``host``, and ``since`` when
    (seconds since the epoch)."""

    pid: int
    host: str
    since: float

    def describe(self) -> str:
        """``ganforge process 1234 on host h (since 12:01:02)``; the date too if not today."""
        then = time.localtime(self.since)
        same_day = time.strftime("%Y-%m-%d", then) == time.strftime("%Y-%m-%d")
        when = time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S", then)
        return f"ganforge process {self.pid} on host {self.host} (since {when})"


def _try_lock(fd: int, shared: bool = False) -> bool:
    """Lock the open lock file without waiting: True when this process now holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        elif msvcrt is not None:
            # Windows locks byte ranges, dropped too when the process dies; one byte from the
            # start of the (empty) file: locking past its end is allowed. It has no shared
            # locks, so a probe locks exclusively for the moment it looks.
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        # With neither (no known platform), there is no lock: runs are not kept apart.
    except OSError:
        return False
    return True


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        elif msvcrt is not None:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _records(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob(f"{LOCK_NAME}.*.json"))


def _read_holder(run_dir: Path) -> Holder | None:
    """The newest holder record in ``run_dir`` that reads back whole, waiting up to
    :data:`RECORD_WAIT_S` for a holder that is still writing it; ``None`` if none does."""
    deadline = time.monotonic() + RECORD_WAIT_S
    while True:
        holders = []
        for path in _records(run_dir):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                holders.append(
                    Holder(int(record["pid"]), str(record["host"]), float(record["since"]))
                )
            except (OSError, ValueError, KeyError, TypeError):
                continue  # gone, or not written whole yet
        if holders or time.monotonic() >= deadline:
            return max(holders, key=lambda h: h.since, default=None)
        time.sleep(0.02)


def _busy_error(run_dir: Path) -> RunFolderBusy:
    """The one-line refusal for a writer of ``run_dir`` while another process holds it."""
    holder = _read_holder(run_dir)
    who = holder.describe() if holder else "another ganforge process"
    return RunFolderBusy(
        f"run folder {run_dir} is being written by {who}; wait for it to finish or stop it first"
    )


def folder_error(run_dir: Path, exc: OSError) -> GanforgeError:
    """The one line for a run folder that cannot be written (made, locked, or written into)."""
    return GanforgeError(f"cannot write the run folder {run_dir}: {exc.strerror or exc}")


class RunLock:
    """A held lock on a run folder (see :func:`hold_run_folder`); :meth:`release` lets go."""

    def __init__(self, run_dir: Path, fd: int, record: Path, holder: Holder) -> None:
        self.run_dir, self.holder = run_dir, holder
        self._fd: int | None = fd
        self._record = record

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove this holder's record, then drop the lock (the lock file stays). Idempotent."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):  # a folder gone read-only: the lock goes all the same
            self._record.unlink(missing_ok=True)
        _unlock(self._fd)
        os.close(self._fd)
        self._fd = None


def _acquire(run_dir: Path) -> RunLock:
    try:
        fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise folder_error(run_dir, exc) from None
    try:
        if not _try_lock(fd):
            raise _busy_error(run_dir)
        for stale in _records(run_dir):  # left by a holder that died without letting go
            stale.unlink(missing_ok=True)
        holder = Holder(os.getpid(), socket.gethostname(), time.time())
        record = run_dir / f"{LOCK_NAME}.{holder.pid}.{secrets.token_hex(4)}.json"
        fields = {"pid": holder.pid, "host": holder.host, "since": holder.since}
        record.write_text(json.dumps(fields) + "\n", encoding="utf-8")
    except OSError as exc:
        os.close(fd)  # drops the lock too
        raise folder_error(run_dir, exc) from None
    except BaseException:
        os.close(fd)
        raise
    return RunLock(run_dir, fd, record, holder)


@contextlib.contextmanager
def hold_run_folder(run_dir: Path) -> Iterator[RunLock]:
    """Hold ``run_dir``'s lock for the ``with`` block: one writer per run folder.

    ``run_dir`` must exist. Raises :class:`RunFolderBusy` (one line naming the holder's PID and
    host) when another process, or another lock of this one, holds it; a folder where the lock
    file cannot be made is one :class:`~ganforge.errors.GanforgeError` line.
    """
    lock = _acquire(Path(run_dir))
    try:
        yield lock
    finally:
        lock.release()


def check_no_writer(run_dir: Path) -> None:
    """Raise :class:`RunFolderBusy` when a process holds ``run_dir``'s lock; take nothing and
    create nothing (a folder or lock file that does not exist is free).

    A quick refusal before any work; the writer still takes the lock itself with
    :func:`hold_run_folder`, which is what keeps two writers apart.
    """
    lock_file = Path(run_dir) / LOCK_NAME
    if msvcrt is not None and fcntl is None:
        return  # Windows has no shared lock to look with: the writer's own lock decides
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except OSError:
        return  # no lock file: never written by a ganforge that locks, or not a folder
    try:
        # Shared, so that processes looking at the same moment (the ranks of one torchrun)
        # do not refuse each other.
        if not _try_lock(fd, shared=True):
            raise _busy_error(Path(run_dir))
        _unlock(fd)
    finally:
        os.close(fd)
