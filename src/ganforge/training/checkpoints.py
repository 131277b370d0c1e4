"""A run's state beside its trained models, and the two calls that save it and resume from it.

:class:`RunState` owns what a checkpoint holds besides the trained models
(:class:`~ganforge.training.state.TrainedModels`): the random streams (torch's global generator,
CUDA's, the data order's and the noise's), the data position, the run's clock (training and
side-work seconds), its best and last FID, and the monitor's state. :func:`make_checkpoint`
gathers both for the run folder's checkpointer; :func:`open_resume` reads the newest
checkpoint of a run (once) and :func:`resume_from` puts everything back where it was, so
that the steps that follow are the uninterrupted run's, bit for bit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ganforge.checkpoint_file import (
    FORMAT_VERSION,
    checkpoint_config,
    load_latest_checkpoint,
)
from ganforge.config import TrainConfig, check_trusted, resume_config
from ganforge.errors import GanforgeError, first_line
from ganforge.training.distributed import Shard
from ganforge.training.monitoring import Diverged, TrainingMonitor, non_finite_tensors
from ganforge.training.schedule import RunPlan
from ganforge.training.state import TrainedModels
from ganforge.version import __version__


@dataclass
class RunState:
    """The random streams, clock, scores and monitor of a run (see the module docstring).

    ``data_generator`` draws each epoch's permutation; ``noise_generator`` G's noise, labels
    and penalty mixes. ``*_before``: the seconds of the sessions before this one (a resumed
    run); this session's are measured from ``session_start``.
    """

    device: torch.device
    data_generator: torch.Generator
    noise_generator: torch.Generator
    monitor: TrainingMonitor
    elapsed_before: float = 0.0
    side_work_before: float = 0.0
    best_fid: float | None = None
    last_fid: float | None = None
    last_stats: dict[str, float] = field(default_factory=dict)
    session_start: float = field(default_factory=time.perf_counter)
    side_work: float = 0.0  # this session's seconds on grids, evaluations and checkpoints
    _side_work_began: float | None = None  # inside timing_side_work: when it began

    @classmethod
    def start(
        cls, config: TrainConfig, shard: Shard, device: torch.device, d_wins_below: float | None
    ) -> RunState:
        """A new run's state, seeding torch's global generator with ``seed + rank`` (rank 0's
        initial weights are the run's; DDP copies them to every rank)."""
        torch.manual_seed(config.seed + shard.rank)
        return cls(
            device,
            torch.Generator().manual_seed(config.seed),
            torch.Generator(device).manual_seed(config.seed + 1),
            TrainingMonitor(d_wins_below=d_wins_below),
        )

    def elapsed_s(self) -> float:
        """Wall time of the whole run so far, every session's."""
        return self.elapsed_before + time.perf_counter() - self.session_start

    def side_work_s(self) -> float:
        return self.side_work_before + self.side_work

    def training_s(self) -> float:
        """Wall time of the run's training steps alone so far, every session's: the elapsed
        time without grids, evaluations, checkpoints and logging (nor the side work under way)."""
        ongoing = (
            0.0 if self._side_work_began is None else time.perf_counter() - self._side_work_began
        )
        return self.elapsed_s() - self.side_work_s() - ongoing

    @contextlib.contextmanager
    def timing_side_work(self):
        """Count the time inside as side work (not training)."""
        began = self._side_work_began = time.perf_counter()
        try:
            yield
        finally:
            self._side_work_began = None
            self.side_work += time.perf_counter() - began

    def capture(self, data_state: torch.Tensor | None) -> dict[str, Any]:
        """The checkpoint's ``rng_states`` and ``progress``; ``data_state``: the data
        generator's state at the start of the next step's epoch."""
        cuda = self.device.type == "cuda"
        return {
            "rng_states": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if cuda else None,
                "data": data_state,
                "noise": self.noise_generator.get_state(),
            },
            "progress": {
                "device_type": self.device.type,
                "elapsed_s": self.elapsed_s(),
                "side_work_s": self.side_work_s(),
                "best_fid": self.best_fid,
                "last_fid": self.last_fid,
                "last_stats": self.last_stats,
                "monitor": self.monitor.state_dict(),
            },
        }

    def restore(self, checkpoint: dict[str, Any], shard: Shard) -> None:
        """The streams, clock, scores and monitor as ``checkpoint`` left them."""
        rng, progress = checkpoint["rng_states"], checkpoint["progress"]
        try:
            self.noise_generator.set_state(rng["noise"])
            if rng["data"] is not None:
                self.data_generator.set_state(rng["data"])
            if shard.is_main:  # the other ranks' global streams are seed + rank, as at the start
                torch.set_rng_state(rng["torch"])
                if rng.get("cuda") is not None:
                    torch.cuda.set_rng_state(rng["cuda"], self.device)
            self.monitor.load_state_dict(progress["monitor"])
        except (ValueError, KeyError, RuntimeError, TypeError) as exc:
            raise GanforgeError(
                f"{checkpoint['path']}: its training state cannot be restored ({first_line(exc)})"
            ) from None
        self.elapsed_before = progress.get("elapsed_s", 0.0)
        self.side_work_before = progress.get("side_work_s", 0.0)
        self.best_fid, self.last_fid = progress.get("best_fid"), progress.get("last_fid")
        self.last_stats = progress.get("last_stats") or {}


def make_checkpoint(
    config: TrainConfig,
    step: int,
    per_epoch: int,
    models: TrainedModels,
    run_state: RunState,
    data_state: torch.Tensor | None,
) -> dict[str, Any]:
    """Everything needed to sample from the run after ``step`` or to continue it exactly.
    Refuses non-finite weights, so that no checkpoint ever holds a diverged network."""
    for name, model in (("generator", models.generator), ("discriminator", models.partner)):
        bad = non_finite_tensors(model)
        if bad:
            raise Diverged(f"step {step}: the {name}'s weights hold NaN or Inf ({bad[0]})")
    return {
        "format_version": FORMAT_VERSION,
        "ganforge_version": __version__,
        "config": config.to_dict(),
        "step": step,
        "epoch": step // per_epoch,
        **run_state.capture(data_state),
        **models.state_dict(),
    }


@dataclass
class ResumePoint:
    """Where a run resumes: its settings (with the changes ``--resume`` allows), its newest
    loadable checkpoint, read once, and ``(path, why)`` of each newer one that did not load."""

    config: TrainConfig
    checkpoint: dict[str, Any]
    skipped: list[tuple[Path, str]]

    @property
    def step(self) -> int:
        return self.checkpoint["step"]


def open_resume(
    run_dir: str | Path,
    overrides: dict[str, Any] | None = None,
    *,
    trust_code: bool = False,
    networks_given: bool = False,
) -> ResumePoint:
    """Read the newest checkpoint of the run in ``run_dir`` and its settings, with the changes
    that ``--resume`` allows (:data:`~ganforge.config.RESUMABLE_CHANGES`) from ``overrides``.

    A run of a user's networks resumes only with ``trust_code`` (rebuilding them imports their
    module); one of networks a script handed in, only when the script hands them in again
    (``networks_given``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GanforgeError(f"--resume {run_dir}: no such run folder")
    if not (run_dir / "config.json").is_file():
        raise GanforgeError(f"--resume {run_dir}: not a ganforge run folder (no config.json)")
    checkpoint, skipped = load_latest_checkpoint(run_dir)
    saved = checkpoint_config(checkpoint)
    if not networks_given:
        check_trusted(saved, trust_code, run_dir)
    config = resume_config(saved, overrides or {})
    return ResumePoint(dataclasses.replace(config, out=str(run_dir)), checkpoint, skipped)


def check_resumable(point: ResumePoint, device: torch.device, plan: RunPlan) -> None:
    """Refuse to resume on another device type, or a run that has nothing left to do or is
    already past the end (naming the limit that ends it)."""
    checkpoint, config = point.checkpoint, point.config
    trained_on = checkpoint["progress"]["device_type"]
    if trained_on != device.type:
        raise GanforgeError(
            f"{checkpoint['path']} was trained on {trained_on}, and this run would continue "
            f"on {device.type}: its noise stream cannot move between device types; resume "
            f"with --device {trained_on}"
        )
    run_dir, step, total = Path(config.out), point.step, plan.total
    limit = "--max-steps" if plan.ends_by == "steps" else "--epochs"
    if total is not None and step > total:
        raise GanforgeError(
            f"{run_dir} is at step {step}, past the {total} steps that {limit} now allows; "
            f"give a larger {limit} to train on"
        )
    if total is not None and step == total and (run_dir / "summary.json").is_file():
        raise GanforgeError(
            f"{run_dir} has finished all its {total} steps; give a larger {limit} to train on"
        )
    progress = checkpoint["progress"]
    trained = progress.get("elapsed_s", 0.0) - progress.get("side_work_s", 0.0)
    if config.time_budget and trained >= config.time_budget:
        raise GanforgeError(
            f"{run_dir} has spent {trained:.0f} s of training, its whole --time-budget of "
            f"{config.time_budget:g} s; give a larger --time-budget to train on"
        )


def resume_from(
    point: ResumePoint, models: TrainedModels, run_state: RunState, shard: Shard
) -> None:
    """Put the trained models and the run's state where ``point``'s checkpoint left them."""
    models.load_state_dict(point.checkpoint, point.checkpoint["path"])
    run_state.restore(point.checkpoint, shard)
