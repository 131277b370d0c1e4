"""A Variational Autoencoder (Kingma & Welling 2014) trained by the same loop as the GANs.

The VAE reuses an architecture's two networks: its generator is the decoder, mapping a latent
code ``(N, noise_dim)`` to images ``(N, C, H, W)`` in ``[-1, 1]``, and its discriminator's
feature layers, with a linear head, are the encoder :class:`VAEEncoder`, mapping images to the
mean and log-variance of a diagonal Gaussian posterior. The prior is the standard normal, so a
VAE run draws its noise from ``normal`` and ``ganforge sample`` decodes draws from the prior.

The objective (:func:`elbo`) is the evidence lower bound per image, in nats:
``E_q[log p(x | z)] − KL(q(z | x) ‖ N(0, I))`` with one reparameterised draw of ``z``, under
one of two likelihoods (:data:`LIKELIHOODS`):

* ``bernoulli``: each pixel's grey level ``(x + 1) / 2`` in ``[0, 1]`` is the target of a
  Bernoulli with mean ``(x̂ + 1) / 2`` (the usual treatment of MNIST's grey levels);
* ``gaussian``: ``x ~ N(x̂, σ²)`` per pixel, in the ``[-1, 1]`` units of the images, with one
  learned ``σ`` for all pixels (the calibrated decoder of Rybkin et al. 2021), which weighs
  reconstruction against the KL term by the data rather than by a hand-set constant.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: The ``loss`` that trains a VAE instead of a GAN.
VAE_LOSS = "elbo"
LIKELIHOODS = ("bernoulli", "gaussian")

#: The Bernoulli mean is clamped this far from 0 and 1, so that a saturated tanh costs a large
#: but finite log-likelihood (PyTorch's binary cross-entropy clamps its logarithms alike).
_EPS = 1e-6


class VAEEncoder(nn.Module):
    """``q(z | x)``: a discriminator whose scoring layer is replaced by a linear layer to the
    posterior's mean and log-variance.

    Images ``(N, C, H, W)`` in ``[-1, 1]`` → ``(mean, log_var)``, each ``(N, latent_dim)``.
    A Gaussian likelihood's learned ``log_sigma`` lives here too, so that the decoder stays a
    plain generator that ``ganforge sample`` loads like any other.
    """

    def __init__(self, body: nn.Module, latent_dim: int, likelihood: str = "bernoulli") -> None:
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; choose one of {LIKELIHOODS}")
        self.latent_dim, self.likelihood = latent_dim, likelihood
        body.net[-1] = nn.Linear(body.net[-1].in_features, 2 * latent_dim)
        self.body = body
        # A parameter only when used: DDP refuses parameters that get no gradient.
        self.log_sigma = nn.Parameter(torch.zeros(())) if likelihood == "gaussian" else None

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.body(images).chunk(2, dim=1)
        return mean, log_var


def reconstruct(encoder: VAEEncoder, decoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The decoder's images of the posterior means of ``images``: ``(N, C, H, W)`` in
    ``[-1, 1]`` → the same shape and range."""
    mean, _ = encoder(images)
    return decoder(mean)


def reparameterise(
    mean: torch.Tensor, log_var: torch.Tensor, standard_normal: torch.Tensor
) -> torch.Tensor:
    """``z = mean + σ · ε`` with ``σ = exp(log_var / 2)`` and ``ε`` a standard-normal draw of
    the same shape ``(N, latent_dim)``: a sample of ``q(z | x)`` that gradients flow through."""
    return mean + torch.exp(0.5 * log_var) * standard_normal


def gaussian_kl(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """``KL(N(mean, exp(log_var)) ‖ N(0, I))`` per row, in nats: ``(N, d)`` → ``(N,)``."""
    return 0.5 * (mean.square() + log_var.exp() - 1 - log_var).sum(dim=1)


def log_likelihood(
    images: torch.Tensor,
    decoded: torch.Tensor,
    likelihood: str,
    log_sigma: torch.Tensor | None = None,
) -> torch.Tensor:
    """``log p(x | z)`` per image, in nats: ``images`` and the decoder's ``decoded`` means, both
    ``(N, C, H, W)`` in ``[-1, 1]`` → ``(N,)``. ``log_sigma``: the Gaussian's scalar ``log σ``."""
    if likelihood == "bernoulli":
        target = (images + 1) / 2
        mean = ((decoded + 1) / 2).clamp(_EPS, 1 - _EPS)
        per_pixel = target * mean.log() + (1 - target) * (-mean).log1p()
    elif likelihood == "gaussian":
        if log_sigma is None:
            raise ValueError("a Gaussian likelihood needs log_sigma")
        z = (images - decoded) * torch.exp(-log_sigma)
        per_pixel = -0.5 * z.square() - log_sigma - 0.5 * math.log(2 * math.pi)
    else:
        raise ValueError(f"unknown likelihood {likelihood!r}; choose one of {LIKELIHOODS}")
    return per_pixel.flatten(1).sum(dim=1)


def elbo(
    images: torch.Tensor,
    decoded: torch.Tensor,
    mean: torch.Tensor,
    log_var: torch.Tensor,
    likelihood: str,
    log_sigma: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The evidence lower bound per image and its two terms, each ``(N,)`` in nats:
    ``(elbo, reconstruction, kl)`` with ``elbo = −reconstruction − kl``, where
    ``reconstruction = −log p(x | z)`` at the decoded draw and ``kl`` is the posterior's
    divergence from the prior. Training minimises ``−elbo``."""
    reconstruction = -log_likelihood(images, decoded, likelihood, log_sigma)
    kl = gaussian_kl(mean, log_var)
    return -reconstruction - kl, reconstruction, kl
