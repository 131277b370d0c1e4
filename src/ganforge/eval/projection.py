"""Projection (GAN inversion): the latent, and for a conditional run the label, whose image the
generator draws closest to a given image.

For each image ``x`` :func:`project` minimises, over the noise ``z``,

    ``loss(x, G(z)) = mean((x − G(z))²) + ‖φ(x) − φ(G(z))‖² / ‖φ(x)‖²``

with Adam from ``starts`` random draws of the run's noise (batched, the learning rate falling
to 0 on a cosine), and keeps the best start. Why this loss:

* the **pixel** term (mean squared error over the pixels in ``[-1, 1]``) says the image is the
  same picture, pixel for pixel, which is what a copy is; alone, it is content with a blurred
  average that sits between two shapes;
* the **feature** term, in the run's evaluator (:mod:`ganforge.eval.classifier`: the network
  that FID, precision and recall are computed in, trained on the run's dataset), asks for the
  shapes that network tells classes apart by, so the optimisation does not settle for a blur.
  It is divided by ``‖φ(x)‖²``, so that both terms are about 1 for unrelated images whatever
  the dataset, and neither needs a weight to be tuned. Where no evaluator ships for the dataset
  (a folder, say) the loss is the pixel term alone, and :attr:`Projector.space` says so.

The noise stays where the generator was trained: uniform noise is clamped to ``[-1, 1]`` after
every step; normal noise is left free. A conditional run tries every class (each with its own
starts, all in one batch) and keeps the label whose best start reconstructs best: the
evaluator's predicted class would be a guess exactly where the generator draws a class poorly,
and folders have no evaluator to predict one. A VAE (``loss elbo``) starts its first start at
the encoder's posterior mean, which is already close; the others are random.

The reported *distance* of an image is the loss of its projection; ``pixel`` and ``feature``
are its two terms. Images are ``(N, C, H, W)`` in ``[-1, 1]`` at the run's shape.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.checkpoint_file import load_checkpoint, load_weights
from ganforge.config import TrainConfig, build_networks, image_shape
from ganforge.console import SILENT, Console
from ganforge.data import dataset_spec, evaluator_for, load_dataset, preprocess_images
from ganforge.data.folder import IMAGE_SUFFIXES
from ganforge.data.images import decode_image, resize_images
from ganforge.errors import GanforgeError
from ganforge.eval.classifier import load_evaluator
from ganforge.image_files import save_grid
from ganforge.nets import VAEEncoder, class_count, generate_images, sample_noise
from ganforge.objectives import VAE_LOSS
from ganforge.sampling import load_generator

DEFAULT_STEPS, DEFAULT_STARTS = 200, 4
#: Adam's starting learning rate on the noise (uniform noise spans 2, normal about 6).
LEARNING_RATE = 0.05
#: Latents optimised in one batch (images × classes × starts): memory stays bounded.
BATCH_LATENTS = 1024
#: Keeps the relative feature distance finite for an image whose features are all zero.
EPSILON = 1e-6


@dataclass(frozen=True)
class Projection:
    """What :func:`project` found for ``N`` images: ``latents`` ``(N, noise_dim)``,
    ``labels`` ``(N,)`` (``None`` for an unconditional run), ``images``: the generator's
    reconstructions ``(N, C, H, W)`` in ``[-1, 1]``, and per image the ``distance`` (the loss)
    with its ``pixel`` and ``feature`` terms ``(N,)`` (``feature`` ``None`` without features)."""

    latents: torch.Tensor
    labels: torch.Tensor | None
    images: torch.Tensor
    distance: torch.Tensor
    pixel: torch.Tensor
    feature: torch.Tensor | None


@dataclass
class Projector:
    """A run's generator ready to invert: ``features`` maps images ``(n, C, H, W)`` in
    ``[-1, 1]`` to the evaluator's features differentiably (``None``: pixels only), ``space``
    says in words which, ``encoder`` is a VAE's (else ``None``)."""

    generator: nn.Module
    config: TrainConfig
    features: nn.Module | None
    space: str
    encoder: nn.Module | None
    device: torch.device

    @property
    def classes(self) -> int:
        return class_count(self.generator)

    def project(
        self,
        images: torch.Tensor,
        *,
        steps: int = DEFAULT_STEPS,
        starts: int = DEFAULT_STARTS,
        seed: int = 0,
        console: Console = SILENT,
    ) -> Projection:
        """:func:`project` ``images`` ``(N, C, H, W)`` in ``[-1, 1]``, of this run's shape, into
        its generator."""
        shape = image_shape(self.config)
        if images.ndim != 4 or tuple(images.shape[1:]) != shape:
            raise GanforgeError(
                f"images of shape {tuple(images.shape)} cannot be projected: this run draws "
                f"(N, {', '.join(map(str, shape))})"
            )
        return project(
            self.generator,
            images,
            noise_dim=self.config.noise_dim,
            noise=self.config.noise,
            features=self.features,
            encoder=self.encoder,
            steps=steps,
            starts=starts,
            seed=seed,
            device=self.device,
            console=console,
        )


class _EvaluatorFeatures(nn.Module):
    """The evaluator's features of generator-shaped images, resized to its size."""

    def __init__(self, net: nn.Module, size: tuple[int, int]) -> None:
        super().__init__()
        self.net, self.size = net, size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if tuple(images.shape[-2:]) != self.size:
            images = F.interpolate(images, self.size, mode="bilinear", antialias=True)
        return self.net.features(images)


def _features(config: TrainConfig, shape: tuple[int, int, int]) -> tuple[nn.Module | None, str]:
    """The run's evaluator features (or ``None``) and the words for the space."""
    if evaluator_for(config.dataset) is None:
        return None, f"pixels only: no evaluator ships for dataset {config.dataset}"
    evaluator = load_evaluator(config.dataset)
    if evaluator.image_shape[0] != shape[0]:
        return None, (
            f"pixels only: the {evaluator.name} evaluator reads {evaluator.image_shape[0]} "
            f"channels, this run draws {shape[0]}"
        )
    net = evaluator.net.eval().requires_grad_(False)
    return _EvaluatorFeatures(
        net, evaluator.image_shape[1:]
    ), f"pixels + evaluator {evaluator.name}"


def _encoder(checkpoint: dict, config: TrainConfig, trust_code: bool) -> nn.Module:
    """A VAE run's encoder, as its checkpoint holds it (in the partner's slot)."""
    _, body = build_networks(config, trust_code=trust_code, vae=True)
    encoder = VAEEncoder(body, config.noise_dim, config.likelihood == "gaussian")
    load_weights(encoder, checkpoint["discriminator"], "encoder", checkpoint["path"])
    return encoder.eval().requires_grad_(False)


def load_projector(
    run: str | os.PathLike,
    device: torch.device | str = "cpu",
    *,
    trust_code: bool = False,
    generator: nn.Module | None = None,
) -> Projector:
    """The :class:`Projector` of a run folder's newest checkpoint (or a checkpoint file): its
    sampling generator (:func:`~ganforge.sampling.load_generator`), the evaluator features of
    its dataset where one ships, and a VAE's encoder."""
    loaded, config = load_generator(run, device, trust_code=trust_code, generator=generator)
    loaded.requires_grad_(False)
    device = next(loaded.parameters()).device
    shape = image_shape(config)
    features, space = _features(config, shape)
    encoder = None
    if config.loss == VAE_LOSS:
        encoder = _encoder(load_checkpoint(run), config, trust_code).to(device)
    return Projector(
        loaded, config, None if features is None else features.to(device), space, encoder, device
    )


def _losses(
    target: torch.Tensor,
    drawn: torch.Tensor,
    features: nn.Module | None,
    target_features: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Per image: ``(loss, pixel term, feature term or None)``, each ``(n,)``."""
    pixel = (drawn - target).pow(2).flatten(1).mean(1)
    if features is None:
        return pixel, pixel, None
    distance = (features(drawn) - target_features).pow(2).sum(1)
    feature = distance / (target_features.pow(2).sum(1) + EPSILON)
    return pixel + feature, pixel, feature


def project(
    generator: nn.Module,
    images: torch.Tensor,
    *,
    noise_dim: int,
    noise: str = "uniform",
    features: nn.Module | None = None,
    encoder: nn.Module | None = None,
    steps: int = DEFAULT_STEPS,
    starts: int = DEFAULT_STARTS,
    seed: int = 0,
    device: torch.device | str = "cpu",
    console: Console = SILENT,
) -> Projection:
    """Invert ``generator`` (in eval mode) at ``images`` ``(N, C, H, W)`` in ``[-1, 1]``: see the
    module docstring. ``features``: a differentiable image → features map (``None``: pixels
    only); ``encoder``: a VAE's, whose posterior mean is the first start; ``seed``: the random
    starts'. The console shows one step of the bar per Adam step of each batch."""
    if steps < 1 or starts < 1:
        raise GanforgeError(f"steps and starts must be at least 1, got {steps} and {starts}")
    classes = class_count(generator)
    tries = max(classes, 1) * starts  # latents per image
    per_batch = max(1, BATCH_LATENTS // tries)
    chunks = images.split(per_batch)
    rng = torch.Generator().manual_seed(seed)
    console.start_progress(steps * len(chunks))
    try:
        found = [
            _project_batch(
                generator,
                chunk.to(device),
                noise_dim,
                noise,
                features,
                encoder,
                classes,
                steps,
                starts,
                rng,
                console,
            )
            for chunk in chunks
        ]
    finally:
        console.end_progress()
    return _concatenate(found)


def _concatenate(projections: list[Projection]) -> Projection:
    """The projections of consecutive batches as one."""

    def joined(name: str) -> torch.Tensor | None:
        parts = [getattr(p, name) for p in projections]
        return None if parts[0] is None else torch.cat(parts)

    return Projection(*(joined(f.name) for f in fields(Projection)))


def _project_batch(
    generator: nn.Module,
    images: torch.Tensor,
    noise_dim: int,
    noise: str,
    features: nn.Module | None,
    encoder: nn.Module | None,
    classes: int,
    steps: int,
    starts: int,
    rng: torch.Generator,
    console: Console,
) -> Projection:
    n, labels_per_image = images.shape[0], max(classes, 1)
    tries = labels_per_image * starts
    # Candidate (image i, label l, start s) sits at row (i · labels + l) · starts + s.
    targets = images.repeat_interleave(tries, 0)
    start = sample_noise(n * tries, noise_dim, distribution=noise, generator=rng).to(images.device)
    if encoder is not None:
        with torch.no_grad():
            mean, _ = encoder(images)
        start.view(n, tries, noise_dim)[:, 0] = mean
    labels = None
    if classes:
        labels = torch.arange(classes, device=images.device).repeat_interleave(starts).repeat(n)
    with torch.no_grad():
        target_features = None if features is None else features(targets)
    latents = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([latents], lr=LEARNING_RATE)
    for step in range(steps):
        for group in optimizer.param_groups:  # cosine decay to 0: settle at the end
            group["lr"] = LEARNING_RATE * 0.5 * (1 + math.cos(math.pi * step / steps))
        optimizer.zero_grad(set_to_none=True)
        drawn = generate_images(generator, latents, labels)
        loss, _, _ = _losses(targets, drawn, features, target_features)
        loss.sum().backward()  # each candidate's gradient is its own loss's
        optimizer.step()
        if noise == "uniform":
            with torch.no_grad():
                latents.clamp_(-1, 1)
        console.advance(1, {"loss": f"{loss.mean().item():.4f}"})
    with torch.no_grad():
        drawn = generate_images(generator, latents, labels)
        loss, pixel, feature = _losses(targets, drawn, features, target_features)
    best = loss.view(n, tries).argmin(1) + torch.arange(n, device=loss.device) * tries

    def pick(values: torch.Tensor | None) -> torch.Tensor | None:
        return None if values is None else values[best].detach().cpu()

    return Projection(
        pick(latents), pick(labels), pick(drawn), pick(loss), pick(pixel), pick(feature)
    )


def read_images(
    paths: list[Path], shape: tuple[int, int, int], background: str
) -> tuple[torch.Tensor, list[str]]:
    """The PNG/JPEG files ``paths`` (a folder: every one under it, sorted) as ``(N, *shape)``
    images in ``[-1, 1]``, converted and resized as training images are; and their names. One
    line for a file that is missing or not a readable image."""
    from PIL import Image, UnidentifiedImageError

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                raise GanforgeError(f"no PNG or JPEG image in {path}")
            files += found
        else:
            files.append(path)
    if not files:
        raise GanforgeError("no images to project")
    channels, height, width = shape
    images = []
    for path in files:
        try:
            with Image.open(path) as img:
                images.append(resize_images(decode_image(img, channels, background), height, width))
        except FileNotFoundError:
            raise GanforgeError(f"no such image file: {path}") from None
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise GanforgeError(f"cannot read {path} as an image ({type(exc).__name__})") from None
    return preprocess_images(torch.stack(images)), [str(path) for path in files]


def save_latents(path: Path, projection: Projection, names: list[str]) -> None:
    """``latents.npz``: ``z`` float32 ``(N, noise_dim)``, ``files`` ``(N,)`` and, for a
    conditional run, ``labels`` int64 ``(N,)``: what ``ganforge interpolate --latents`` reads."""
    arrays = {"z": projection.latents.float().numpy(), "files": np.array(names)}
    if projection.labels is not None:
        arrays["labels"] = projection.labels.long().numpy()
    with open(path, "wb") as file:
        np.savez(file, **arrays)


def load_latents(
    path: str | os.PathLike, noise_dim: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(z (N, noise_dim), labels (N,) or None)`` of a ``latents.npz`` that
    :func:`save_latents` wrote; one line when it is not one, or its latents have another
    dimension than ``noise_dim``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            z = torch.from_numpy(np.asarray(data["z"], dtype=np.float32))
            labels = torch.from_numpy(data["labels"].astype(np.int64)) if "labels" in data else None
    except FileNotFoundError:
        raise GanforgeError(f"no such latents file: {path}") from None
    except (OSError, ValueError, KeyError) as exc:
        raise GanforgeError(f"{path} is not a latents file of ganforge project ({exc})") from None
    if z.ndim != 2 or z.shape[1] != noise_dim:
        raise GanforgeError(
            f"{path} holds latents of shape {tuple(z.shape)}; this run's noise is {noise_dim}-d"
        )
    return z, labels


#: A run folder's picture of the inversion check: training images beside their projections,
#: then held-out ones.
INVERSION_GRID = "inversion.png"
#: The seed that picks the images of the inversion check, whatever the run: a fixed set.
INVERSION_SEED = 0
#: Pairs of each side shown in :data:`INVERSION_GRID`.
INVERSION_SHOWN = 8


def inversion_check(
    run: str | os.PathLike,
    num: int,
    *,
    steps: int = DEFAULT_STEPS,
    starts: int = DEFAULT_STARTS,
    trust_code: bool = False,
    generator: nn.Module | None = None,
    device: torch.device | str = "cpu",
    data_root: str | None = None,
    grid: Path | None = None,
    console: Console = SILENT,
) -> dict[str, Any]:
    """Memorisation by inversion: project ``num`` training images of the run (its own training
    split: ``train_size``, ``classes`` and all) and ``num`` held-out test images, both picked
    at random with :data:`INVERSION_SEED`, and compare their mean distances. A generator that
    copies its training images reconstructs them better than images it never saw: a ratio
    (train / held-out) well below 1. ``grid``: also draw the first pairs of each side there.

    One line for a data set without a held-out split (a folder trains on all its images).
    ``ganforge eval`` runs it only when asked (``--inversion N``): each image costs ``steps ×
    starts`` (× classes) forward and backward passes of the generator, minutes for 100 + 100
    images where the rest of an evaluation takes seconds."""
    projector = load_projector(run, device, trust_code=trust_code, generator=generator)
    config = projector.config
    if not dataset_spec(config.dataset).splits:
        raise GanforgeError(
            f"the inversion check compares training images with held-out ones, and "
            f"{config.dataset} has no held-out split"
        )
    common = {
        "data_root": data_root or config.data_root,
        "image_shape": image_shape(config),
        "background": config.background,
        "classes": config.classes,
    }
    train = load_dataset(
        config.dataset,
        "train",
        train_size=config.train_size,
        train_subset=config.train_subset,
        **common,
    )
    test = load_dataset(config.dataset, "test", **common)
    num = min(num, len(train), len(test))
    rng = torch.Generator().manual_seed(INVERSION_SEED)
    picked = [data.images[torch.randperm(len(data), generator=rng)[:num]] for data in (train, test)]
    started = time.perf_counter()
    found = [
        projector.project(preprocess_images(images), steps=steps, starts=starts, console=console)
        for images in picked
    ]
    seconds = time.perf_counter() - started
    if grid is not None:
        shown = min(INVERSION_SHOWN, num)
        pairs = [
            torch.stack([preprocess_images(images[:shown]), projection.images[:shown]], 1)
            for images, projection in zip(picked, found, strict=True)
        ]
        save_grid(torch.cat(pairs).flatten(0, 1), grid, nrow=2 * min(4, shown))
    train_distance, test_distance = (f.distance.mean().item() for f in found)
    return {
        "num": num,
        "steps": steps,
        "starts": starts,
        "space": projector.space,
        "train_distance": round(train_distance, 6),
        "test_distance": round(test_distance, 6),
        "ratio": round(train_distance / max(test_distance, EPSILON), 4),
        "seconds_per_image": round(seconds / (2 * num), 3),
    }
