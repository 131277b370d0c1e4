"""The registries and the written network contract: the dataset table, the architecture table,
the conditional fork (``class_count``, ``generate_images``) and ``check_networks``."""

import dataclasses
import functools
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from ganforge import nets
from ganforge.cli import main
from ganforge.data import (
    DATASETS,
    DatasetSpec,
    ImageData,
    check_dataset_name,
    dataset_names,
    dataset_spec,
    evaluator_for,
    fetch_dataset,
    fetchable_datasets,
    load_dataset,
    native_image_shape,
)
from ganforge.errors import GanforgeError
from ganforge.eval.classifier import load_evaluator
from ganforge.nets import (
    ARCHITECTURES,
    ArchitectureSpec,
    ConditionableGenerator,
    FeatureDiscriminator,
)
from ganforge.nets.contract import NEEDS

# --- the conditional fork -------------------------------------------------------------------


def test_class_count_tells_conditional_from_unconditional_generators():
    plain = nets.build_generator("mlp", noise_dim=8, width=0.05)
    conditional = nets.build_generator(
        "mlp", noise_dim=8, conditioning="projection", num_classes=10, width=0.05
    )
    assert nets.class_count(plain) == 0
    assert nets.class_count(conditional) == 10
    # A wrapped network answers for what it wraps (DDP and DataParallel hide attributes).
    assert nets.class_count(nn.DataParallel(conditional)) == 10


def test_generate_images_calls_each_generator_the_way_it_takes_inputs():
    torch.manual_seed(0)
    plain = nets.build_generator("mlp", noise_dim=8, width=0.05).eval()
    conditional = nets.build_generator(
        "mlp", noise_dim=8, conditioning="projection", num_classes=3, width=0.05
    ).eval()
    noise, labels = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    torch.testing.assert_close(nets.generate_images(plain, noise), plain(noise))
    torch.testing.assert_close(
        nets.generate_images(conditional, noise, labels), conditional(noise, labels)
    )
    with pytest.raises(ValueError, match="needs labels"):
        nets.generate_images(conditional, noise)
    with pytest.raises(ValueError, match="takes no labels"):
        nets.generate_images(plain, noise, labels)


# --- the dataset table ----------------------------------------------------------------------


def _tiny_loader(name, split, *, root, download, image_shape):
    """A dataset module's loader: 30 training and 6 test RGB images of 8×8, 3 classes."""
    n = 30 if split == "train" else 6
    rng = torch.Generator().manual_seed(0 if split == "train" else 1)
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=rng)
    return ImageData(name, images, torch.arange(n) % 3, ["a", "b", "c"])


def _tiny_fetch(root: Path, download: bool) -> Path:
    folder = root / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "downloaded" if download else folder / "kept").write_text("")
    return folder


TINY = DatasetSpec(
    name="tiny",
    loader=_tiny_loader,
    native_shape=(3, 8, 8),
    channels=(1, 3),
    classes=3,
    evaluator=None,
    fetch=_tiny_fetch,
    source="made up for this test",
    default_train_size=12,
)


@pytest.fixture
def tiny_dataset(monkeypatch):
    """The fake dataset registered as a new one would be: one table line."""
    monkeypatch.setitem(DATASETS, "tiny", TINY)
    return TINY


def test_the_dataset_table_holds_every_dataset_with_its_facts():
    assert dataset_names() == (
        "mnist",
        "fashion-mnist",
        "cifar10",
        "emoji",
        "emoji-google",
        "folder:PATH",
    )
    assert {name: spec.evaluator for name, spec in DATASETS.items()} == {
        "mnist": "mnist",
        "fashion-mnist": "fashion-mnist",
        "cifar10": None,
        "emoji": "emoji",
        "emoji-google": "emoji",
        "folder": None,
    }
    assert {name: spec.classes for name, spec in DATASETS.items()} == {
        "mnist": 10,
        "fashion-mnist": 10,
        "cifar10": 10,
        "emoji": 9,
        "emoji-google": 9,
        "folder": None,
    }
    assert DATASETS["cifar10"].channels == (1, 3) and DATASETS["mnist"].channels == (1,)
    assert fetchable_datasets() == ("mnist", "fashion-mnist", "emoji", "emoji-google")
    for spec in DATASETS.values():
        assert spec.source
        assert (spec.fetch is None) == bool(spec.no_fetch), spec.name
    with pytest.raises(ValueError, match="must say why"):
        DatasetSpec("x", _tiny_loader, (1, 8, 8), (1,), 2, None, None, "nowhere")


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("mnist", "mnist"),
        ("cifar10", "cifar10"),
        ("folder:~/photos", "folder"),
        ("folder:x", "folder"),
    ],
)
def test_dataset_spec_looks_up_names_and_patterns(name, spec):
    assert dataset_spec(name) is DATASETS[spec]


@pytest.mark.parametrize("name", ["folder", "folder:", "mnist:x", "cifar", "Mnist", ""])
def test_dataset_spec_refuses_other_names_listing_the_table(name):
    with pytest.raises(
        GanforgeError,
        match=r"choose one of: mnist, fashion-mnist, cifar10, emoji, emoji-google, folder:PATH$",
    ):
        dataset_spec(name)


def test_evaluator_for_reads_the_table():
    assert evaluator_for("mnist") == "mnist"
    assert evaluator_for("fashion-mnist") == "fashion-mnist"
    assert evaluator_for("cifar10") is None
    assert evaluator_for("folder:/some/photos") is None
    with pytest.raises(GanforgeError, match="unknown dataset 'svhn'"):
        evaluator_for("svhn")


def test_a_new_dataset_is_one_table_line(tiny_dataset, tmp_path):
    check_dataset_name("tiny")
    assert native_image_shape("tiny") == (3, 8, 8)
    assert "tiny" in dataset_names() and evaluator_for("tiny") is None
    everything = _tiny_loader("tiny", "train", root=tmp_path, download=False, image_shape=None)

    # The default cut: the spec's 12 training images, the rest (up to 5,000) validate.
    train = load_dataset("tiny", data_root=tmp_path, image_shape=(3, 8, 8))
    assert train.name == "tiny" and train.classes == ["a", "b", "c"]
    assert torch.equal(train.images, everything.images[:12])
    val = load_dataset("tiny", "val", data_root=tmp_path, image_shape=(3, 8, 8))
    assert torch.equal(val.images, everything.images[12:])
    assert len(load_dataset("tiny", "test", data_root=tmp_path, image_shape=(3, 8, 8))) == 6
    balanced = load_dataset(
        "tiny", train_size=6, train_subset="balanced", data_root=tmp_path, image_shape=(3, 8, 8)
    )
    assert balanced.labels.bincount().tolist() == [2, 2, 2]

    # Converted to what the networks take, as every dataset is.
    gray = load_dataset("tiny", train_size=5, data_root=tmp_path, image_shape=(1, 16, 16))
    assert gray.images.shape == (5, 1, 16, 16) and gray.images.dtype == torch.uint8
    with pytest.raises(
        GanforgeError, match=r"^tiny can be loaded with 1 or 3 channels, not as 2×8×8$"
    ):
        load_dataset("tiny", data_root=tmp_path, image_shape=(2, 8, 8))


def test_a_new_dataset_is_fetched_through_the_table(tiny_dataset, tmp_path, capsys):
    assert fetchable_datasets() == ("mnist", "fashion-mnist", "emoji", "emoji-google", "tiny")
    assert main(["data", "fetch", "tiny", "--data-root", str(tmp_path), "--download"]) == 0
    assert capsys.readouterr().out.strip() == f"tiny: files in {tmp_path / 'tiny'}"
    assert (tmp_path / "tiny" / "downloaded").is_file()
    assert fetch_dataset("tiny", tmp_path) == tmp_path / "tiny"
    assert (tmp_path / "tiny" / "kept").is_file()


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("cifar10", " (ganforge has no offline copy of CIFAR-10: unpack cifar-10-python.tar.gz"),
        ("folder:photos", " (a folder of your own images is read where it is)"),
        ("svhn", ""),
    ],
)
def test_fetch_refuses_what_the_table_cannot_fetch_and_says_why(tmp_path, name, why):
    with pytest.raises(GanforgeError) as info:
        fetch_dataset(name, tmp_path)
    assert str(info.value).startswith(
        f"cannot fetch {name!r}; choose mnist or fashion-mnist or emoji or emoji-google{why}"
    )


def test_the_evaluator_of_a_dataset_comes_from_the_table(monkeypatch):
    # A new dataset scored by an existing evaluator: the table line names it.
    monkeypatch.setitem(
        DATASETS, "digits", dataclasses.replace(TINY, name="digits", evaluator="mnist")
    )
    assert load_evaluator("digits").dataset == "mnist"
    with pytest.raises(GanforgeError, match="no shipped evaluator fits dataset 'cifar10'"):
        load_evaluator("cifar10")


# --- the architecture table -----------------------------------------------------------------


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_every_built_in_architecture_keeps_the_network_contract(name):
    spec = ARCHITECTURES[name]
    assert spec.name == name
    shape = nets.resolve_image_shape(name, data_shape=lambda: (3, 32, 32))
    assert spec.takes(shape)
    torch.manual_seed(0)
    generator = spec.generator(8, shape, 0.125)
    discriminator = spec.discriminator(shape, 0.125).eval()
    assert isinstance(generator, ConditionableGenerator) and generator.noise_dim == 8
    assert isinstance(discriminator, FeatureDiscriminator)
    assert isinstance(discriminator.net[-1], nn.Linear)
    nets.check_networks(generator, discriminator, needs=NEEDS, source=name)
    images = generator.eval()(torch.randn(3, 8))
    assert images.shape == (3, *shape)
    features = discriminator.features(images)
    assert features.shape == (3, discriminator.net[-1].in_features)
    torch.testing.assert_close(discriminator.net[-1](features), discriminator(images))


def test_the_image_shape_rule_comes_from_the_spec():
    def no_data():
        raise AssertionError("the dataset's shape is not needed here")

    assert nets.resolve_image_shape("mlp", data_shape=no_data) == (1, 28, 28)
    assert nets.resolve_image_shape("radford", 3, data_shape=no_data) == (3, 32, 32)
    assert nets.resolve_image_shape("radford", data_shape=lambda: (1, 0, 0)) == (1, 32, 32)
    assert nets.resolve_image_shape("radford", 0, 64, lambda: (3, 32, 32)) == (3, 64, 64)
    # A user's networks take the dataset's own shape, the flags overriding.
    assert nets.resolve_image_shape("m:build", data_shape=lambda: (3, 32, 32)) == (3, 32, 32)
    assert nets.resolve_image_shape("m:build", 1, 48, lambda: (3, 32, 32)) == (1, 48, 48)


@pytest.mark.parametrize(
    ("architecture", "shape", "message"),
    [
        (
            "mlp",
            (1, 32, 32),
            "the mlp networks work on 1×28×28 images, not 1×32×32: the radford or resnet "
            "networks take 1×32×32",
        ),
        (
            "dcgan",
            (3, 28, 28),
            "the dcgan networks work on 1×28×28 images, not 3×28×28: the radford or resnet "
            "networks take square images of 32 or 64 pixels with 1 or 3 channels",
        ),
        (
            "radford",
            (1, 48, 48),
            "the radford networks need square images of 32 or 64 pixels with 1 or 3 channels, "
            "not 1×48×48",
        ),
    ],
)
def test_a_shape_an_architecture_does_not_take_is_refused_in_one_line(architecture, shape, message):
    with pytest.raises(ValueError) as info:
        nets.check_image_shape(architecture, shape)
    assert str(info.value) == message
    with pytest.raises(ValueError, match=message.split(":")[0]):
        nets.resolve_image_shape(architecture, shape[0], shape[1], lambda: shape)


class _TinyDiscriminator(nn.Module):
    def __init__(self, image_shape, width):
        super().__init__()
        pixels = image_shape[0] * image_shape[1] * image_shape[2]
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(pixels, 4), nn.ReLU(), nn.Linear(4, 1))

    def forward(self, images):
        return self.net(images)

    def features(self, images):
        return self.net[:-1](images)


def _tiny_generator(noise_dim, image_shape, width):
    generator = nn.Sequential(
        nn.Linear(noise_dim, image_shape[0] * image_shape[1] * image_shape[2]),
        nn.Tanh(),
        nn.Unflatten(1, image_shape),
    )
    generator.noise_dim = noise_dim
    return generator


def test_a_new_architecture_is_one_table_line(monkeypatch):
    spec = ArchitectureSpec(
        name="tiny",
        generator=_tiny_generator,
        discriminator=_TinyDiscriminator,
        shapes="square images of 8 or 16 pixels",
        accepts=lambda shape: shape[1] == shape[2] and shape[1] in (8, 16),
        default_size=8,
    )
    monkeypatch.setitem(ARCHITECTURES, "tiny", spec)
    assert "tiny" in ARCHITECTURES and "tiny" in tuple(ARCHITECTURES)
    shape = nets.resolve_image_shape("tiny", data_shape=lambda: (3, 32, 32))
    assert shape == (3, 8, 8)
    generator, discriminator = nets.build_models(
        "tiny", 4, conditioning="projection", num_classes=2, image_shape=shape
    )
    assert nets.class_count(generator) == 2
    images = nets.generate_images(generator, torch.randn(5, 4), torch.tensor([0, 1, 0, 1, 0]))
    assert images.shape == (5, 3, 8, 8)
    assert discriminator(images, torch.zeros(5, dtype=torch.long)).shape == (5, 1)
    with pytest.raises(ValueError, match="the tiny networks need square images of 8 or 16"):
        nets.build_models("tiny", 4, image_shape=(3, 32, 32))
    with pytest.raises(ValueError, match="give either native_shape, or accepts and default_size"):
        ArchitectureSpec(
            "bad",
            _tiny_generator,
            _TinyDiscriminator,
            "any",
            native_shape=(1, 8, 8),
            default_size=8,
        )


# --- the network contract -------------------------------------------------------------------


def _plain_pair():
    generator = nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Unflatten(1, (1, 8, 8)))
    discriminator = nn.Sequential(nn.Flatten(), nn.Linear(64, 1))
    return generator, discriminator


@pytest.mark.parametrize(
    ("pair", "needs", "message"),
    [
        (
            lambda: (_plain_pair()[0], 3),
            (),
            "m:b: the discriminator is a int, not a torch.nn.Module",
        ),
        (
            lambda: (print, _plain_pair()[1]),
            (),
            "m:b: the generator is a builtin_function_or_method",
        ),
        (
            _plain_pair,
            ("conditioning",),
            "m:b: the generator has no noise_dim (an int) (needed by class conditioning",
        ),
        (
            lambda: (_tiny_generator(4, (1, 8, 8), 1), _plain_pair()[1]),
            ("conditioning",),
            "m:b: the discriminator has no features() (needed by class conditioning",
        ),
        (
            _plain_pair,
            ("vae",),
            "m:b: the discriminator has no net (an nn.Sequential of its layers) (needed by the VAE",
        ),
    ],
)
def test_check_networks_names_what_is_missing(pair, needs, message):
    generator, discriminator = pair()
    with pytest.raises(ValueError) as info:
        nets.check_networks(generator, discriminator, needs, source="m:b")
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_check_networks_reads_the_head_the_vae_replaces():
    discriminator = _TinyDiscriminator((1, 8, 8), 1)
    generator = _tiny_generator(4, (1, 8, 8), 1)
    nets.check_networks(generator, discriminator, ("vae", "conditioning"))
    discriminator.net.append(nn.Sigmoid())
    with pytest.raises(ValueError, match=r"a net\[-1\] that is Sigmoid, not an nn.Linear score"):
        nets.check_networks(generator, discriminator, ("vae",))
    with pytest.raises(ValueError, match=r"unknown network needs \['ema'\]"):
        nets.check_networks(generator, discriminator, ("ema",))


USER_MODULE = "ganforge_test_registry_networks"
USER_NETWORKS = """
from torch import nn


class Scorer(nn.Module):
    def __init__(self, pixels):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(pixels, 8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, images):
        return self.net(images)

    def features(self, images):
        return self.net[:-1](images)


def generator(noise_dim, pixels, shape):
    g = nn.Sequential(nn.Linear(noise_dim, pixels), nn.Tanh(), nn.Unflatten(1, shape))
    g.noise_dim = noise_dim
    return g


def keeps(noise_dim, image_shape):
    pixels = image_shape[0] * image_shape[1] * image_shape[2]
    return generator(noise_dim, pixels, image_shape), Scorer(pixels)


def plain(noise_dim, image_shape):
    pixels = image_shape[0] * image_shape[1] * image_shape[2]
    scorer = nn.Sequential(nn.Flatten(), nn.Linear(pixels, 1))
    return generator(noise_dim, pixels, image_shape), scorer


def broken(noise_dim, image_shape):
    return keeps(noise_dim, image_shape)[0], "a discriminator"
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / f"{USER_MODULE}.py").write_text(USER_NETWORKS)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_a_users_networks_are_checked_where_they_are_built(user_module):
    build = functools.partial(
        nets.build_models, noise_dim=4, image_shape=(1, 8, 8), trust_code=True
    )
    with pytest.raises(ValueError) as info:
        build(f"{USER_MODULE}:broken")
    assert str(info.value) == (
        f"architecture {USER_MODULE}:broken: the discriminator is a str, not a torch.nn.Module"
    )
    build(f"{USER_MODULE}:plain")  # a plain GAN needs nothing more
    with pytest.raises(ValueError) as info:
        build(f"{USER_MODULE}:plain", conditioning="acgan", num_classes=3)
    assert str(info.value) == (
        f"architecture {USER_MODULE}:plain: the discriminator has no features() (needed by "
        "class conditioning (--conditioning))"
    )
    with pytest.raises(
        ValueError, match=r"plain: the discriminator has no net .*needed by the VAE"
    ):
        build(f"{USER_MODULE}:plain", needs=("vae",))

    # Networks that keep the contract can be conditioned like the built-in ones.
    generator, discriminator = build(f"{USER_MODULE}:keeps", conditioning="acgan", num_classes=3)
    assert nets.class_count(generator) == 3
    images = nets.generate_images(generator, torch.randn(2, 4), torch.tensor([0, 2]))
    scores, logits = discriminator(images)
    assert scores.shape == (2, 1) and logits.shape == (2, 3)
    conditional = nets.build_generator(
        f"{USER_MODULE}:keeps", 4, "projection", 3, (1, 8, 8), trust_code=True
    )
    assert nets.class_count(conditional) == 3


def test_a_dataset_without_an_evaluator_says_so_at_start_up_and_trains_on(
    tmp_path, image_folder, capsys
):
    run = tmp_path / "run"
    flags = ["--device", "cpu", "--batch-size", "4", "--grid-size", "4", "--max-steps", "2"]
    assert main(["train", "--out", str(run), "--dataset", f"folder:{image_folder}", *flags]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "evaluator" in line]
    assert said == [
        f"ganforge: no evaluator ships for dataset folder:{image_folder}, so this run has no "
        "FID; it trains on, and 'ganforge eval RUN' scores it on raw pixels afterwards (for "
        "FID, train one on its sub-folders: 'ganforge evaluator train --dataset "
        f"folder:{image_folder} --out FILE', then 'ganforge eval RUN --evaluator FILE')"
    ]
    assert json.loads((run / "summary.json").read_text())["steps"] == 2
    assert not (run / "eval.json").exists()
