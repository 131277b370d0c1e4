"""Class-conditional wrappers around an unconditional generator or discriminator: ``G(z, y)``,
the projection discriminator and AC-GAN's auxiliary-classifier discriminator.
"""

from __future__ import annotations

import torch
from torch import nn


class ConditionalGenerator(nn.Module):
    """``G(z, y)``: an unconditional generator fed the noise times a learned embedding of the
    class label ``y``, element by element (the conditioning of the PyTorch-GAN AC-GAN).

    The product, unlike the concatenation ``[z, e(y)]`` of Mirza & Osindero 2014, leaves G no
    input that carries the label without the noise: with the concatenation, ganforge's DCGAN
    generators learned to ignore ``z`` and drew one image per class on MNIST (pixel std across
    noise 0.005, recall 0).

    A body that can take the labels itself, one with ``condition_on(num_classes)`` (the
    ``resnet`` generator: class-conditional BatchNorm, as in Miyato & Koyama 2018), is
    conditioned that way instead: ``condition_on`` is called once, the body is called
    ``body(noise, labels)`` and the noise goes in unchanged (no ``embed``).

    ``noise (N, noise_dim)`` and ``labels (N,)`` in ``[0, num_classes)`` → images
    ``(N, C, H, W)`` in ``[-1, 1]``.
    """

    def __init__(self, body: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.noise_dim, self.num_classes = body.noise_dim, num_classes
        condition_on = getattr(body, "condition_on", None)
        self.embed = None if callable(condition_on) else nn.Embedding(num_classes, body.noise_dim)
        if self.embed is None:
            condition_on(num_classes)
        self.body = body

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.embed is None:
            return self.body(noise, labels)
        return self.body(noise * self.embed(labels).to(noise.dtype))


class ProjectionDiscriminator(nn.Module):
    """``D(x, y) = ψ(φ(x)) + ⟨e(y), φ(x)⟩`` (Miyato & Koyama 2018): an unconditional
    discriminator's features φ and last layer ψ, plus the inner product of the features with a
    learned embedding of the label. Images and labels ``(N,)`` → scores ``(N, 1)``."""

    def __init__(self, body: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.body, self.num_classes = body, num_classes
        self.embed = nn.Embedding(num_classes, body.net[-1].in_features)
        nn.init.xavier_uniform_(self.embed.weight)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        features = self.body.features(images)
        projection = (self.embed(labels).to(features.dtype) * features).sum(dim=1, keepdim=True)
        return self.body.net[-1](features) + projection


class AuxiliaryClassifierDiscriminator(nn.Module):
    """AC-GAN's discriminator (Odena et al. 2017): from an unconditional discriminator's
    features, its real/fake score ``(N, 1)`` and class logits ``(N, num_classes)``; the label
    is not an input (it is what the second head predicts)."""

    def __init__(self, body: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.body, self.num_classes = body, num_classes
        self.classifier = nn.Linear(body.net[-1].in_features, num_classes)

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body.features(images)
        return self.body.net[-1](features), self.classifier(features)
