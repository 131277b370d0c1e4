"""Images from a trained run: rebuild its generator from a checkpoint, draw samples, walk its
latent space, and fit BatchNorm statistics to a generator's weights.

Generators map noise ``(N, noise_dim)`` (and labels ``(N,)`` when class-conditional) to images
``(N, C, H, W)`` in ``[-1, 1]``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from torch import nn

from ganforge.checkpoint_file import (
    checkpoint_config,
    load_checkpoint,
    load_weights,
    sampling_weights,
)
from ganforge.config import TrainConfig, build_run_generator, check_trusted
from ganforge.devices import resolve_device
from ganforge.errors import GanforgeError
from ganforge.nets import class_count, generate_images, sample_noise


def load_generator(
    run_or_checkpoint: str | os.PathLike,
    device: torch.device | str = "cpu",
    *,
    trust_code: bool = False,
    generator: nn.Module | None = None,
) -> tuple[nn.Module, TrainConfig]:
    """The generator of a run folder's newest checkpoint (or of a checkpoint file), in eval mode,
    with the EMA weights when the run kept an EMA; and the settings the run was trained with.
    ``device``: a name of :func:`~ganforge.devices.resolve_device` (``auto`` included) or a
    ``torch.device``.

    BatchNorm layers use their running statistics. A run of a user's networks
    (``module:callable``) is rebuilt only with ``trust_code``, since that imports the module;
    a run of networks a script handed in takes that script's ``generator``, whose weights are
    replaced by the checkpoint's.
    """
    checkpoint = load_checkpoint(run_or_checkpoint)
    config = checkpoint_config(checkpoint)
    path = checkpoint["path"]
    if generator is None:
        check_trusted(config, trust_code, path)
        try:
            generator = build_run_generator(config, trust_code=trust_code)
        except (ValueError, GanforgeError) as exc:
            raise GanforgeError(f"{path}: {exc}") from None
    load_weights(generator, sampling_weights(checkpoint), "generator", path)
    return generator.to(resolve_device(device)).eval(), config


@contextlib.contextmanager
def in_eval_mode(*models: nn.Module) -> Iterator[None]:
    """``models`` in eval mode inside (BatchNorm on its running statistics), each back in the
    mode it had afterwards: the training networks return to training, the EMA copy, which only
    ever samples, stays in eval."""
    modes = [model.training for model in models]
    for model in models:
        model.eval()
    try:
        yield
    finally:
        for model, training in zip(models, modes, strict=True):
            model.train(training)


def balanced_labels(num: int, num_classes: int) -> torch.Tensor:
    """``0, 1, …, num_classes − 1, 0, 1, …``: ``num`` labels, every class equally often."""
    return torch.arange(num) % num_classes


@torch.inference_mode()
def generate_from(
    generator: nn.Module,
    noise: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The images ``(N, C, H, W)`` in ``[-1, 1]`` of noise ``(N, noise_dim)``, in batches, on
    ``device`` (a ``torch.device`` or a concrete name such as ``cpu``; the images come back on
    the CPU).

    A class-conditional generator draws the classes ``labels`` (integers ``(N,)`` in
    ``[0, classes)``), by default every class equally often (:func:`balanced_labels`); labels
    for an unconditional generator, or of another shape or range, are refused in one line."""
    classes = class_count(generator)
    if labels is not None:
        labels = _checked_labels(labels, noise.shape[0], classes)
    elif classes:
        labels = balanced_labels(noise.shape[0], classes)
    noise_chunks = noise.split(batch_size)
    label_chunks = [None] * len(noise_chunks) if labels is None else labels.split(batch_size)
    images = [
        generate_images(generator, z.to(device), None if y is None else y.to(device)).cpu()
        for z, y in zip(noise_chunks, label_chunks, strict=True)
    ]
    return torch.cat(images)


def _checked_labels(labels: torch.Tensor, num: int, classes: int) -> torch.Tensor:
    # A wrong label would otherwise fail deep inside the generator's embedding, or be ignored.
    if not classes:
        raise GanforgeError("labels were given, but the generator is not class-conditional")
    labels = torch.as_tensor(labels)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise GanforgeError(f"labels must be integers (class indices), got {labels.dtype}")
    if labels.shape != (num,):
        raise GanforgeError(
            f"labels must have shape ({num},), one per image; got {tuple(labels.shape)}"
        )
    if num and (labels.min() < 0 or labels.max() >= classes):
        raise GanforgeError(
            f"labels must be from 0 to {classes - 1}; got values from "
            f"{labels.min().item()} to {labels.max().item()}"
        )
    return labels


def generate(
    generator: nn.Module,
    num: int,
    noise_dim: int,
    *,
    seed: int = 0,
    noise: str = "uniform",
    truncation: float = 1.0,
    labels: torch.Tensor | None = None,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``num`` images ``(num, C, H, W)`` in ``[-1, 1]``, from ``noise`` (the run's distribution,
    ``uniform`` or ``normal``) seeded by ``seed``, and for a class-conditional generator of the
    classes ``labels`` (by default all, equally often).

    ``truncation`` ψ in ``(0, 1]`` scales the noise by ψ, which trades variety for
    typical-looking images: uniform noise then comes from ``[-ψ, ψ]``, its central part (the
    truncation trick of Brock et al. 2019 for this noise); normal noise from ``N(0, ψ²)``, the
    reduced temperature of Kingma & Dhariwal 2018.
    """
    if not 0 < truncation <= 1:
        raise GanforgeError(f"truncation must be in (0, 1], got {truncation}")
    rng = torch.Generator().manual_seed(seed)
    codes = sample_noise(num, noise_dim, distribution=noise, generator=rng) * truncation
    return generate_from(generator, codes, labels, batch_size=batch_size, device=device)


#: Draws that re-estimate an averaged generator's BatchNorm statistics (standing statistics).
STANDING_STATISTICS_NUM = 1024


def estimate_batchnorm_statistics(
    generator: nn.Module,
    noise_dim: int,
    *,
    noise: str = "uniform",
    num: int = STANDING_STATISTICS_NUM,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> None:
    """Replace the running statistics of ``generator``'s BatchNorm layers by the mean and
    variance of their inputs over ``num`` draws of ``noise`` seeded by ``seed``: the "standing
    statistics" that fit an EMA generator's averaged weights, whose activations differ from
    those of the weights the running statistics were gathered under.

    ``torch.optim.swa_utils.update_bn`` does this for a model of one input; a
    class-conditional generator also takes labels, drawn here for every class equally often.
    The global random state is left untouched, and ``generator`` ends in eval mode (one
    without BatchNorm is left as it is).
    """
    layers = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average over all the batches
    generator.train()
    try:
        generate(generator, num, noise_dim, seed=seed, noise=noise, batch_size=256, device=device)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
        generator.eval()


def interpolate(start: torch.Tensor, end: torch.Tensor, steps: int, mode: str) -> torch.Tensor:
    """Noise walks from each row of ``start`` to the same row of ``end`` ``(rows, dim)``:
    ``(rows, steps, dim)``, ``steps`` ≥ 2 points including both ends.

    ``linear`` goes straight; ``slerp`` (Shoemake 1985, as White 2016 suggests for GAN latent
    spaces) follows the great circle between the two directions, interpolating the norms
    linearly, so intermediate points are as far from the origin as typical noise is.
    """
    t = torch.linspace(0, 1, steps, dtype=start.dtype).reshape(1, steps, 1)
    a, b = start.unsqueeze(1), end.unsqueeze(1)
    if mode == "linear":
        return (1 - t) * a + t * b
    if mode != "slerp":
        raise GanforgeError(f"unknown interpolation {mode!r}; choose linear or slerp")
    norm_a, norm_b = a.norm(dim=2, keepdim=True), b.norm(dim=2, keepdim=True)
    unit_a, unit_b = a / norm_a.clamp_min(1e-12), b / norm_b.clamp_min(1e-12)
    cos = (unit_a * unit_b).sum(dim=2, keepdim=True).clamp(-1, 1)
    omega = torch.acos(cos)
    sin = torch.sin(omega)
    parallel = sin.abs() < 1e-6  # the same direction: the great circle is a point
    weight_a = torch.where(parallel, 1 - t, torch.sin((1 - t) * omega) / sin)
    weight_b = torch.where(parallel, t, torch.sin(t * omega) / sin)
    direction = weight_a * unit_a + weight_b * unit_b
    return direction * ((1 - t) * norm_a + t * norm_b)
