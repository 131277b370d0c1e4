"""How much a checkpoint write raises a process's peak resident memory: the old way (the whole
file in an ``io.BytesIO``, then written) against ganforge's (``torch.save`` streamed into the
temporary file), for 120 MB of tensors, the size of a ``dcgan`` checkpoint. Each way runs in a
fresh process, since a peak never comes down::

    python benchmarks/checkpoint_memory.py
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from ganforge.checkpoint_file import atomic_torch_save
from ganforge.files import atomic_write_bytes


def peak_mb() -> float:
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())[1]) / 1024


def measure(way: str) -> float:
    checkpoint = {f"w{i}": torch.randn(1_000_000) for i in range(30)}  # 120 MB
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "step.pt"
        before = peak_mb()
        if way == "buffer":
            buffer = io.BytesIO()
            torch.save(checkpoint, buffer)
            atomic_write_bytes(path, buffer.getvalue())
        else:
            atomic_torch_save(checkpoint, path)
        return peak_mb() - before


def main() -> None:
    if len(sys.argv) == 2:  # one way, in this fresh process
        print(measure(sys.argv[1]))
        return
    for way in ("buffer", "stream"):
        rise = subprocess.run(
            [sys.executable, __file__, way], capture_output=True, text=True, check=True
        ).stdout
        print(f"{way}: the peak rises by {float(rise):.0f} MB")


if __name__ == "__main__":
    main()
