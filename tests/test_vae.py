"""The VAE: its ELBO against torch.distributions and a hand-worked case, its encoder, its
configuration, and its runs through the one training loop."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from conftest import tiny_train
from ganforge.cli import main
from ganforge.config import build_config
from ganforge.data.datasets import to_uint8
from ganforge.errors import GanforgeError
from ganforge.nets import DCGANDiscriminator, MLPDiscriminator, VAEEncoder, sample_noise
from ganforge.objectives import elbo, gaussian_kl, log_likelihood, reparameterise
from ganforge.sampling import load_generator
from ganforge.training import VaeStep, build_step, build_trained_models, iterate_training


def test_elbo_of_a_hand_worked_case():
    # One image of two pixels: grey levels 1 and 0.5; decoded means 0.8 and 0.5.
    images = torch.tensor([[[[1.0, 0.0]]]])  # (x + 1) / 2 = 1, 0.5
    decoded = torch.tensor([[[[0.6, 0.0]]]])  # (x̂ + 1) / 2 = 0.8, 0.5
    mean, log_var = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(4.0)]])
    total, reconstruction, kl = elbo(images, decoded, mean, log_var, "bernoulli")
    # −log p = −log 0.8 − (0.5 log 0.5 + 0.5 log 0.5)
    assert reconstruction.item() == pytest.approx(-math.log(0.8) - math.log(0.5), rel=1e-6)
    # KL = ½(1 + 1 − 1 − 0) + ½(0 + 4 − 1 − log 4)
    assert kl.item() == pytest.approx(0.5 + 0.5 * (3 - math.log(4.0)), rel=1e-6)
    assert total.item() == pytest.approx(-reconstruction.item() - kl.item())


def test_bernoulli_likelihood_matches_torch_distributions():
    torch.manual_seed(0)
    images = torch.rand(3, 1, 4, 4) * 2 - 1
    decoded = torch.rand(3, 1, 4, 4) * 1.8 - 0.9
    expected = (
        Bernoulli(probs=(decoded + 1) / 2, validate_args=False)
        .log_prob((images + 1) / 2)
        .sum(dim=(1, 2, 3))
    )
    assert torch.allclose(log_likelihood(images, decoded, "bernoulli"), expected, atol=1e-5)


def test_gaussian_likelihood_matches_torch_distributions():
    torch.manual_seed(1)
    images, decoded = torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5)
    log_sigma = torch.tensor(-0.7)
    expected = Normal(decoded, log_sigma.exp()).log_prob(images).sum(dim=(1, 2, 3))
    got = log_likelihood(images, decoded, "gaussian", log_sigma)
    assert torch.allclose(got, expected, atol=1e-4)
    with pytest.raises(ValueError, match="log_sigma"):
        log_likelihood(images, decoded, "gaussian")


def test_kl_matches_torch_distributions():
    torch.manual_seed(2)
    mean, log_var = torch.randn(4, 6), torch.randn(4, 6)
    posterior = Normal(mean, (0.5 * log_var).exp())
    expected = kl_divergence(posterior, Normal(0.0, 1.0)).sum(dim=1)
    assert torch.allclose(gaussian_kl(mean, log_var), expected, atol=1e-5)
    assert torch.all(gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)) == 0)


def test_reparameterised_draws_have_the_posteriors_moments_and_gradients():
    mean = torch.tensor([[2.0, -1.0]], requires_grad=True)
    log_var = torch.tensor([[math.log(0.25), 0.0]], requires_grad=True)
    eps = torch.randn(200_000, 2, generator=torch.Generator().manual_seed(3))
    z = reparameterise(mean.expand(200_000, 2), log_var.expand(200_000, 2), eps)
    assert z.mean(0).tolist() == pytest.approx([2.0, -1.0], abs=0.01)
    assert z.std(0).tolist() == pytest.approx([0.5, 1.0], abs=0.01)
    z.sum().backward()
    assert mean.grad.tolist() == [[200_000.0, 200_000.0]]


@pytest.mark.parametrize("body", [MLPDiscriminator, DCGANDiscriminator])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_encoder_gives_a_posterior_per_image(body, likelihood):
    encoder = VAEEncoder(body(), latent_dim=7, learned_sigma=likelihood == "gaussian")
    mean, log_var = encoder(torch.rand(5, 1, 28, 28) * 2 - 1)
    assert mean.shape == log_var.shape == (5, 7)
    assert (encoder.log_sigma is not None) == (likelihood == "gaussian")
    (mean.sum() + log_var.sum()).backward()
    assert all(p.grad is not None for name, p in encoder.named_parameters() if "sigma" not in name)


def test_vae_config_refuses_gan_options():
    assert build_config("vae").noise == "normal"
    for overrides, message in [
        ({"noise": "uniform"}, "noise must be normal"),
        ({"conditioning": "projection"}, "conditioning is a GAN option"),
        ({"n_critic": 5}, "n_critic is a GAN option"),
        ({"gp_weight": 10.0}, "gp_weight is a GAN option"),
        ({"spectral_norm": True}, "spectral_norm is a GAN option"),
        ({"likelihood": "poisson"}, "likelihood must be one of bernoulli, gaussian"),
    ]:
        with pytest.raises(GanforgeError, match=message):
            build_config("vae", overrides=overrides)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_vae_steps_raise_the_elbo(likelihood):
    torch.manual_seed(0)
    config = build_config(
        "vae", overrides={"likelihood": likelihood, "device": "cpu", "noise_dim": 8}
    )
    vae = build_trained_models(config, torch.device("cpu"))
    images = torch.zeros(64, 1, 28, 28, dtype=torch.uint8)
    images[:, :, 8:20, 8:20] = 255  # one square: easy to reconstruct
    step = build_step(vae, torch.Generator().manual_seed(1))
    assert isinstance(step, VaeStep)
    losses = [
        it.stats["loss"]
        for it in iterate_training(step, images, batch_size=32, epochs=15, shuffle=False)
    ]
    assert losses[-1] < 0.7 * losses[0]
    stats, _ = step(images[:32].float() / 127.5 - 1)
    assert stats["loss"] == pytest.approx(stats["reconstruction"] + stats["kl"], rel=1e-5)
    assert stats["kl"] >= 0


def test_vae_run_logs_the_elbo_and_samples_its_prior(tmp_path, capsys):
    run = tmp_path / "vae"
    assert tiny_train(run, "--preset", "vae", "--max-steps", "4") == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert len(steps) == 4
    for record in steps:
        assert record["loss"] == pytest.approx(record["reconstruction"] + record["kl"], rel=1e-5)
    assert (run / "samples" / "reconstructions.png").is_file()
    assert (run / "loss_curve.png").is_file()

    generator, config = load_generator(run)
    assert config.noise == "normal" and config.loss == "elbo"
    out = tmp_path / "samples.npz"
    flags = ["--num", "6", "--seed", "5", "--truncation", "0.5"]
    assert main(["sample", str(run), *flags, "--out", str(out)]) == 0
    # The samples decode standard-normal codes at temperature 0.5.
    rng = torch.Generator().manual_seed(5)
    codes = sample_noise(6, config.noise_dim, distribution="normal", generator=rng) * 0.5
    with torch.no_grad():
        expected = to_uint8(generator(codes))[:, 0].numpy()
    assert np.array_equal(np.load(out)["images"], expected)
