"""A training run's folder, as rank 0 keeps it while the loop runs.

:func:`prepare_run_folder` makes a new run's folder (or readies a resumed one). :class:`RunFolder`
holds the session's hooks (:mod:`ganforge.training.hooks`) and checkpointer, words a stop or a
failure in one line, and ends the run: the final checkpoint, grid and evaluation, last of all
``summary.json`` (the mark of a finished run), then the report. It speaks to a person only
through the :class:`~ganforge.console.Console` it is handed. Any ``OSError`` while writing (a
full disk, a folder made read-only) becomes one :class:`~ganforge.errors.GanforgeError` line that
names the last checkpoint, which atomic writes keep intact.
"""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch

from ganforge.checkpoint_file import remove_partial_writes
from ganforge.config import GIVEN_NETWORKS, TrainConfig
from ganforge.console import Console
from ganforge.data import preprocess_images
from ganforge.errors import GanforgeError, first_line, one_line
from ganforge.eval import ReferenceSet, save_run_evaluation, score_run
from ganforge.files import atomic_write_text
from ganforge.image_files import save_grid, save_timeline_gif
from ganforge.nets import reconstruct
from ganforge.report import build_report, plot_losses
from ganforge.run_lock import LOCK_NAME, folder_error
from ganforge.sampling import in_eval_mode
from ganforge.steplog import read_step_log, truncate_step_log
from ganforge.training.checkpoints import RunState
from ganforge.training.hooks import Checkpointer, Hook, build_hooks
from ganforge.training.monitoring import Diverged
from ganforge.training.performance import peak_memory_mb
from ganforge.training.schedule import Iteration, RunPlan
from ganforge.training.state import TrainedModels
from ganforge.training.transfer import INIT_RECORD


@dataclass
class RunSummary:
    run_dir: Path
    steps: int
    epochs_completed: int
    wall_time_s: float
    images_per_s: float
    last_stats: dict[str, float]

    def line(self) -> str:
        losses = ", ".join(f"{k} {v:.3f}" for k, v in self.last_stats.items())
        return (
            f"{self.run_dir}: {self.steps} iterations in {self.wall_time_s:.0f} s "
            f"({self.images_per_s:.0f} images/s); last {losses}"
        )


def check_run_folder_is_free(run_dir: Path) -> None:
    """Refuse a run folder that is a file or holds anything but its writer's lock files."""
    if run_dir.exists() and not run_dir.is_dir():
        raise GanforgeError(f"--out {run_dir} is a file, not a folder; choose another --out")
    if run_dir.is_dir() and any(not p.name.startswith(LOCK_NAME) for p in run_dir.iterdir()):
        raise GanforgeError(
            f"run folder {run_dir} already exists and is not empty; choose another --out, "
            f"or continue it with --resume {run_dir}"
        )


def default_run_dir(config: TrainConfig) -> Path:
    """``--out``, or ``runs/<preset>-<timestamp>``."""
    if config.out:
        return Path(config.out)
    return Path("runs") / f"{config.preset}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def prepare_run_folder(config: TrainConfig, run_dir: Path, resume_step: int | None) -> Path:
    """A new run's empty folder with its ``config.json``; or, resuming after ``resume_step``,
    the run's folder without what came after that checkpoint: later log records, half written
    temporary files, and the summary and scores of a shorter finish."""
    if resume_step is None:
        check_run_folder_is_free(run_dir)
    try:
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            remove_partial_writes(run_dir)
            truncate_step_log(run_dir / "metrics.jsonl", resume_step)
            for stale in ("summary.json", "eval.json"):
                (run_dir / stale).unlink(missing_ok=True)
        atomic_write_text(run_dir / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    except OSError as exc:
        raise folder_error(run_dir, exc) from None
    return run_dir


#: A VAE run's reconstructions grid: this many training images over their reconstructions.
RECONSTRUCTED = 16


class RunFolder:
    """Rank 0's run folder while one training session runs: its hooks (the step log, loggers,
    progress, grids, evaluations), its checkpointer, the one-line words of a stop or a failure,
    and the end of the run.

    ``examples``: a few training images, uint8 ``(k, C, H, W)``, that a VAE reconstructs at the
    end (``samples/reconstructions.png``); ``resumed_from``: the checkpoint this session
    continues (``None`` for a new run); ``init_record``: where a new run's networks started
    (``--init-from``), written to ``init_from.json`` and repeated in the summary.
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path,
        models: TrainedModels,
        run_state: RunState,
        console: Console,
        plan: RunPlan,
        *,
        reference: ReferenceSet | None,
        examples: torch.Tensor | None,
        resumed_from: str | None,
        processes: int = 1,
        init_record: dict | None = None,
    ) -> None:
        self.config, self.run_dir, self.models = config, run_dir, models
        self.run_state, self.console, self.plan = run_state, console, plan
        self.reference, self.examples, self.processes = reference, examples, processes
        self.resumed = resumed_from is not None
        self.init_record = init_record
        self.stopped_by: str | None = None  # "time_budget" once note_time_budget says so
        self.checkpointer = Checkpointer(config, run_dir, models, run_state, plan, resumed_from)
        self.hooks = build_hooks(
            config, run_dir, models, run_state, console, plan, self.checkpointer, reference
        )
        self.end = self.hooks.add(RunEnd(self))

    def begin(self, data_state: torch.Tensor | None) -> None:
        """Show the progress bar; a new run writes its step-0 checkpoint, so that from the
        first moment on a kill leaves one."""
        self.console.start_progress(self.plan.total, self.plan.start_step)
        if not self.resumed:
            if self.init_record is not None:
                text = json.dumps(self.init_record, indent=2) + "\n"
                atomic_write_text(self.run_dir / INIT_RECORD, text)
            self.checkpointer.save(0, data_state)

    def note_time_budget(self, step: int) -> None:
        """Log where the time budget ended the run."""
        self.stopped_by = "time_budget"
        trained = self.run_state.training_s()
        message = f"time budget of {self.config.time_budget:g} s spent ({trained:.1f} s)"
        self.hooks.record(step, "stopped", {"stopped": message, "train_time_s": round(trained, 3)})
        self.console.notice(f"step {step}: {message}; finishing the run")

    def stop_message(self, signal_name: str, step: int) -> str:
        total = "" if self.plan.total is None else f" of {self.plan.total}"
        return (
            f"stopped by {signal_name} at step {step}{total}; checkpoint "
            f"{self.checkpointer.last_saved}; continue with: ganforge train --resume {self.run_dir}"
        )

    def failure_message(self, exc: BaseException, then: str = "continue") -> str:
        """The one line that a failure of this side work (``exc``) reports; a failed write
        names the intact checkpoint and what ``--resume`` will ``then`` do."""
        if isinstance(exc, OSError):
            return (
                f"cannot write to the run folder {self.run_dir}: {exc.strerror or exc}; the "
                f"last checkpoint, {self.checkpointer.last_saved}, is intact: make room, then "
                f"{then} with --resume {self.run_dir}"
            )
        return one_line(exc)

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Around the loop: whatever ends the session early, the hooks are closed (the log and
        the loggers flushed); one clear line for a divergence or a failed write, naming the
        last good checkpoint; a new run that failed before its first step leaves no folder."""
        run_dir = self.run_dir
        try:
            yield
        except BaseException as exc:
            fresh = not self.resumed and self.hooks.steps_seen == 0
            self.close()
            if isinstance(exc, Diverged):
                raise Diverged(
                    f"{exc}. Training stopped; the last good checkpoint is "
                    f"{self.checkpointer.last_saved} (continue from it with --resume {run_dir} "
                    "--on-nan skip-step, or train again with a lower --lr)"
                ) from None
            if fresh:  # nothing of this run is worth keeping
                shutil.rmtree(run_dir, ignore_errors=True)
            if isinstance(exc, OSError):
                if fresh:
                    raise folder_error(run_dir, exc) from None
                raise GanforgeError(self.failure_message(exc)) from None
            if (
                fresh
                and self.config.compile
                and not isinstance(exc, (GanforgeError, KeyboardInterrupt))
            ):
                raise GanforgeError(f"torch.compile failed: {first_line(exc)}") from exc
            raise
        finally:
            self.console.end_progress()

    def close(self) -> None:
        self.console.end_progress()
        self.hooks.close()

    # -- at the end ------------------------------------------------------------------------

    def reconstruction_grid(self, path: Path) -> None:
        """A VAE's training examples (odd rows) above their reconstructions from the posterior
        means (even rows), up to 8 per row."""
        columns = min(8, len(self.examples))
        rows = min(RECONSTRUCTED, len(self.examples)) // columns
        real = preprocess_images(self.examples[: rows * columns]).to(self.models.device)
        encoder, decoder = self.models.encoder, self.models.sampler
        with in_eval_mode(encoder, decoder), torch.inference_mode():
            decoded = reconstruct(encoder, decoder, real)
        pairs = torch.stack(
            [real.unflatten(0, (rows, columns)), decoded.unflatten(0, (rows, columns))], 1
        )
        save_grid(pairs.flatten(0, 2), path, nrow=columns)

    def finish(self, last: Iteration | None) -> RunSummary:
        """The end of the run (``last``: the final iteration, ``None`` when this session trained
        no step): every hook's :meth:`~ganforge.training.hooks.Hook.at_end`, in order (the
        final grid, the final checkpoint, then :class:`RunEnd`: evaluation, summary, report),
        then the hooks are closed."""
        step = last.step if last is not None else self.plan.start_step
        self.stopped_by = self.stopped_by or self.plan.ends_by
        self._say_why_it_ended(step, self.stopped_by)
        try:
            with self.run_state.timing_side_work():
                self.hooks.at_end(last)
        except OSError as exc:
            raise GanforgeError(self.failure_message(exc, then="finish")) from None
        finally:
            self.close()
        return self.end.summary

    def _say_why_it_ended(self, step: int, stopped_by: str) -> None:
        """One line, logged and shown, when the run ends before a length the user gave: at its
        epochs before ``--max-steps``, or at either count before its ``--time-budget``."""
        config, limits = self.config, []
        if stopped_by == "epochs" and config.max_steps and step < config.max_steps:
            limits.append(f"--max-steps {config.max_steps}")
        if stopped_by != "time_budget" and config.time_budget:
            spent = self.run_state.training_s()
            limits.append(f"its --time-budget of {config.time_budget:g} s ({spent:.0f} s spent)")
        if limits:
            ended_by = f"--epochs {config.epochs}" if stopped_by == "epochs" else "--max-steps"
            message = f"{ended_by} ended the run before {' and '.join(limits)}"
            self.hooks.record(step, "stopped", {"stopped": message})
            self.console.notice(f"step {step}: {message}")


class RunEnd(Hook):
    """The end of a run, the last hook: a VAE's reconstructions, the timeline GIF, the loss
    curves, the final evaluation (what ``ganforge eval`` would score: the checkpoint's
    generator, read back; recorded for the loggers as ``final``), then ``summary.json``,
    written last, so that a run stopped before it is resumed to finish, and the report."""

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder
        self.summary: RunSummary | None = None

    def at_end(self, last: Iteration | None) -> None:
        folder = self.folder
        config, run_dir, run_state, models = (
            folder.config,
            folder.run_dir,
            folder.run_state,
            folder.models,
        )
        step = last.step if last is not None else folder.plan.start_step
        wall, busy = run_state.elapsed_s(), run_state.training_s()
        self.summary = summary = RunSummary(
            run_dir,
            step,
            step // folder.plan.per_epoch,
            wall,
            step * config.batch_size / max(busy, 1e-9),
            run_state.last_stats,
        )
        if models.is_vae and folder.examples is not None:
            folder.reconstruction_grid(run_dir / "samples" / "reconstructions.png")
        save_timeline_gif(run_dir / "samples", run_dir / "samples" / "timeline.gif")
        plot_losses(
            read_step_log(run_dir / "metrics.jsonl"),
            run_dir / "loss_curve.png",
            title=f"{config.preset} ({config.loss}, {config.architecture})",
        )
        evaluation_s = None
        if folder.reference is not None and config.final_eval_num:
            evaluation_started = time.perf_counter()
            given = config.architecture == GIVEN_NETWORKS
            result = score_run(
                run_dir,
                num=config.final_eval_num,
                seed=config.seed,
                trust_code=True,  # this run's own networks, trusted when it started
                generator=copy.deepcopy(models.generator) if given else None,
                reference=folder.reference,
            )
            save_run_evaluation(run_dir, result)
            evaluation_s = round(time.perf_counter() - evaluation_started, 2)
            scores = {k: v for k, v in result["samples"].items() if isinstance(v, int | float)}
            folder.hooks.record(step, "final", scores, scores)
        facts = {
            "steps": summary.steps,
            "epochs_completed": summary.epochs_completed,
            "wall_time_s": round(wall, 2),
            "train_time_s": round(busy, 2),
            "final_evaluation_s": evaluation_s,
            "stopped_by": folder.stopped_by,
            "images_per_s": round(summary.images_per_s, 1),
            "device": str(models.device),
            "processes": folder.processes,
            "precision": config.precision,
            "compile": config.compile,
            "peak_memory_mb": round(peak_memory_mb(models.device), 1),
            "best_fid_during_training": run_state.best_fid,
            "last": summary.last_stats,
        }
        if config.on_nan == "skip-step":
            facts["skipped_updates"] = run_state.monitor.skipped_total
        if (run_dir / INIT_RECORD).is_file():  # the record of the run's first session
            facts["init_from"] = json.loads((run_dir / INIT_RECORD).read_text())
        atomic_write_text(run_dir / "summary.json", json.dumps(facts, indent=2) + "\n")
        build_report(run_dir)
