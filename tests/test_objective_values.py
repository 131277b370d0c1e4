"""The losses against independent float64 numpy references (rel_error < 1e-7)."""

import numpy as np
import pytest
import torch

from ganforge import objectives as losses
from ganforge.assignment import rel_error


def np_bce(logits: np.ndarray, target: float) -> np.ndarray:
    """Binary cross-entropy of sigmoid(logits), written from its definition, in float64."""
    probability = 1 / (1 + np.exp(-logits))
    return -(target * np.log(probability) + (1 - target) * np.log(1 - probability))


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    return rng.normal(0, 2, size=64), rng.normal(0, 2, size=64)


def as_tensor(values, shape, dtype):
    return torch.tensor(values, dtype=dtype).reshape(shape)


SHAPES = [(64,), (64, 1)]
DTYPES = [torch.float64, torch.float32]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_gan_losses(scores, shape, dtype):
    real, fake = scores
    tolerance = 1e-7 if dtype == torch.float64 else 1e-6
    expected_d = np_bce(real, 1).mean() + np_bce(fake, 0).mean()
    expected_g = np_bce(fake, 1).mean()
    d = losses.gan_discriminator_loss(as_tensor(real, shape, dtype), as_tensor(fake, shape, dtype))
    g = losses.gan_generator_loss(as_tensor(fake, shape, dtype))
    assert d.shape == () and g.shape == ()
    assert d.dtype == dtype
    assert rel_error(d, expected_d) < tolerance
    assert rel_error(g, expected_g) < tolerance


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_lsgan_losses(scores, shape, dtype):
    real, fake = scores
    tolerance = 1e-7 if dtype == torch.float64 else 1e-6
    expected_d = 0.5 * np.mean((real - 1) ** 2) + 0.5 * np.mean(fake**2)
    expected_g = 0.5 * np.mean((fake - 1) ** 2)
    d = losses.lsgan_discriminator_loss(
        as_tensor(real, shape, dtype), as_tensor(fake, shape, dtype)
    )
    g = losses.lsgan_generator_loss(as_tensor(fake, shape, dtype))
    assert d.shape == () and g.shape == ()
    assert rel_error(d, expected_d) < tolerance
    assert rel_error(g, expected_g) < tolerance


def test_mixed_n1_and_n_shapes_never_broadcast_to_n_by_n(scores):
    """(N, 1) real scores with (N,) fake scores: an N×N broadcast would change the value."""
    real, fake = scores
    real_t = torch.tensor(real).reshape(64, 1)
    fake_t = torch.tensor(fake)
    expected = 0.5 * np.mean((real - 1) ** 2) + 0.5 * np.mean(fake**2)
    assert rel_error(losses.lsgan_discriminator_loss(real_t, fake_t), expected) < 1e-7
    expected = np_bce(real, 1).mean() + np_bce(fake, 0).mean()
    assert rel_error(losses.gan_discriminator_loss(real_t, fake_t), expected) < 1e-7


def test_bce_is_stable_for_huge_logits():
    logits = torch.tensor([1e4, -1e4], dtype=torch.float64)
    assert torch.isfinite(losses.gan_generator_loss(logits))
    assert losses.gan_generator_loss(logits).item() == pytest.approx(1e4 / 2)


def test_losses_are_means_not_sums(scores):
    """Repeating a batch must leave every loss unchanged."""
    real, fake = (torch.tensor(s) for s in scores)
    real2, fake2 = real.repeat(3), fake.repeat(3)
    for objective in losses.OBJECTIVES.values():
        torch.testing.assert_close(
            objective.discriminator_loss(real, fake), objective.discriminator_loss(real2, fake2)
        )
        torch.testing.assert_close(objective.generator_loss(fake), objective.generator_loss(fake2))


def test_losses_backpropagate():
    scores = torch.zeros(8, 1, requires_grad=True)
    losses.gan_generator_loss(scores).backward()
    # d/dx BCE(x, 1) at x = 0 is sigmoid(0) - 1 = -0.5, divided by the batch of 8.
    torch.testing.assert_close(scores.grad, torch.full((8, 1), -0.5 / 8))
