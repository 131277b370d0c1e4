"""What the rest of ganforge relies on in a pair of networks, written down.

Every generator maps noise ``(N, noise_dim)`` (and, when class-conditional, labels ``(N,)``)
to images ``(N, C, H, W)`` in ``[-1, 1]``; every discriminator maps such images to one
unbounded score per image. That is all a plain GAN run needs (:class:`Generator`,
:class:`Discriminator`). Conditioning and the VAE need more:

* the VAE's encoder (:mod:`ganforge.nets.vae`) replaces the discriminator's score layer, so the
  discriminator must keep its layers as ``net``, an ``nn.Sequential`` ending in that
  ``nn.Linear`` (:class:`LinearHeadDiscriminator`);
* the projection and AC-GAN wrappers (:mod:`ganforge.nets.conditional`) also read what that
  layer sees, ``features(images)`` (:class:`FeatureDiscriminator`), and the conditional
  generator embeds labels to the generator's ``noise_dim`` (:class:`ConditionableGenerator`).

:func:`check_networks` checks a pair against what a run needs and names what is missing in
one line; :func:`class_count` and :func:`generate_images` are the one place that tells a
class-conditional generator from an unconditional one.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol, runtime_checkable

import torch
from torch import nn

#: What a run may need of a pair beyond drawing and scoring images, and who needs it.
NEEDS = {
    "conditioning": "class conditioning (--conditioning)",
    "vae": "the VAE (--loss elbo), whose encoder is the discriminator",
}


@runtime_checkable
class Generator(Protocol):
    """``generator(noise)`` → images: noise ``(N, noise_dim)`` → ``(N, C, H, W)`` in
    ``[-1, 1]``. A class-conditional one (:func:`class_count` > 0) is called
    ``generator(noise, labels)`` with labels ``(N,)`` in ``[0, num_classes)``."""

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class ConditionableGenerator(Generator, Protocol):
    """A :class:`Generator` that says how long its noise is, so that
    :class:`~ganforge.nets.conditional.ConditionalGenerator` can embed labels to that size."""

    noise_dim: int


@runtime_checkable
class Discriminator(Protocol):
    """``discriminator(images)`` → scores: images ``(N, C, H, W)`` in ``[-1, 1]`` → one
    unbounded score per image, ``(N, 1)`` (a user's may return ``(N,)``)."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class LinearHeadDiscriminator(Discriminator, Protocol):
    """A :class:`Discriminator` whose layers are ``net``, an ``nn.Sequential`` run in order on
    the images and ending in an ``nn.Linear`` to one score: ``net[-1]``. The VAE replaces that
    head by a linear layer to the posterior's parameters (:class:`~ganforge.nets.vae.VAEEncoder`),
    sized by ``net[-1].in_features``."""

    net: nn.Sequential


@runtime_checkable
class FeatureDiscriminator(LinearHeadDiscriminator, Protocol):
    """A :class:`LinearHeadDiscriminator` that exposes what its head reads:
    ``net[-1](features(images)) == discriminator(images)``. The projection and AC-GAN
    wrappers (:mod:`ganforge.nets.conditional`) score, project and classify those features."""

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` → the features the last layer scores,
        ``(N, net[-1].in_features)``."""
        ...


def _unwrapped(model: nn.Module) -> nn.Module:
    # DDP and DataParallel hide the wrapped network's attributes behind `.module`.
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


def class_count(generator: nn.Module) -> int:
    """How many classes a generator draws: its ``num_classes`` (> 0) when it is
    class-conditional and is called ``generator(noise, labels)``, 0 when it is unconditional
    and called ``generator(noise)``. A DDP- or DataParallel-wrapped generator answers for
    the network it wraps."""
    return int(getattr(_unwrapped(generator), "num_classes", 0) or 0)


def generate_images(
    generator: nn.Module, noise: torch.Tensor, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """``generator(noise)``, or ``generator(noise, labels)`` when ``labels`` are given: noise
    ``(N, noise_dim)`` and labels ``(N,)`` in ``[0, class_count(generator))`` → images
    ``(N, C, H, W)`` in ``[-1, 1]``, in the generator's graph (no ``no_grad`` here).

    ``ValueError`` when a class-conditional generator gets no labels or an unconditional one
    gets some: either would otherwise fail deep inside the network or silently ignore them."""
    classes = class_count(generator)
    if classes and labels is None:
        raise ValueError(f"a class-conditional generator ({classes} classes) needs labels")
    if not classes and labels is not None:
        raise ValueError("an unconditional generator takes no labels")
    return generator(noise) if labels is None else generator(noise, labels)


def _missing_head(discriminator: nn.Module) -> str | None:
    net = getattr(discriminator, "net", None)
    if not isinstance(net, nn.Sequential):
        return "no net (an nn.Sequential of its layers)"
    if not len(net) or not isinstance(net[-1], nn.Linear):
        last = type(net[-1]).__name__ if len(net) else "nothing"
        return f"a net[-1] that is {last}, not an nn.Linear score layer"
    return None


def _missing(generator: nn.Module, discriminator: nn.Module, need: str) -> str | None:
    """What ``need`` (a key of :data:`NEEDS`) misses in the pair, in a few words."""
    generator, discriminator = _unwrapped(generator), _unwrapped(discriminator)
    if need == "conditioning":
        if not isinstance(getattr(generator, "noise_dim", None), int):
            return "the generator has no noise_dim (an int)"
        if not callable(getattr(discriminator, "features", None)):
            return "the discriminator has no features()"
    head = _missing_head(discriminator)
    return None if head is None else f"the discriminator has {head}"


def check_networks(
    generator: object,
    discriminator: object,
    needs: Collection[str] = (),
    *,
    source: str = "the networks",
) -> None:
    """``ValueError`` with one line naming what is missing unless ``generator`` and
    ``discriminator`` are ``torch.nn.Module`` (:class:`Generator`, :class:`Discriminator`)
    and the pair has what each of ``needs`` (keys of :data:`NEEDS`) relies on:
    ``conditioning`` a :class:`ConditionableGenerator` and a :class:`FeatureDiscriminator`,
    ``vae`` a :class:`LinearHeadDiscriminator`. ``source`` starts the line (``architecture
    module:callable``, say)."""
    unknown = set(needs) - NEEDS.keys()
    if unknown:
        raise ValueError(f"unknown network needs {sorted(unknown)}; known: {sorted(NEEDS)}")
    for role, network in (("generator", generator), ("discriminator", discriminator)):
        if not isinstance(network, nn.Module):
            raise ValueError(
                f"{source}: the {role} is a {type(network).__name__}, not a torch.nn.Module"
            )
    for need in (need for need in NEEDS if need in needs):
        missing = _missing(generator, discriminator, need)  # type: ignore[arg-type]
        if missing is not None:
            raise ValueError(f"{source}: {missing} (needed by {NEEDS[need]})")
