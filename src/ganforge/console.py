"""The one way the training core speaks to a person: a progress bar and one-line notices.

The caller (the command line, the assignment's façade or a user's script) makes a
:class:`Console` and hands it in; nothing below it prints, draws a bar or calls
``warnings.warn``. ``Console(quiet=True)`` (:data:`SILENT`) says nothing at all: the run's
warnings still reach its log (``metrics.jsonl``) and its report.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm  # the terminal's bar (tqdm.auto would want ipywidgets in Jupyter)


class Console:
    """Progress and notices on ``stream`` (standard error by default), or nothing when
    ``quiet``."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream
        self._bar: tqdm | None = None

    def notice(self, message: str) -> None:
        """One line, ``ganforge: <message>``, printed above the progress bar if one is shown."""
        if self.quiet:
            return
        stream = self.stream or sys.stderr
        if self._bar is not None:
            tqdm.write(f"ganforge: {message}", file=stream)
        else:
            print(f"ganforge: {message}", file=stream)

    def warning(self, message: str) -> None:
        self.notice(f"warning: {message}")

    def start_progress(self, total: int, initial: int = 0) -> None:
        """Show a bar of ``total`` iterations, ``initial`` already done (a resumed run)."""
        if self.quiet:
            return
        self._bar = tqdm(
            total=total,
            initial=initial,
            unit="it",
            dynamic_ncols=True,
            file=self.stream or sys.stderr,
        )

    def advance(self, steps: int = 1, status: dict[str, str] | None = None) -> None:
        """Move the bar on by ``steps``; ``status``: short name → value shown beside it."""
        if self._bar is None:
            return
        self._bar.update(steps)
        if status is not None:
            self._bar.set_postfix(status)

    def end_progress(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


#: A console that says nothing: the default of the library's entry points.
SILENT = Console(quiet=True)
