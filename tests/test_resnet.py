"""The ``resnet`` networks (Miyato et al. 2018's residual GAN) and the ``colour`` preset: shapes
at 32 and 64 px with 1 and 3 channels, spectral norm on every layer of D, class-conditional
BatchNorm, the network contract, and a tiny run on a folder of colour PNGs that resumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.nn.utils import parametrize

from conftest import tiny_train
from ganforge import nets
from ganforge.checkpoint_file import load_checkpoint
from ganforge.cli import main
from ganforge.config import build_config
from ganforge.nets.contract import NEEDS
from ganforge.nets.resnet import (
    RESNET_WIDTH,
    ClassBatchNorm2d,
    ResNetDiscriminator,
    ResNetGenerator,
    UpBlock,
)
from ganforge.presets import PRESETS
from ganforge.training import build_trained_models

SHAPES = [(1, 32, 32), (3, 32, 32), (1, 64, 64), (3, 64, 64)]
WIDTH = 8  # small, so each network runs in milliseconds
CPU = torch.device("cpu")


def _layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


# ---------------------------------------------------------------------------------------------
# Shapes


def test_resnet_is_registered_for_square_32_and_64_pixel_images():
    spec = nets.ARCHITECTURES["resnet"]
    assert isinstance(spec.generator(16, (3, 64, 64), 0.125), ResNetGenerator)
    assert isinstance(spec.discriminator((1, 32, 32), 0.125), ResNetDiscriminator)
    assert [spec.takes(shape) for shape in SHAPES] == [True] * len(SHAPES)
    assert not spec.takes((3, 48, 48)) and not spec.takes((2, 32, 32))
    assert nets.resolve_image_shape("resnet", data_shape=lambda: (3, 0, 0)) == (3, 32, 32)
    # --g-width/--d-width scale the channels of every block.
    assert spec.generator(16, (3, 32, 32), 0.5).width == RESNET_WIDTH // 2
    assert spec.discriminator((3, 32, 32), 2.0).net[-1].in_features == 2 * RESNET_WIDTH


@pytest.mark.parametrize("shape", SHAPES)
def test_generator_draws_the_shape_in_range_from_three_or_four_up_blocks(shape):
    torch.manual_seed(0)
    generator = ResNetGenerator(noise_dim=16, image_shape=shape, width=WIDTH)
    assert len(generator.blocks) == {32: 3, 64: 4}[shape[1]]
    images = generator(torch.randn(5, 16))
    assert images.shape == (5, *shape)
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0


@pytest.mark.parametrize("shape", SHAPES)
def test_discriminator_scores_and_exposes_what_its_head_reads(shape):
    torch.manual_seed(0)
    discriminator = ResNetDiscriminator(image_shape=shape, width=WIDTH).eval()
    images = torch.rand(4, *shape) * 2 - 1
    scores = discriminator(images)
    assert scores.shape == (4, 1)
    torch.testing.assert_close(discriminator(images.flatten(1)), scores)
    features = discriminator.features(images)
    assert features.shape == (4, WIDTH)
    torch.testing.assert_close(discriminator.net[-1](features), scores)
    # The blocks take the images down to 8×8 before the sum pooling.
    assert discriminator.net[:-3](images).shape == (4, WIDTH, 8, 8)
    # No BatchNorm: each image's score is independent of the rest of its batch.
    torch.testing.assert_close(discriminator(images[:1]), scores[:1])


@pytest.mark.parametrize("shape", [(3, 28, 28), (1, 48, 48), (3, 128, 128), (2, 32, 32)])
def test_other_shapes_are_refused(shape):
    with pytest.raises(ValueError, match="the resnet networks need square images of 32 or 64"):
        ResNetGenerator(16, shape, WIDTH)
    with pytest.raises(ValueError, match="32 or 64"):
        ResNetDiscriminator(shape, WIDTH)


def test_the_shortcut_convolution_commutes_with_upsampling():
    """The 1×1 shortcut runs before the upsampling, on a quarter of the pixels: the same
    numbers as SNGAN's upsample-then-convolve."""
    torch.manual_seed(0)
    block, x = UpBlock(4, 6), torch.randn(2, 4, 5, 5)
    up = nn.Upsample(scale_factor=2, mode="nearest")
    torch.testing.assert_close(up(block.shortcut(x)), block.shortcut(up(x)))


def test_parameter_counts_are_what_the_docstrings_say():
    assert nets.count_parameters(ResNetGenerator(128, (3, 32, 32), 32)) == 125_923
    assert nets.count_parameters(ResNetGenerator(128, (3, 64, 64), 32)) == 145_571
    assert nets.count_parameters(ResNetDiscriminator((3, 32, 32), 32)) == 66_849
    assert nets.count_parameters(ResNetDiscriminator((3, 64, 64), 32)) == 86_401


# ---------------------------------------------------------------------------------------------
# The contract: conditioning, the VAE, spectral norm


@pytest.mark.parametrize("shape", [(1, 32, 32), (3, 64, 64)])
def test_the_pair_keeps_the_network_contract(shape):
    generator = nets.build_generator("resnet", 16, image_shape=shape, width=0.125)
    discriminator = ResNetDiscriminator(shape, WIDTH)
    nets.check_networks(generator, discriminator, needs=NEEDS, source="resnet")
    assert isinstance(generator, nets.ConditionableGenerator)
    assert isinstance(discriminator, nets.FeatureDiscriminator)
    # The VAE's encoder replaces the score layer and reads the same features.
    _, body = nets.build_models("resnet", 16, image_shape=shape, d_width=0.125, needs=("vae",))
    mean, log_var = nets.VAEEncoder(body, latent_dim=16)(torch.rand(3, *shape) * 2 - 1)
    assert mean.shape == log_var.shape == (3, 16)


@pytest.mark.parametrize("conditioning", ["projection", "acgan"])
def test_conditioning_makes_every_batchnorm_class_conditional(conditioning):
    torch.manual_seed(0)
    generator, discriminator = nets.build_models(
        "resnet",
        16,
        conditioning=conditioning,
        num_classes=3,
        image_shape=(3, 32, 32),
        g_width=0.125,
        d_width=0.125,
    )
    assert nets.class_count(generator) == 3
    assert generator.embed is None  # the labels go to the BatchNorms, the noise in unchanged
    norms = [m for m in generator.modules() if isinstance(m, ClassBatchNorm2d)]
    assert len(norms) == 7  # two in each of the 3 up-blocks, one before the image
    assert all(norm.scale.num_embeddings == 3 and not norm.norm.affine for norm in norms)

    noise, labels = torch.randn(6, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match="needs labels"):
        nets.generate_images(generator, noise)
    images = nets.generate_images(generator, noise, labels)
    assert images.shape == (6, 3, 32, 32)
    # Every class starts at scale 1 and shift 0; once they differ, so do the classes' images.
    same = nets.generate_images(generator, noise, torch.zeros(6, dtype=torch.long))
    torch.testing.assert_close(images, same)
    for norm in norms:
        nn.init.normal_(norm.scale.weight, 1.0, 0.5)
    generator.eval()
    drawn = [generator(noise[:1], torch.tensor([label])) for label in range(3)]
    assert not torch.allclose(drawn[0], drawn[1]) and not torch.allclose(drawn[1], drawn[2])
    # The discriminator's wrapper reads the resnet features.
    scores = discriminator(images.detach(), labels)
    scores = scores[0] if conditioning == "acgan" else scores
    assert scores.shape == (6, 1)


def test_spectral_norm_reaches_every_layer_of_the_discriminator():
    config = build_config("colour", overrides={"channels": 3, "d_width": 0.125, "g_width": 0.125})
    assert config.spectral_norm
    models = build_trained_models(config, CPU)
    layers = _layers(models.discriminator)
    # optimised first block and one down-block (3 convolutions each), two plain blocks (2
    # each), the score layer
    assert len(layers) == 3 + 3 + 2 + 2 + 1
    assert all(parametrize.is_parametrized(layer, "weight") for layer in layers)
    assert not any(parametrize.is_parametrized(layer) for layer in _layers(models.generator))
    # Each largest singular value is 1 after enough power iterations.
    discriminator = models.discriminator.train()
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    for _ in range(30):
        discriminator(images)
    for layer in layers:
        matrix = layer.weight.reshape(layer.weight.shape[0], -1)
        assert torch.linalg.matrix_norm(matrix, ord=2).item() == pytest.approx(1.0, abs=2e-2)


# ---------------------------------------------------------------------------------------------
# The colour preset, end to end


def test_the_colour_preset_holds_its_sources_settings():
    config = build_config("colour")
    assert (config.architecture, config.loss, config.spectral_norm) == ("resnet", "hinge", True)
    assert (config.augment, config.augment_policy) == ("diffaugment", "color,translation,cutout")
    assert (config.lr, config.beta1, config.beta2) == (1e-3, 0.0, 0.9)
    assert config.image_size == 32 and config.ema > 0
    assert "Miyato et al. 2018" in config.description
    assert "Zhao et al. 2020" in config.description
    assert PRESETS["colour"]["description"] == config.description


def _colour_folder(root: Path, per_class: int = 24) -> Path:
    """Two classes of small colour PNGs: red discs and blue squares on random backgrounds,
    some not 32 px (the data layer resizes them)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    for name, colour in (("discs", (220, 30, 30)), ("squares", (30, 30, 220))):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 80, size=(32, 32, 3), dtype=np.uint8)
            cx, cy = rng.integers(10, 22, size=2)
            inside = (
                (xx - cx) ** 2 + (yy - cy) ** 2 < 36
                if name == "discs"
                else (abs(xx - cx) < 6) & (abs(yy - cy) < 6)
            )
            pixels[inside] = colour
            image = Image.fromarray(pixels)
            if i % 4 == 0:
                image = image.resize((40, 40))
            image.save(root / name / f"{i}.png")
    return root


COLOUR_FLAGS = ["--preset", "colour", "--batch-size", "16"]
COLOUR_FLAGS += ["--g-width", "0.5", "--d-width", "0.5"]  # 16 channels: a quick run


def test_a_colour_run_on_a_folder_trains_samples_and_resumes(tmp_path):
    folder = _colour_folder(tmp_path / "pictures")
    run = tmp_path / "run"
    flags = [*COLOUR_FLAGS, "--dataset", f"folder:{folder}", "--max-steps", "2"]
    assert tiny_train(run, *flags) == 0
    checkpoint = load_checkpoint(run)
    assert checkpoint["step"] == 2 and checkpoint["config"]["architecture"] == "resnet"
    assert checkpoint["config"]["preset"] == "colour" and checkpoint["generator_ema"]
    assert (run / "samples" / "final.png").is_file()
    with Image.open(run / "samples" / "final.png") as grid:
        assert grid.mode == "RGB"

    assert main(["train", "--resume", str(run), "--max-steps", "4", "--quiet"]) == 0
    assert load_checkpoint(run)["step"] == 4
    out = tmp_path / "samples.npz"
    assert main(["sample", str(run), "--num", "5", "--out", str(out)]) == 0
    assert np.load(out)["images"].shape[0] == 5


def test_a_conditional_colour_run_draws_each_class(tmp_path):
    folder = _colour_folder(tmp_path / "pictures", per_class=16)
    run = tmp_path / "run"
    flags = [*COLOUR_FLAGS, "--dataset", f"folder:{folder}", "--max-steps", "2"]
    assert tiny_train(run, *flags, "--conditioning", "projection") == 0
    generator = load_checkpoint(run)["generator"]
    assert "body.norm.scale.weight" in generator and "embed.weight" not in generator
    grid = tmp_path / "classes.png"
    assert main(["sample", str(run), "--per-class-grid", "--grid", str(grid)]) == 0
    assert grid.is_file()
