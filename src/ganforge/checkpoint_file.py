"""The checkpoint file: its format, how it is written safely, and how it is read back safely.

What goes into a checkpoint, and how a run resumes from one, is
:mod:`ganforge.training.checkpoints`'; this module is the file format every reader shares (``train
--resume``, ``sample``, ``eval``, ``interpolate``).

A checkpoint is a plain dict saved with :func:`torch.save` and loaded with
``torch.load(weights_only=True)``, so opening a stranger's file cannot run their code. Writes go
to a temporary file in the same folder, are fsynced, then renamed over the target: a crash
leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganforge.config import TrainConfig, config_from_checkpoint
from ganforge.errors import GanforgeError
from ganforge.files import atomic_write
from ganforge.version import __version__

FORMAT_VERSION = 1


class IncompatibleCheckpoint(GanforgeError):
    """A sound checkpoint in a format this version cannot read."""


REQUIRED_KEYS = ("format_version", "config", "step", "epoch", "generator", "discriminator")
#: What ``--resume`` needs beyond what sampling needs.
RESUME_KEYS = ("g_optimizer", "d_optimizer", "rng_states", "progress")
BEST_NAME = "best.pt"


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` via a fsynced temporary file and a rename, streamed: a
    buffer of the whole file raised the peak memory by its size, 115 MB for a ``dcgan``
    checkpoint (``benchmarks/checkpoint_memory.py``)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def checkpoint_paths(run_dir: Path) -> list[Path]:
    """A run's checkpoints, oldest first (by step number, which may outgrow the name's 7
    digits)."""
    paths = (run_dir / "checkpoints").glob("step_*.pt")
    return sorted((p for p in paths if p.stem[5:].isdigit()), key=lambda p: int(p.stem[5:]))


def save_run_checkpoint(run_dir: Path, checkpoint: dict[str, Any], keep: int) -> Path:
    """Write ``checkpoints/step_NNNNNNN.pt``, then delete all but the newest ``keep``.

    The older files go only after the new one is complete on disk, so a crash or a full disk
    at any moment leaves at least one loadable checkpoint.
    """
    folder = run_dir / "checkpoints"
    folder.mkdir(exist_ok=True)
    path = folder / f"step_{checkpoint['step']:07d}.pt"
    atomic_torch_save(checkpoint, path)
    for old in checkpoint_paths(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def save_best_checkpoint(run_dir: Path, checkpoint: dict[str, Any]) -> Path:
    """Write ``checkpoints/best.pt``: the checkpoint of the lowest FID so far (kept apart from
    the newest-``keep`` rotation; ``ganforge sample RUN/checkpoints/best.pt`` samples it)."""
    path = run_dir / "checkpoints" / BEST_NAME
    atomic_torch_save(checkpoint, path)
    return path


def remove_partial_writes(run_dir: Path) -> list[Path]:
    """Delete the temporary files of writes that a killed process never finished."""
    leftovers = [*run_dir.glob(".*.tmp"), *(run_dir / "checkpoints").glob(".*.tmp")]
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


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
        raise IncompatibleCheckpoint(
            f"{path} has checkpoint format {checkpoint['format_version']}, this ganforge "
            f"({__version__}) reads format {FORMAT_VERSION}"
        )
    checkpoint["path"] = str(path)
    return checkpoint


def load_latest_checkpoint(run_dir: Path) -> tuple[dict[str, Any], list[tuple[Path, str]]]:
    """The newest checkpoint of a run that loads, and ``(path, why)`` for each newer one that
    did not.

    Atomic writes make a broken newest file unlikely (a failing disk, a hand-made copy); a run
    then resumes from the one before rather than not at all. A newest file that is sound but
    of another format is an error, not a reason to go back silently.
    """
    paths = checkpoint_paths(run_dir)
    if not paths:
        raise GanforgeError(
            f"{run_dir} has no checkpoint to resume from (it stopped before writing its first); "
            "start it again in a new --out folder"
        )
    skipped = []
    for path in reversed(paths):
        try:
            checkpoint = load_checkpoint(path)
        except IncompatibleCheckpoint:
            raise
        except GanforgeError as exc:
            skipped.append((path, str(exc)))
            continue
        missing = [key for key in RESUME_KEYS if key not in checkpoint]
        if missing:
            skipped.append((path, f"{path} lacks what resuming needs ({', '.join(missing)})"))
            continue
        return checkpoint, skipped
    raise GanforgeError(f"no checkpoint of {run_dir} can be resumed from: {skipped[0][1]}")


def sampling_weights(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The generator weights to sample with: the EMA's when the run kept one, else G's own
    (with standing BatchNorm statistics when the run re-estimated them)."""
    ema = checkpoint.get("generator_ema")
    if ema is None:
        return checkpoint.get("generator_standing") or checkpoint["generator"]
    return {key.removeprefix("module."): value for key, value in ema.items() if key != "n_averaged"}


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


def checkpoint_config(checkpoint: dict[str, Any]) -> TrainConfig:
    """The settings a loaded checkpoint was trained with: the one way every reader turns a
    checkpoint's config back into a :class:`~ganforge.config.TrainConfig`."""
    return config_from_checkpoint(
        checkpoint["config"], checkpoint["path"], checkpoint.get("ganforge_version", "unknown")
    )
