"""The few entry points a script needs, re-exported as ``from ganforge import ...``.

``train`` runs a preset (with changes) as ``ganforge train`` does; ``resume`` continues a run;
``load_run`` rebuilds a run's generator; ``sample`` draws images from a run; ``evaluate`` scores
a run or an ``.npz`` of samples. The modules below stay importable for those who need more.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganforge.config import TrainConfig, build_config
from ganforge.console import SILENT, Console
from ganforge.eval import evaluate as _evaluate
from ganforge.sampling import generate, load_generator
from ganforge.training import RunSummary, open_resume
from ganforge.training import train as _train


def train(
    preset: str = "gan",
    *,
    config_file: str | os.PathLike | None = None,
    console: Console = SILENT,
    **settings: Any,
) -> RunSummary:
    """Train a run of ``preset`` (see ``ganforge presets``), with ``settings`` (any
    :class:`~ganforge.config.TrainConfig` field, e.g. ``max_steps=200, out="runs/x"``) over the
    preset and ``config_file``. ``console``: where progress goes (silent by default; pass
    ``Console()`` for a progress bar). Returns the run's summary (``run_dir``, speed, losses).
    """
    config = build_config(preset, config_file, settings)
    return _train(config, console)


def resume(run_dir: str | os.PathLike, *, console: Console = SILENT, **changes: Any) -> RunSummary:
    """Continue the run in ``run_dir`` from its newest checkpoint, exactly, with the changes
    ``--resume`` allows (``epochs``, ``max_steps``, evaluation and logging settings)."""
    point = open_resume(run_dir, changes)
    return _train(point.config, console, resume=point)


def load_run(
    run: str | os.PathLike, device: torch.device | str = "cpu"
) -> tuple[nn.Module, TrainConfig]:
    """A run folder's (or a checkpoint file's) generator, in eval mode with the EMA weights
    where the run kept an EMA, and the settings it was trained with. The generator maps noise
    ``(N, config.noise_dim)`` (and labels ``(N,)`` when conditional) to images
    ``(N, C, H, W)`` in ``[-1, 1]``."""
    return load_generator(run, device)


def sample(
    run: str | os.PathLike,
    num: int = 64,
    *,
    seed: int = 0,
    truncation: float = 1.0,
    labels: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``num`` images ``(num, C, H, W)`` in ``[-1, 1]`` from a run, as ``ganforge sample``
    draws them (the same ``seed`` gives the same images); a conditional run draws the classes
    ``labels`` ``(num,)``, every class equally often by default."""
    generator, config = load_generator(run, device)
    return generate(
        generator,
        num,
        config.noise_dim,
        seed=seed,
        noise=config.noise,
        truncation=truncation,
        labels=labels,
        device=device,
    )


def evaluate(source: str | os.PathLike | Path, num: int = 10_000, **options: Any) -> dict:
    """Score a run folder, a checkpoint or an ``.npz`` of uint8 samples as ``ganforge eval``
    does: ``result["samples"]`` holds FID, KID, IS, precision, recall, density, coverage, the
    class histogram and the memorisation ratio; ``result["floor"]`` and ``["ceiling"]`` the
    same for real training images and for noise."""
    return _evaluate(source, num=num, **options)
