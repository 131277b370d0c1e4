"""Reading and writing IDX files, the format MNIST and Fashion-MNIST ship in.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the values in C order. ganforge reads and writes
unsigned bytes only (type code 0x08), which is all the MNIST family uses. Files ending in
``.gz`` are decompressed on the fly.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ganforge.errors import GanforgeError
from ganforge.files import atomic_write_bytes

UBYTE = 0x08
#: The largest file ganforge will read: a header claiming more is refused before any allocation.
MAX_ELEMENTS = 1 << 31


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Return the uint8 array stored in an IDX file (``.gz`` allowed).

    Raises :class:`GanforgeError` for a missing file, a wrong magic number, a type other than
    unsigned byte, a header that claims an absurd size, or a payload shorter or longer than
    the header says.
    """
    path = Path(path)
    try:
        with _open(path) as f:
            header = f.read(4)
            if len(header) < 4 or header[0] != 0 or header[1] != 0:
                raise GanforgeError(f"{path} is not an IDX file (bad magic number)")
            if header[2] != UBYTE:
                raise GanforgeError(
                    f"{path}: IDX type 0x{header[2]:02x} is not supported (only unsigned bytes)"
                )
            ndim = header[3]
            if not 1 <= ndim <= 4:
                raise GanforgeError(f"{path}: IDX header claims {ndim} dimensions (expected 1-4)")
            dims_bytes = f.read(4 * ndim)
            if len(dims_bytes) < 4 * ndim:
                raise GanforgeError(f"{path}: IDX file is truncated inside its header")
            shape = struct.unpack(f">{ndim}I", dims_bytes)
            count = math.prod(shape)  # Python ints: a crafted header cannot overflow
            if count > MAX_ELEMENTS:
                raise GanforgeError(f"{path}: IDX header claims {count} values, more than allowed")
            payload = f.read(count + 1)
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise GanforgeError(f"data file not found: {path}") from None
        raise GanforgeError(f"cannot read {path}: {exc}") from None
    if len(payload) != count:
        what = "truncated" if len(payload) < count else "longer than its header says"
        raise GanforgeError(f"{path}: IDX file is {what} (expected {count} values of {shape})")
    return np.frombuffer(payload, dtype=np.uint8).reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an uncompressed IDX file, atomically (temporary file + rename)."""
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"write_idx writes uint8 arrays only, got {array.dtype}")
    path = Path(path)
    header = bytes([0, 0, UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    atomic_write_bytes(path, header + array.tobytes())
