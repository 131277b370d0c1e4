"""Checkpoints: what a run saves, how it is written safely, and how it is read back safely.

A checkpoint is a plain dict saved with :func:`torch.save` and loaded with
``torch.load(weights_only=True)``, so opening a stranger's file cannot run their code. Writes go
to a temporary file in the same folder, are fsynced, then renamed over the target: a crash
leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganforge import __version__
from ganforge.errors import GanforgeError
from ganforge.files import atomic_write_bytes

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "config", "step", "epoch", "generator", "discriminator")


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` via a fsynced temporary file and a rename."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def make_checkpoint(
    *,
    config: dict[str, Any],
    step: int,
    epoch: int,
    generator: nn.Module,
    discriminator: nn.Module,
    g_optimizer: torch.optim.Optimizer,
    d_optimizer: torch.optim.Optimizer,
    rng_states: dict[str, torch.Tensor],
) -> dict[str, Any]:
    """Everything needed to sample from a run or to continue it."""
    return {
        "format_version": FORMAT_VERSION,
        "ganforge_version": __version__,
        "config": config,
        "step": step,
        "epoch": epoch,
        "generator": generator.state_dict(),
        "discriminator": discriminator.state_dict(),
        "g_optimizer": g_optimizer.state_dict(),
        "d_optimizer": d_optimizer.state_dict(),
        "rng_states": rng_states,
    }


def checkpoint_paths(run_dir: Path) -> list[Path]:
    """A run's checkpoints, oldest first."""
    return sorted((run_dir / "checkpoints").glob("step_*.pt"))


def save_run_checkpoint(run_dir: Path, checkpoint: dict[str, Any], keep: int) -> Path:
    """Write ``checkpoints/step_NNNNNNN.pt`` and delete all but the newest ``keep``."""
    folder = run_dir / "checkpoints"
    folder.mkdir(exist_ok=True)
    path = folder / f"step_{checkpoint['step']:07d}.pt"
    atomic_torch_save(checkpoint, path)
    for old in checkpoint_paths(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def resolve_checkpoint(run_or_checkpoint: str | os.PathLike) -> Path:
    """A checkpoint file, or the newest checkpoint of a run folder."""
    path = Path(run_or_checkpoint)
    if path.is_dir():
        found = checkpoint_paths(path)
        if not found:
            raise GanforgeError(
                f"{path} holds no checkpoint (expected {path}/checkpoints/step_*.pt)"
            )
        return found[-1]
    if not path.is_file():
        raise GanforgeError(f"no such run folder or checkpoint: {path}")
    return path


def load_checkpoint(run_or_checkpoint: str | os.PathLike) -> dict[str, Any]:
    """Load and check a checkpoint without unpickling arbitrary objects."""
    path = resolve_checkpoint(run_or_checkpoint)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about unusual pickle protocols
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        unsafe = re.search(r"unsupported GLOBAL (\S+)", str(exc))
        if unsafe:
            raise GanforgeError(
                f"{path} is not a safe ganforge checkpoint: it asks to load {unsafe.group(1)}"
            ) from None
        raise GanforgeError(f"{path} is not a ganforge checkpoint ({type(exc).__name__})") from None
    if not isinstance(checkpoint, dict) or any(k not in checkpoint for k in REQUIRED_KEYS):
        raise GanforgeError(f"{path} is not a ganforge checkpoint (required keys missing)")
    if checkpoint["format_version"] != FORMAT_VERSION:
        raise GanforgeError(
            f"{path} has checkpoint format {checkpoint['format_version']}, this ganforge "
            f"({__version__}) reads format {FORMAT_VERSION}"
        )
    checkpoint["path"] = str(path)
    return checkpoint


def load_weights(module: nn.Module, state: dict[str, Any], what: str, path: str) -> None:
    """``module.load_state_dict(state)`` with a one-line error when the shapes or names differ."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0] if first else ""
        raise GanforgeError(
            f"{path}: its {what} weights do not fit the {type(module).__name__} that its "
            f"config describes ({detail})"
        ) from None
