"""The few entry points a script needs, re-exported as ``from ganforge import ...``.

``train`` runs a preset (with changes, and optionally with networks of the script's own) as
``ganforge train`` does; ``resume`` continues a run; ``load_run`` rebuilds a run's generator;
``sample`` draws images from a run; ``evaluate`` scores a run or an ``.npz`` of samples;
``export`` writes a run's generator as ONNX. Each returns a typed result. The packages below
stay importable for those who need more.

A run of user-defined networks (``architecture="module:callable"``) is read back only with
``trust_code=True``, since rebuilding its networks imports that module; a run of networks the
script handed to :func:`train` is read back by handing the same kind of ``generator`` in again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganforge.checkpoint_file import resolve_checkpoint
from ganforge.config import GIVEN_NETWORKS, TrainConfig, build_config
from ganforge.console import SILENT, Console
from ganforge.eval import evaluate as _evaluate
from ganforge.exporting import export_onnx
from ganforge.sampling import generate, load_generator
from ganforge.training import RunSummary, open_resume
from ganforge.training import train as _train


def train(
    preset: str = "gan",
    *,
    config_file: str | os.PathLike | None = None,
    console: Console = SILENT,
    generator: nn.Module | None = None,
    discriminator: nn.Module | None = None,
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
    wall time, speed, last losses).
    """
    networks = _networks(generator, discriminator)
    if networks is not None:
        settings = {**settings, "architecture": GIVEN_NETWORKS}
    config = build_config(preset, config_file, settings)
    return _train(config, console, networks=networks)


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
    networks = _networks(generator, discriminator)
    point = open_resume(
        run_dir, changes, trust_code=trust_code, networks_given=networks is not None
    )
    return _train(point.config, console, resume=point, networks=networks)


@dataclass(frozen=True)
class LoadedRun:
    """A run's sampling generator (in eval mode, on ``device``, the EMA's weights where the run
    kept an EMA) with the settings it was trained with, read from ``checkpoint``."""

    generator: nn.Module
    config: TrainConfig
    checkpoint: Path


def load_run(
    run: str | os.PathLike,
    device: torch.device | str = "cpu",
    *,
    trust_code: bool = False,
    generator: nn.Module | None = None,
) -> LoadedRun:
    """The generator of a run folder's newest checkpoint (or of a checkpoint file). It maps
    noise ``(N, config.noise_dim)`` (and labels ``(N,)`` when class-conditional) to images
    ``(N, C, H, W)`` in ``[-1, 1]``."""
    loaded, config = load_generator(run, device, trust_code=trust_code, generator=generator)
    return LoadedRun(loaded, config, resolve_checkpoint(run))


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
    ``labels`` ``(num,)``, every class equally often by default."""
    loaded, config = load_generator(run, device, trust_code=trust_code, generator=generator)
    return generate(
        loaded,
        num,
        config.noise_dim,
        seed=seed,
        noise=config.noise,
        truncation=truncation,
        labels=labels,
        device=device,
    )


@dataclass(frozen=True)
class Scores:
    """The metrics of one set of images (``None`` where a metric does not apply): FID, KID and
    Inception Score in the evaluator's feature space, precision/recall/density/coverage,
    mode coverage (``class_histogram``: class → share of the images), the memorisation ratio
    (below 1: samples sit closer to training images than real test images do) and, for a
    conditional run, the conditional accuracy."""

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

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> Scores | None:
        if values is None:
            return None
        return cls(**{f.name: values.get(f.name) for f in fields(cls)})


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
    num: int = 10_000,
    *,
    trust_code: bool = False,
    generator: nn.Module | None = None,
    **options: Any,
) -> Evaluation:
    """Score a run folder, a checkpoint or an ``.npz`` of uint8 samples as ``ganforge eval``
    does (``options``: ``dataset``, ``evaluator_path``, ``seed``, ``prdc_num``,
    ``data_root``)."""
    raw = _evaluate(source, num=num, trust_code=trust_code, generator=generator, **options)
    return Evaluation(
        raw["source"],
        raw["dataset"],
        raw.get("evaluator"),
        Scores.from_dict(raw["samples"]),
        Scores.from_dict(raw.get("floor")),
        Scores.from_dict(raw.get("ceiling")),
        raw,
    )


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
