"""Hostile and damaged files: fuzzed IDX files and checkpoints raise ganforge's error only."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ganforge.checkpoint_file import FORMAT_VERSION, load_checkpoint
from ganforge.data.idx import read_idx, write_idx
from ganforge.errors import GanforgeError

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,  # each run draws afresh; failures print their reproducing example
)


def valid_idx_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "valid-idx"
    write_idx(path, np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))
    return path.read_bytes()


def valid_checkpoint_bytes() -> bytes:
    generator, discriminator = torch.nn.Linear(3, 2), torch.nn.Linear(2, 1)
    state = {
        "format_version": FORMAT_VERSION,
        "ganforge_version": "0.1.0",
        "config": {"architecture": "mlp"},
        "step": 1,
        "epoch": 0,
        "generator": generator.state_dict(),
        "discriminator": discriminator.state_dict(),
        "g_optimizer": torch.optim.Adam(generator.parameters()).state_dict(),
        "d_optimizer": torch.optim.Adam(discriminator.parameters()).state_dict(),
        "g_scaler": torch.amp.GradScaler("cpu", enabled=False).state_dict(),
        "d_scaler": torch.amp.GradScaler("cpu", enabled=False).state_dict(),
        "rng_states": {"torch": torch.get_rng_state()},
        "progress": {"elapsed_s": 1.0},
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def damaged(original: bytes, data: st.DataObject) -> bytes:
    """``original`` truncated, extended, or with some bytes overwritten."""
    kind = data.draw(st.sampled_from(["truncate", "extend", "overwrite"]))
    if kind == "truncate":
        return original[: data.draw(st.integers(0, len(original) - 1))]
    if kind == "extend":
        return original + data.draw(st.binary(min_size=1, max_size=64))
    mutable = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(mutable) - 1))
        mutable[position] = data.draw(st.integers(0, 255))
    return bytes(mutable)


def read_or_refuse(reader, path: Path):
    """Call ``reader(path)``; a GanforgeError is an acceptable answer, any other error is not."""
    try:
        return reader(path)
    except GanforgeError as exc:
        assert str(exc).strip() and "\n" not in str(exc)
        return None


@FUZZ
@given(payload=st.binary(max_size=300), compress=st.booleans())
def test_arbitrary_bytes_as_an_idx_file(tmp_path, payload, compress):
    path = tmp_path / ("fuzz.gz" if compress else "fuzz")
    path.write_bytes(gzip.compress(payload) if compress else payload)
    array = read_or_refuse(read_idx, path)
    if array is not None:
        assert array.dtype == np.uint8 and array.size == len(payload) - 4 - 4 * array.ndim


@FUZZ
@given(data=st.data(), compress=st.booleans())
def test_damaged_idx_files(tmp_path, data, compress):
    content = damaged(valid_idx_bytes(tmp_path), data)
    path = tmp_path / ("damaged.gz" if compress else "damaged")
    path.write_bytes(gzip.compress(content) if compress else content)
    array = read_or_refuse(read_idx, path)
    if array is not None:
        assert array.dtype == np.uint8 and array.size == len(content) - 4 - 4 * array.ndim


@pytest.fixture(scope="module")
def checkpoint_bytes() -> bytes:
    return valid_checkpoint_bytes()


@FUZZ
@given(data=st.data())
def test_damaged_checkpoints(tmp_path, checkpoint_bytes, data):
    path = tmp_path / "damaged.pt"
    path.write_bytes(damaged(checkpoint_bytes, data))
    checkpoint = read_or_refuse(load_checkpoint, path)
    if checkpoint is not None:
        assert isinstance(checkpoint, dict) and checkpoint["format_version"] == 1


@FUZZ
@given(payload=st.binary(max_size=300))
def test_arbitrary_bytes_as_a_checkpoint(tmp_path, payload):
    path = tmp_path / "fuzz.pt"
    path.write_bytes(payload)
    assert read_or_refuse(load_checkpoint, path) is None


def test_the_fuzzed_readers_accept_the_undamaged_files(tmp_path, checkpoint_bytes):
    # The fuzz tests would pass vacuously if the readers refused everything.
    (tmp_path / "ok").write_bytes(valid_idx_bytes(tmp_path))
    assert read_idx(tmp_path / "ok").shape == (2, 3, 4)
    (tmp_path / "ok.pt").write_bytes(checkpoint_bytes)
    assert load_checkpoint(tmp_path / "ok.pt")["step"] == 1
