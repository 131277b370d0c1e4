"""What training minimises: the GAN objectives (each a discriminator loss and a generator loss
over discriminator scores), the gradient penalties that regularise a discriminator, and the VAE's
evidence lower bound (:func:`elbo`).

Scores may have shape ``(N,)`` or ``(N, 1)``; they are flattened to ``(N,)`` first, so that an
``(N, 1)`` score never broadcasts against ``(N,)`` targets into an ``N × N`` matrix. Every loss
is a mean over the minibatch (never a sum) and returns a 0-d tensor of the scores' dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _flat(scores: torch.Tensor) -> torch.Tensor:
    return scores.reshape(-1)


Target = float | torch.Tensor
"""A discriminator's label for each image: one number for all, or one per image ``(N,)``."""


def _targets(scores: torch.Tensor, target: Target) -> torch.Tensor:
    if isinstance(target, torch.Tensor):
        return target.reshape(-1).to(scores.dtype)
    return torch.full_like(scores, target)


def bce_with_logits(logits: torch.Tensor, target: Target) -> torch.Tensor:
    """Mean binary cross-entropy of ``sigmoid(logits)`` against a label (stable)."""
    logits = _flat(logits)
    return F.binary_cross_entropy_with_logits(logits, _targets(logits, target))


def gan_discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """``mean BCE(D(x), 1) + mean BCE(D(G(z)), 0)`` (Goodfellow et al. 2014)."""
    return gan_labelled_discriminator_loss(logits_real, logits_fake, 1.0, 0.0)


def gan_labelled_discriminator_loss(
    logits_real: torch.Tensor, logits_fake: torch.Tensor, real_target: Target, fake_target: Target
) -> torch.Tensor:
    """``mean BCE(D(x), real_target) + mean BCE(D(G(z)), fake_target)``: one-sided label
    smoothing (``real_target`` 0.9) and flipped labels (per image ``(N,)`` targets)."""
    return bce_with_logits(logits_real, real_target) + bce_with_logits(logits_fake, fake_target)


def gan_generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``mean BCE(D(G(z)), 1)``."""
    return bce_with_logits(logits_fake, 1.0)


def lsgan_discriminator_loss(scores_real: torch.Tensor, scores_fake: torch.Tensor) -> torch.Tensor:
    """``0.5 · mean((D(x) − 1)²) + 0.5 · mean(D(G(z))²)`` (Mao et al. 2017, eq. 9: ``b`` = 1,
    ``a`` = 0)."""
    return lsgan_labelled_discriminator_loss(scores_real, scores_fake, 1.0, 0.0)


def lsgan_labelled_discriminator_loss(
    scores_real: torch.Tensor, scores_fake: torch.Tensor, real_target: Target, fake_target: Target
) -> torch.Tensor:
    """``0.5 · mean((D(x) − real_target)²) + 0.5 · mean((D(G(z)) − fake_target)²)``."""
    real, fake = _flat(scores_real), _flat(scores_fake)
    return (
        0.5 * (real - _targets(real, real_target)).square().mean()
        + 0.5 * (fake - _targets(fake, fake_target)).square().mean()
    )


def lsgan_generator_loss(scores_fake: torch.Tensor) -> torch.Tensor:
    """``0.5 · mean((D(G(z)) − 1)²)``."""
    return 0.5 * (_flat(scores_fake) - 1).square().mean()


def wasserstein_critic_loss(scores_real: torch.Tensor, scores_fake: torch.Tensor) -> torch.Tensor:
    """``mean D(G(z)) − mean D(x)``: the negated Wasserstein-1 estimate (Arjovsky et al. 2017)."""
    return _flat(scores_fake).mean() - _flat(scores_real).mean()


def wasserstein_generator_loss(scores_fake: torch.Tensor) -> torch.Tensor:
    """``−mean D(G(z))``."""
    return -_flat(scores_fake).mean()


def hinge_discriminator_loss(scores_real: torch.Tensor, scores_fake: torch.Tensor) -> torch.Tensor:
    """``mean relu(1 − D(x)) + mean relu(1 + D(G(z)))`` (Lim & Ye 2017; Miyato et al. 2018)."""
    return F.relu(1 - _flat(scores_real)).mean() + F.relu(1 + _flat(scores_fake)).mean()


def _input_gradient(
    critic: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor
) -> torch.Tensor:
    """``∇_x Σ D(x)`` per image, flattened to ``(N, C·H·W)``, kept differentiable."""
    images = images.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(critic(images).sum(), images, create_graph=True)
    return gradient.flatten(1)


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    mix: torch.Tensor,
) -> torch.Tensor:
    """WGAN-GP's penalty ``mean((‖∇D(x̂)‖₂ − 1)²)`` at ``x̂ = mix·x + (1 − mix)·G(z)``
    (Gulrajani et al. 2017); ``mix`` has shape ``(N,)``, values in ``[0, 1]``. The loss adds
    λ times it (λ = 10 in the paper)."""
    mix = mix.reshape(-1, *([1] * (real.dim() - 1))).to(real.dtype)
    mixed = mix * real.detach() + (1 - mix) * fake.detach()
    return (_input_gradient(critic, mixed).norm(dim=1) - 1).square().mean()


def r1_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """R1's ``mean ‖∇D(x)‖₂²`` on real images (Mescheder et al. 2018); the loss adds γ/2 times
    it."""
    return _input_gradient(critic, real).square().sum(dim=1).mean()


@dataclass(frozen=True)
class Objective:
    """A named pair of losses, plus how to read the discriminator's scores for the logs.

    ``score_summary`` maps raw scores to the number logged as D(x) and D(G(z)): the mean
    probability of "real" for BCE, the mean raw score otherwise. ``d_wins_below``: the logged
    D(G(z)) under which D is winning outright (``None`` where scores are unbounded, as a
    Wasserstein critic's or a hinge discriminator's are). ``real_side``: the raw score above
    which D calls an image real (ADA counts the signs about it). ``labelled_discriminator_loss``:
    for a D that classifies real against fake with labels that can be changed, its loss with
    ``(scores_real, scores_fake, real_target, fake_target)`` (``None`` for the others).
    """

    name: str
    discriminator_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    generator_loss: Callable[[torch.Tensor], torch.Tensor]
    score_summary: Callable[[torch.Tensor], torch.Tensor]
    d_wins_below: float | None = 0.01
    real_side: float = 0.0
    labelled_discriminator_loss: Callable[..., torch.Tensor] | None = None


OBJECTIVES: dict[str, Objective] = {
    "gan": Objective(
        "gan",
        gan_discriminator_loss,
        gan_generator_loss,
        lambda scores: torch.sigmoid(scores).mean(),
        labelled_discriminator_loss=gan_labelled_discriminator_loss,
    ),
    "lsgan": Objective(
        "lsgan",
        lsgan_discriminator_loss,
        lsgan_generator_loss,
        lambda scores: scores.mean(),
        real_side=0.5,  # halfway between the targets 0 (fake) and 1 (real)
        labelled_discriminator_loss=lsgan_labelled_discriminator_loss,
    ),
    "wgan": Objective(
        "wgan",
        wasserstein_critic_loss,
        wasserstein_generator_loss,
        lambda scores: scores.mean(),
        d_wins_below=None,
    ),
    "hinge": Objective(
        "hinge",
        hinge_discriminator_loss,
        wasserstein_generator_loss,  # the generator's hinge loss is −mean D(G(z)) as well
        lambda scores: scores.mean(),
        d_wins_below=None,
    ),
}


#: The objectives whose discriminator classifies real against fake with labels.
LABELLED_LOSSES = tuple(
    name for name, objective in OBJECTIVES.items() if objective.labelled_discriminator_loss
)

#: The ``loss`` that trains a VAE instead of a GAN.
VAE_LOSS = "elbo"


LIKELIHOODS = ("bernoulli", "gaussian")


#: The Bernoulli mean is clamped this far from 0 and 1, so that a saturated tanh costs a large
#: but finite log-likelihood (PyTorch's binary cross-entropy clamps its logarithms alike).
_EPS = 1e-6


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
