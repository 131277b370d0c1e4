"""``ganforge train`` with a failure injected on one rank; the torchrun failure tests drive it.

``python ddp_failing_train.py RANK STEP KIND TRAIN-ARGS...``: on rank ``RANK``, at iteration
``STEP``, ``disk-full`` makes the sample grid's write fail as a full disk does (rank 0's side
work), and ``crash`` raises a ``RuntimeError`` where the rank checks its iteration.
"""

from __future__ import annotations

import errno
import os
import sys

from ganforge.cli import main
from ganforge.training import hooks, monitoring
from ganforge.training.distributed import leave_worker_process


def inject(rank: int, step: int, kind: str) -> None:
    if int(os.environ.get("RANK", "0")) != rank:
        return
    if kind == "disk-full":
        draw = hooks.GridHook.draw

        def full_disk(self, name, at):
            if at == step:
                raise OSError(errno.ENOSPC, "No space left on device")
            return draw(self, name, at)

        hooks.GridHook.draw = full_disk
    elif kind == "crash":
        check_step = monitoring.TrainingMonitor.check_step

        def crash(self, at, *args):
            if at == step:
                raise RuntimeError("injected failure")
            return check_step(self, at, *args)

        monitoring.TrainingMonitor.check_step = crash
    else:
        raise ValueError(f"unknown failure {kind!r}")


if __name__ == "__main__":
    rank, step, kind, *train_args = sys.argv[1:]
    inject(int(rank), int(step), kind)
    leave_worker_process(main(train_args))
