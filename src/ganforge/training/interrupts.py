"""Stopping a training run cleanly on SIGINT (Ctrl-C) or SIGTERM (``kill``, schedulers).

Inside :class:`StopRequests` the first such signal only records itself; the training loop
finishes the step it is in, writes a checkpoint and stops. A second signal of the same kind
acts as it would without ganforge (SIGINT raises ``KeyboardInterrupt``, SIGTERM ends the
process), for a user who does not want to wait; the checkpoints already written stay intact,
because every write is atomic.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    """A context manager that turns SIGINT and SIGTERM into a request to stop.

    ``signum`` is the first signal received (``None`` while none). Outside the main thread,
    where Python cannot install handlers, it records nothing and signals act as usual.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._record)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _record(self, signum: int, frame: FrameType | None) -> None:
        if self.signum == signum:  # asked twice: stop now, as without ganforge
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
            return
        self.signum = self.signum or signum


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name
