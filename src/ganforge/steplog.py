"""The step log, ``metrics.jsonl``: one JSON object per training iteration (losses, gradient
norms, training time), plus the in-training evaluations and warnings at their steps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ganforge.files import atomic_write_text


class StepLog:
    """Append-only JSON-lines log, one object per training iteration, flushed as it goes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "a", buffering=1)  # noqa: SIM115 (closed by close())

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self._file.close()


def truncate_step_log(path: Path, last_step: int) -> None:
    """Keep only the records of steps up to ``last_step`` (a resumed run logs the later steps
    again); a partly written line goes too. The file is replaced atomically."""
    if not path.is_file():
        return
    kept = [
        r
        for r in read_step_log(path)
        if isinstance(r, dict) and isinstance(r.get("step"), int) and r["step"] <= last_step
    ]
    atomic_write_text(path, "".join(json.dumps(record) + "\n" for record in kept))


def read_step_log(path: Path) -> list[dict[str, Any]]:
    """Records of a step log; a partly written last line (after a crash) is ignored."""
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
