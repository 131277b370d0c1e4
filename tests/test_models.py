"""The assignment's networks: parameter counts, shapes, value ranges, init and noise."""

import pytest
import torch
from torch import nn

from ganforge import nets as models


@pytest.mark.parametrize(
    ("architecture", "g_params", "d_params"),
    [("mlp", 1_858_320, 267_009), ("dcgan", 6_580_801, 1_102_721)],
)
def test_parameter_counts_match_the_assignment(architecture, g_params, d_params):
    generator, discriminator = models.build_models(architecture, noise_dim=4)
    assert models.count_parameters(generator) == g_params
    assert models.count_parameters(discriminator) == d_params


@pytest.mark.parametrize("architecture", ["mlp", "dcgan"])
def test_shapes_and_ranges(architecture):
    torch.manual_seed(0)
    generator, discriminator = models.build_models(architecture, noise_dim=96, init="xavier")
    noise = models.sample_noise(16, 96)
    images = generator(noise)
    assert images.shape == (16, 1, 28, 28)
    assert images.min() >= -1 and images.max() <= 1
    assert images.std() > 0.01, "a tanh output of random weights should not be constant"
    scores = discriminator(images)
    assert scores.shape == (16, 1)
    # Flat (N, 784) input gives the same scores as images.
    torch.testing.assert_close(discriminator(images.reshape(16, 784)), scores)


def test_dcgan_generator_layer_order_follows_the_text():
    layers = [type(m) for m in models.DCGANGenerator(96).net]
    assert layers == [
        nn.Linear,
        nn.ReLU,
        nn.BatchNorm1d,
        nn.Linear,
        nn.ReLU,
        nn.BatchNorm1d,
        nn.Unflatten,
        nn.ConvTranspose2d,
        nn.ReLU,
        nn.BatchNorm2d,
        nn.ConvTranspose2d,
        nn.Tanh,
    ]


def test_dcgan_discriminator_has_no_batchnorm():
    assert not any(
        isinstance(m, nn.modules.batchnorm._BatchNorm)
        for m in models.DCGANDiscriminator().modules()
    )


def test_leaky_relu_slope_is_001():
    for cls in (models.MLPDiscriminator, models.DCGANDiscriminator):
        slopes = {m.negative_slope for m in cls().modules() if isinstance(m, nn.LeakyReLU)}
        assert slopes == {0.01}


def test_xavier_init_touches_linear_and_conv_transpose_weights_only():
    torch.manual_seed(0)
    layer = nn.Linear(300, 200)
    bias_before = layer.bias.clone()
    models.xavier_init_(layer)
    bound = (6 / (300 + 200)) ** 0.5
    assert layer.weight.abs().max() <= bound
    # PyTorch's default bound for this layer is 1/sqrt(300) ≈ 0.058 < xavier's 0.110:
    assert layer.weight.abs().max() > 1 / 300**0.5
    assert torch.equal(layer.bias, bias_before)
    conv = nn.Conv2d(1, 4, 3)
    weight_before = conv.weight.clone()
    models.xavier_init_(conv)
    assert torch.equal(conv.weight, weight_before)


def test_noise_is_uniform_in_minus_one_one():
    torch.manual_seed(0)
    noise = models.sample_noise(4096, 96)
    assert noise.shape == (4096, 96)
    assert noise.dtype == torch.float32
    assert noise.min() >= -1 and noise.max() < 1
    assert abs(noise.mean().item()) < 0.01
    assert abs(noise.var().item() - 1 / 3) < 0.01  # variance of U(-1, 1)
    assert noise.min() < -0.99 and noise.max() > 0.99


def test_noise_follows_a_given_generator():
    first = models.sample_noise(8, 5, generator=torch.Generator().manual_seed(3))
    second = models.sample_noise(8, 5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, second)
