"""GAN objectives: each a discriminator loss and a generator loss over discriminator scores.

Scores may have shape ``(N,)`` or ``(N, 1)``; they are flattened to ``(N,)`` first, so that an
``(N, 1)`` score never broadcasts against ``(N,)`` targets into an ``N × N`` matrix. Every loss
is a mean over the minibatch (never a sum) and returns a 0-d tensor of the scores' dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _flat(scores: torch.Tensor) -> torch.Tensor:
    return scores.reshape(-1)


def bce_with_logits(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Mean binary cross-entropy of ``sigmoid(logits)`` against a constant label (stable)."""
    logits = _flat(logits)
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def gan_discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """``mean BCE(D(x), 1) + mean BCE(D(G(z)), 0)`` (Goodfellow et al. 2014)."""
    return bce_with_logits(logits_real, 1.0) + bce_with_logits(logits_fake, 0.0)


def gan_generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``mean BCE(D(G(z)), 1)``."""
    return bce_with_logits(logits_fake, 1.0)


def lsgan_discriminator_loss(scores_real: torch.Tensor, scores_fake: torch.Tensor) -> torch.Tensor:
    """``0.5 · mean((D(x) − 1)²) + 0.5 · mean(D(G(z))²)`` (Mao et al. 2017, eq. 9)."""
    return 0.5 * (_flat(scores_real) - 1).square().mean() + 0.5 * _flat(scores_fake).square().mean()


def lsgan_generator_loss(scores_fake: torch.Tensor) -> torch.Tensor:
    """``0.5 · mean((D(G(z)) − 1)²)``."""
    return 0.5 * (_flat(scores_fake) - 1).square().mean()


@dataclass(frozen=True)
class Objective:
    """A named pair of losses, plus how to read the discriminator's scores for the logs.

    ``score_summary`` maps raw scores to the number logged as D(x) and D(G(z)): the mean
    probability of "real" for BCE, the mean raw score for least squares.
    """

    name: str
    discriminator_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    generator_loss: Callable[[torch.Tensor], torch.Tensor]
    score_summary: Callable[[torch.Tensor], torch.Tensor]


OBJECTIVES: dict[str, Objective] = {
    "gan": Objective(
        "gan",
        gan_discriminator_loss,
        gan_generator_loss,
        lambda scores: torch.sigmoid(scores).mean(),
    ),
    "lsgan": Objective(
        "lsgan", lsgan_discriminator_loss, lsgan_generator_loss, lambda scores: scores.mean()
    ),
}
