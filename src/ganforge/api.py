"""The few entry points a script needs, re-exported as ``from ganforge import ...``.

``train`` runs a preset (with changes, and optionally with networks of the script's own) as
``ganforge train`` does; ``resume`` continues a run; ``load_run`` rebuilds a run's generator;
``sample`` draws images from a run (and ``LoadedRun.walk`` walks between latents);
``project`` finds the latents of real images; ``evaluate`` scores a run or an ``.npz`` of samples;
``export`` writes a run's generator as ONNX. Each returns a typed result. The packages below
stay importable for those who need more. A ``device`` is a name (``auto``: CUDA, then MPS,
then the CPU; ``cpu``, ``cuda``, ``cuda:1``, ``mps``) or a ``torch.device``.

A run of user-defined networks (``architecture="module:callable"``) is read back only with
``trust_code=True``, since rebuilding its networks imports that module; a run of networks the
script handed to :func:`train` is read back by handing the same kind of ``generator`` in again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ganforge.checkpoint_file import resolve_checkpoint
from ganforge.config import GIVEN_NETWORKS, TrainConfig, build_config, image_shape
from ganforge.console import SILENT, Console
from ganforge.devices import resolve_device
from ganforge.errors import GanforgeError
from ganforge.eval import score_source
from ganforge.eval.projection import (
    DEFAULT_STARTS,
    DEFAULT_STEPS,
    Projection,
    load_latents,
    load_projector,
    read_images,
)
from ganforge.exporting import export_onnx
from ganforge.nets import class_count
from ganforge.sampling import generate, generate_from, interpolate, load_generator

if TYPE_CHECKING:
    from ganforge.training import RunSummary


def train(
    preset: str = "gan",
    *,
    config_file: str | os.PathLike | None = None,
    console: Console = SILENT,
    generator: nn.Module | None = None,
    discriminator: nn.Module | None = None,
    trust_code: bool = False,
    **settings: Any,
) -> RunSummary:
    """Train a run of ``preset`` (see ``ganforge presets``), with ``settings`` (any
    :class:`~ganforge.config.TrainConfig` field, e.g. ``max_steps=200, out="runs/x"``) over the
    preset and ``config_file``. ``console``: where progress goes (silent by default; pass
    ``Console()`` for a progress bar).

    ``generator`` and ``discriminator``: networks of your own, trained in place instead of the
    preset's (both or neither). The generator maps noise ``(N, noise_dim)`` to images
    ``(N, C, H, W)`` in ``[-1, 1]`` of the data set's shape; the discriminator maps those to one
    score per image, ``(N, 1)`` or ``(N,)``. Returns the run's summary (``run_dir``, steps,
    wall time, speed, last losses). ``trust_code``: ``init_from`` may name a run of
    user-defined networks.
    """
    from ganforge.training import train as train_run  # on use: sampling needs no training

    networks = _networks(generator, discriminator)
    if networks is not None:
        settings = {**settings, "architecture": GIVEN_NETWORKS}
    config = build_config(preset, config_file, settings)
    return train_run(config, console, networks=networks, trust_code=trust_code)


def resume(
    run_dir: str | os.PathLike,
    *,
    console: Console = SILENT,
    trust_code: bool = False,
    generator: nn.Module | None = None,
    discriminator: nn.Module | None = None,
    **changes: Any,
) -> RunSummary:
    """Continue the run in ``run_dir`` from its newest checkpoint, exactly, with the changes
    ``--resume`` allows (``epochs``, ``max_steps``, evaluation and logging settings); a run of
    networks the script handed in takes them again (``generator``, ``discriminator``)."""
    from ganforge.training import open_resume
    from ganforge.training import train as train_run

    networks = _networks(generator, discriminator)
    point = open_resume(
        run_dir, changes, trust_code=trust_code, networks_given=networks is not None
    )
    return train_run(point.config, console, resume=point, networks=networks)


@dataclass(frozen=True)
class LoadedRun:
    """A run's sampling generator (in eval mode, on ``device``, the EMA's weights where the run
    kept an EMA) with the settings it was trained with, read from ``checkpoint``; load it once
    and :meth:`sample` as often as needed."""

    generator: nn.Module
    config: TrainConfig
    checkpoint: Path
    device: torch.device

    @property
    def classes(self) -> int:
        """How many classes the generator draws (0: it is unconditional)."""
        return class_count(self.generator)

    def sample(
        self,
        num: int = 64,
        *,
        seed: int = 0,
        truncation: float = 1.0,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``num`` images ``(num, C, H, W)`` in ``[-1, 1]``, on the CPU, as :func:`sample` and
        ``ganforge sample`` draw them (the same ``seed`` gives the same images; ``truncation``
        ψ in ``(0, 1]`` scales the noise). A conditional run draws the classes ``labels``
        (integers ``(num,)`` in ``[0, classes)``), every class equally often by default."""
        return generate(
            self.generator,
            num,
            self.config.noise_dim,
            seed=seed,
            noise=self.config.noise,
            truncation=truncation,
            labels=labels,
            device=self.device,
        )

    def walk(
        self,
        latents: str | os.PathLike | torch.Tensor,
        start: int = 0,
        end: int = 1,
        *,
        steps: int = 10,
        mode: str = "slerp",
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The images ``(steps, C, H, W)`` in ``[-1, 1]`` of a walk from latent ``start`` to
        latent ``end`` of ``latents``: a ``latents.npz`` that :func:`project` (``ganforge
        project``) wrote, or a tensor ``(N, noise_dim)`` with, for a conditional run, its
        ``labels`` ``(N,)``. So a walk between two real images is a projection and a walk.
        A conditional run draws the first half of the walk in ``start``'s class and the rest in
        ``end``'s."""
        if isinstance(latents, torch.Tensor):
            codes = latents
        else:
            codes, labels = load_latents(latents, self.config.noise_dim)
        count = codes.shape[0]
        for name, index in (("start", start), ("end", end)):
            if not 0 <= index < count:
                raise GanforgeError(f"{name} must be from 0 to {count - 1}, got {index}")
        path = interpolate(codes[start : start + 1], codes[end : end + 1], steps, mode)[0]
        walk_labels = None
        if self.classes:
            if labels is None:
                raise GanforgeError("a conditional run walks between labelled latents: give labels")
            if labels.min() < 0 or labels.max() >= self.classes:
                raise GanforgeError(
                    f"the latents' labels must be classes of this run (0 to {self.classes - 1}): "
                    "were they projected with another run?"
                )
            half = steps // 2
            walk_labels = torch.cat(
                [labels[start].repeat(steps - half), labels[end].repeat(half)]
            ).long()
        return generate_from(self.generator, path, walk_labels, device=self.device)


def load_run(
    run: str | os.PathLike,
    device: torch.device | str = "cpu",
    *,
    trust_code: bool = False,
    generator: nn.Module | None = None,
) -> LoadedRun:
    """The generator of a run folder's newest checkpoint (or of a checkpoint file), on
    ``device`` (``auto`` picks one). It maps noise ``(N, config.noise_dim)`` (and labels
    ``(N,)`` when class-conditional) to images ``(N, C, H, W)`` in ``[-1, 1]``."""
    device = resolve_device(device)
    loaded, config = load_generator(run, device, trust_code=trust_code, generator=generator)
    return LoadedRun(loaded, config, resolve_checkpoint(run), device)


def sample(
    run: str | os.PathLike,
    num: int = 64,
    *,
    seed: int = 0,
    truncation: float = 1.0,
    labels: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    trust_code: bool = False,
    generator: nn.Module | None = None,
) -> torch.Tensor:
    """``num`` images ``(num, C, H, W)`` in ``[-1, 1]`` from a run, as ``ganforge sample``
    draws them (the same ``seed`` gives the same images); a conditional run draws the classes
    ``labels`` ``(num,)``, every class equally often by default. To draw several times from
    one run, :func:`load_run` it once and call :meth:`LoadedRun.sample`."""
    loaded = load_run(run, device, trust_code=trust_code, generator=generator)
    return loaded.sample(num, seed=seed, truncation=truncation, labels=labels)


@dataclass(frozen=True)
class Scores:
    """The metrics of one set of images (``None`` where a metric does not apply): FID, KID and
    Inception Score in the evaluator's feature space, precision/recall/density/coverage,
    mode coverage (``class_histogram``: class → share of the images), the memorisation ratio
    (below 1: samples sit closer to training images than real test images do) and, for a
    conditional run, the conditional accuracy.

    ``extra`` keeps every other value the scoring wrote (a metric newer than these fields, say,
    or ``space``: ``pixels`` for a folder scored without an evaluator), so that nothing of
    ``ganforge eval --json``'s object is lost."""

    num: int | None = None
    fid: float | None = None
    kid: float | None = None
    inception_score: float | None = None
    precision: float | None = None
    recall: float | None = None
    density: float | None = None
    coverage: float | None = None
    classes_covered: int | None = None
    kl_uniform: float | None = None
    class_histogram: dict[str, float] | None = None
    memorisation_ratio: float | None = None
    conditional_accuracy: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> Scores | None:
        """The scores of one column of ``ganforge eval --json`` (``None`` stays ``None``): each
        key with a field goes there, every other key into ``extra``."""
        if values is None:
            return None
        named = {f.name for f in fields(cls)} - {"extra"}
        known = {key: value for key, value in values.items() if key in named}
        extra = {key: value for key, value in values.items() if key not in named}
        return cls(**known, extra=extra)


@dataclass(frozen=True)
class Evaluation:
    """What ``ganforge eval`` reports: the ``samples``' scores beside those of real training
    images (``floor``) and uniform noise (``ceiling``), which a folder data set lacks; ``raw``
    is the JSON object ``ganforge eval --json`` prints."""

    source: str
    dataset: str
    evaluator: str | None
    samples: Scores
    floor: Scores | None
    ceiling: Scores | None
    raw: dict[str, Any]


def evaluate(
    source: str | os.PathLike,
    num: int | None = None,
    *,
    trust_code: bool = False,
    generator: nn.Module | None = None,
    **options: Any,
) -> Evaluation:
    """Score a run folder, a checkpoint or an ``.npz`` of uint8 samples as ``ganforge eval``
    does (``options``: ``dataset``, ``evaluator_path``, ``seed``, ``prdc_num``,
    ``data_root``; ``evaluator_path="inception"`` with ``inception_weights``: Inception FID and
    KID with their protocol in ``raw["protocol"]``). ``num``: 10,000 samples, or 5,000 with
    Inception."""
    raw = score_source(source, num=num, trust_code=trust_code, generator=generator, **options)
    return Evaluation(
        raw["source"],
        raw["dataset"],
        raw.get("evaluator"),
        Scores.from_dict(raw["samples"]),
        Scores.from_dict(raw.get("floor")),
        Scores.from_dict(raw.get("ceiling")),
        raw,
    )


def project(
    run: str | os.PathLike,
    images: Sequence[str | os.PathLike] | torch.Tensor,
    *,
    steps: int = DEFAULT_STEPS,
    starts: int = DEFAULT_STARTS,
    seed: int = 0,
    device: torch.device | str = "cpu",
    trust_code: bool = False,
    console: Console = SILENT,
) -> Projection:
    """Find the latents (and, for a conditional run, the labels) whose images the run's
    generator draws closest to ``images``: image files (PNG/JPEG; a folder: every one in it),
    converted as its training images were, or a tensor ``(N, C, H, W)`` in ``[-1, 1]`` of the
    run's shape; as ``ganforge project`` does (:mod:`ganforge.eval.projection`: Adam on the
    noise from ``starts`` random starts, ``steps`` steps, pixels plus the run's evaluator
    features). :meth:`LoadedRun.walk` walks between the latents found."""
    projector = load_projector(run, resolve_device(device), trust_code=trust_code)
    if not isinstance(images, torch.Tensor):
        shape = image_shape(projector.config)
        images, _ = read_images([Path(p) for p in images], shape, projector.config.background)
    return projector.project(images, steps=steps, starts=starts, seed=seed, console=console)


def export(
    run: str | os.PathLike,
    out: str | os.PathLike,
    *,
    trust_code: bool = False,
    generator: nn.Module | None = None,
) -> Path:
    """Write a run's sampling generator to ``out`` as ONNX (``ganforge export``): inputs
    ``noise`` ``(N, noise_dim)`` (and ``labels`` ``(N,)`` when conditional), output ``images``
    ``(N, C, H, W)`` in ``[-1, 1]``. Needs ``pip install 'ganforge[export]'``."""
    return export_onnx(run, out, trust_code=trust_code, generator=generator)


def _networks(
    generator: nn.Module | None, discriminator: nn.Module | None
) -> tuple[nn.Module, nn.Module] | None:
    if (generator is None) != (discriminator is None):
        raise TypeError("give both generator= and discriminator=, or neither")
    return None if generator is None else (generator, discriminator)
