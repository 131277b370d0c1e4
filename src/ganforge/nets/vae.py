"""The encoder of a Variational Autoencoder (Kingma & Welling 2014), trained by the same loop as
the GANs (its objective, :func:`ganforge.objectives.elbo`, lives with the GAN losses).

The VAE reuses an architecture's two networks: its generator is the decoder, mapping a latent
code ``(N, noise_dim)`` to images ``(N, C, H, W)`` in ``[-1, 1]``, and its discriminator's
feature layers, with a linear head, are the encoder :class:`VAEEncoder`, mapping images to the
mean and log-variance of a diagonal Gaussian posterior. The prior is the standard normal, so a
VAE run draws its noise from ``normal`` and ``ganforge sample`` decodes draws from the prior.

The objective (``ganforge.objectives.elbo``) is the evidence lower bound per image, in nats:
``E_q[log p(x | z)] − KL(q(z | x) ‖ N(0, I))`` with one reparameterised draw of ``z``, under
one of two likelihoods (``ganforge.objectives.LIKELIHOODS``):

* ``bernoulli``: each pixel's grey level ``(x + 1) / 2`` in ``[0, 1]`` is the target of a
  Bernoulli with mean ``(x̂ + 1) / 2`` (the usual treatment of MNIST's grey levels);
* ``gaussian``: ``x ~ N(x̂, σ²)`` per pixel, in the ``[-1, 1]`` units of the images, with one
  learned ``σ`` for all pixels (the calibrated decoder of Rybkin et al. 2021), which weighs
  reconstruction against the KL term by the data rather than by a hand-set constant.
"""

from __future__ import annotations

import torch
from torch import nn


class VAEEncoder(nn.Module):
    """``q(z | x)``: a discriminator whose scoring layer is replaced by a linear layer to the
    posterior's mean and log-variance.

    Images ``(N, C, H, W)`` in ``[-1, 1]`` → ``(mean, log_var)``, each ``(N, latent_dim)``.
    A Gaussian likelihood's learned ``log_sigma`` (``learned_sigma``) lives here too, so that the
    decoder stays a plain generator that ``ganforge sample`` loads like any other.
    """

    def __init__(self, body: nn.Module, latent_dim: int, learned_sigma: bool = False) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        body.net[-1] = nn.Linear(body.net[-1].in_features, 2 * latent_dim)
        self.body = body
        # A parameter only when used: DDP refuses parameters that get no gradient.
        self.log_sigma = nn.Parameter(torch.zeros(())) if learned_sigma else None

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.body(images).chunk(2, dim=1)
        return mean, log_var


def reconstruct(encoder: VAEEncoder, decoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The decoder's images of the posterior means of ``images``: ``(N, C, H, W)`` in
    ``[-1, 1]`` → the same shape and range."""
    mean, _ = encoder(images)
    return decoder(mean)
