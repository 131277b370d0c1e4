"""A training run's folder, as rank 0 keeps it while the loop runs: the side work of training.

:class:`RunFolder` writes the step log, sample grids, evaluations, warnings, checkpoints and,
last of all, ``summary.json``: the mark of a finished run. It speaks to a person only through
the :class:`~ganforge.console.Console` it is handed. Any ``OSError`` while writing (a full disk,
a folder made read-only) becomes one :class:`~ganforge.errors.GanforgeError` line that names the
last checkpoint, which atomic writes keep intact.
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

from ganforge.checkpoint_file import remove_partial_writes, save_best_checkpoint
from ganforge.config import GIVEN_NETWORKS, TrainConfig
from ganforge.console import Console
from ganforge.data import preprocess_images, to_uint8
from ganforge.errors import GanforgeError, first_line, one_line
from ganforge.eval import ReferenceSet, quick_scores, save_run_evaluation, score_run
from ganforge.files import atomic_write_text
from ganforge.image_files import save_grid, save_timeline_gif
from ganforge.nets import reconstruct, sample_noise
from ganforge.report import build_report, plot_losses
from ganforge.sampling import balanced_labels, generate, generate_from, in_eval_mode
from ganforge.steplog import StepLog, read_step_log, truncate_step_log
from ganforge.training.checkpoints import RunState, make_checkpoint, save_checkpoint
from ganforge.training.loop import Iteration, checkpointed_epochs
from ganforge.training.monitoring import GRAD_NORM_EVERY, Diverged, gradient_norm
from ganforge.training.performance import peak_memory_mb
from ganforge.training.state import TrainedModels


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


def summary_writer_class():
    """TensorBoard's ``SummaryWriter``, or one clear error when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise GanforgeError(
            "--tensorboard needs the tensorboard package: pip install tensorboard"
        ) from None
    return SummaryWriter


def check_run_folder_is_free(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise GanforgeError(f"--out {run_dir} is a file, not a folder; choose another --out")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise GanforgeError(
            f"run folder {run_dir} already exists and is not empty; choose another --out, "
            f"or continue it with --resume {run_dir}"
        )


def default_run_dir(config: TrainConfig) -> Path:
    """``--out``, or ``runs/<preset>-<timestamp>``."""
    if config.out:
        return Path(config.out)
    return Path("runs") / f"{config.preset}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _folder_error(run_dir: Path, exc: OSError) -> GanforgeError:
    return GanforgeError(f"cannot write the run folder {run_dir}: {exc.strerror or exc}")


def prepare_run_folder(config: TrainConfig, resume_step: int | None) -> Path:
    """A new run's empty folder with its ``config.json``; or, resuming after ``resume_step``,
    the run's folder without what came after that checkpoint: later log records, half written
    temporary files, and the summary and scores of a shorter finish."""
    run_dir = default_run_dir(config)
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
        raise _folder_error(run_dir, exc) from None
    return run_dir


#: The logged numbers the progress bar shows, and their short names: a GAN's, then a VAE's.
SHOWN_STATS = (("d_loss", "D"), ("g_loss", "G"), ("loss", "-ELBO"), ("kl", "KL"))
#: A VAE run's reconstructions grid: this many training images over their reconstructions.
RECONSTRUCTED = 16


class RunFolder:
    """Rank 0's record of one training session of a run (see the module docstring).

    ``examples``: a few training images, uint8 ``(k, C, H, W)``, that a VAE reconstructs at the
    end (``samples/reconstructions.png``); ``resumed_from``: the checkpoint this session
    continues (``None`` for a new run).
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path,
        models: TrainedModels,
        run_state: RunState,
        console: Console,
        *,
        reference: ReferenceSet | None,
        examples: torch.Tensor | None,
        per_epoch: int,
        total: int,
        start_step: int,
        resumed_from: str | None,
    ) -> None:
        self.config, self.run_dir, self.models = config, run_dir, models
        self.run_state, self.console = run_state, console
        self.reference, self.examples = reference, examples
        self.per_epoch, self.total, self.start_step = per_epoch, total, start_step
        self.device = models.device
        grid_noise = torch.Generator().manual_seed(config.seed + 2)
        self.fixed_noise = sample_noise(
            config.grid_size, config.noise_dim, distribution=config.noise, generator=grid_noise
        ).to(self.device)
        self.last_saved, self.saved_step = resumed_from, start_step if resumed_from else None
        self.resumed = resumed_from is not None
        self.steps_done = 0
        self.stopped_by = "steps"  # or "time_budget" (note_time_budget)
        self.grad_norms: dict[str, float | None] = {}
        self.log = StepLog(run_dir / "metrics.jsonl")
        writer_class = summary_writer_class() if config.tensorboard else None
        purge = {"purge_step": start_step + 1} if self.resumed else {}  # drop the later steps
        self.board = (
            writer_class(log_dir=str(run_dir / "tensorboard"), **purge) if writer_class else None
        )

    # -- during the loop -------------------------------------------------------------------

    def begin(self, data_state: torch.Tensor | None) -> None:
        """Show the progress bar; a new run writes its step-0 checkpoint, so that from the
        first moment on a kill leaves one."""
        self.console.start_progress(self.total, self.start_step)
        if not self.resumed:
            self.save_checkpoint(0, data_state)

    def log_step(self, it: Iteration) -> None:
        """Log one iteration and its gradient norms, measured every
        :data:`~ganforge.training.monitoring.GRAD_NORM_EVERY` steps."""
        self.grad_norms = {}
        if it.step % GRAD_NORM_EVERY == 0:
            self.grad_norms = {
                "d": gradient_norm(self.models.partner),
                "g": gradient_norm(self.models.generator),
            }
        norms = {f"{k}_grad_norm": v for k, v in self.grad_norms.items() if v is not None}
        record = {"step": it.step, "epoch": it.epoch, **it.stats, **norms}
        self.log.write({**record, "time": self.run_state.elapsed_s()})
        if self.board:
            for key, value in it.stats.items():
                self.board.add_scalar(f"train/{key}", value, it.step)

    def watch(self, it: Iteration) -> None:
        """The monitor's warnings that this step starts, and the progress bar."""
        self.steps_done += 1
        self.run_state.last_stats = it.stats
        self.warn(it.step, self.run_state.monitor.observe_step(it.step, it.stats, self.grad_norms))
        status = self._status(it) if it.step % 10 == 0 or it.step == self.total else None
        self.console.advance(1, status)

    def warn(self, step: int, warnings: list[str]) -> None:
        for message in warnings:
            self.log.write({"step": step, "warning": message})
            self.console.warning(message)

    def _status(self, it: Iteration) -> dict[str, str]:
        run_state = self.run_state
        training = run_state.elapsed_s() - run_state.elapsed_before - run_state.side_work
        speed = (it.step - self.start_step) * self.config.batch_size / max(training, 1e-9)
        status = {
            "epoch": str(it.epoch + 1),
            **{short: f"{it.stats[key]:.3f}" for key, short in SHOWN_STATS if key in it.stats},
            "img/s": f"{speed:.0f}",
        }
        if run_state.last_fid is not None:
            status["FID"] = f"{run_state.last_fid:.1f}"
        if run_state.monitor.warned:
            status["warning"] = ",".join(sorted(run_state.monitor.warned))
        return status

    def sample_grid(self, name: str, step: int) -> None:
        sampler = self.models.sampler
        with in_eval_mode(sampler), torch.inference_mode():
            images = generate_from(sampler, self.fixed_noise, device=self.device)
        save_grid(images, self.run_dir / "samples" / name)
        if self.board:
            self.board.add_images("samples", (images.cpu() + 1) / 2, step)

    def evaluate(self, it: Iteration) -> None:
        """FID and class coverage of ``eval_num`` samples, logged; a new best FID is saved as
        ``checkpoints/best.pt``."""
        config, sampler, run_state = self.config, self.models.sampler, self.run_state
        with in_eval_mode(sampler):
            fake = generate(
                sampler,
                config.eval_num,
                config.noise_dim,
                seed=config.seed + 3,
                noise=config.noise,
                device=self.device,
            )
        classes = self.models.num_classes
        labels = balanced_labels(config.eval_num, classes) if classes else None
        scores = quick_scores(self.reference, to_uint8(fake), labels)
        run_state.last_fid = scores["fid"]
        trained = round(run_state.training_s(), 3)  # the steps' time so far, not this one's
        record = {"step": it.step, **scores, "train_time_s": trained}
        self.log.write({**record, "evaluator": self.reference.evaluator.name})
        if self.board:
            for key, value in scores.items():
                self.board.add_scalar(f"eval/{key}", value, it.step)
        evaluator_classes = len(self.reference.evaluator.classes)
        covered = scores["classes_covered"]
        self.warn(
            it.step,
            run_state.monitor.observe_evaluation(it.step, covered, evaluator_classes),
        )
        if run_state.best_fid is None or scores["fid"] < run_state.best_fid:
            run_state.best_fid = scores["fid"]
            best = self._checkpoint(it.step, it.resume_data_state)
            save_best_checkpoint(self.run_dir, {**best, "fid": run_state.best_fid})

    def _checkpoint(self, step: int, data_state: torch.Tensor | None) -> dict:
        return make_checkpoint(
            self.config, step, self.per_epoch, self.models, self.run_state, data_state
        )

    def epoch_checkpoint_due(self, epoch: int) -> bool:
        """Whether the end of ``epoch`` (from 0) is checkpointed (see
        :func:`~ganforge.training.loop.checkpointed_epochs`)."""
        return (epoch + 1) % checkpointed_epochs(self.per_epoch) == 0

    def save_checkpoint(self, step: int, data_state: torch.Tensor | None) -> None:
        checkpoint = self._checkpoint(step, data_state)
        self.last_saved = save_checkpoint(self.run_dir, checkpoint, self.config.keep_checkpoints)
        self.saved_step = step

    def note_time_budget(self, step: int) -> None:
        """Log where the time budget ended the run."""
        self.stopped_by = "time_budget"
        trained = self.run_state.training_s()
        message = f"time budget of {self.config.time_budget:g} s spent ({trained:.1f} s)"
        self.log.write({"step": step, "stopped": message, "train_time_s": round(trained, 3)})
        self.console.notice(f"step {step}: {message}; finishing the run")

    def stop_message(self, signal_name: str, step: int) -> str:
        return (
            f"stopped by {signal_name} at step {step} of {self.total}; checkpoint "
            f"{self.last_saved}; continue with: ganforge train --resume {self.run_dir}"
        )

    def failure_message(self, exc: BaseException, then: str = "continue") -> str:
        """The one line that a failure of this side work (``exc``) reports; a failed write
        names the intact checkpoint and what ``--resume`` will ``then`` do."""
        if isinstance(exc, OSError):
            return (
                f"cannot write to the run folder {self.run_dir}: {exc.strerror or exc}; the "
                f"last checkpoint, {self.last_saved}, is intact: make room, then {then} with "
                f"--resume {self.run_dir}"
            )
        return one_line(exc)

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Around the loop: one clear line for a divergence or a failed write, naming the last
        good checkpoint; a new run that failed before its first step leaves no folder."""
        run_dir = self.run_dir
        try:
            yield
        except Diverged as exc:
            raise Diverged(
                f"{exc}. Training stopped; the last good checkpoint is {self.last_saved} "
                f"(continue from it with --resume {run_dir} --on-nan skip-step, or train again "
                "with a lower --lr)"
            ) from None
        except BaseException as exc:
            fresh = not self.resumed and self.steps_done == 0
            if fresh:  # nothing of this run is worth keeping
                self.close()
                shutil.rmtree(run_dir, ignore_errors=True)
            if isinstance(exc, OSError):
                if fresh:
                    raise _folder_error(run_dir, exc) from None
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
        self.log.close()
        if self.board:
            self.board.close()

    # -- at the end ------------------------------------------------------------------------

    def reconstruction_grid(self, path: Path) -> None:
        """A VAE's training examples (odd rows) above their reconstructions from the posterior
        means (even rows), up to 8 per row."""
        columns = min(8, len(self.examples))
        rows = min(RECONSTRUCTED, len(self.examples)) // columns
        real = preprocess_images(self.examples[: rows * columns]).to(self.device)
        encoder, decoder = self.models.encoder, self.models.sampler
        with in_eval_mode(encoder, decoder), torch.inference_mode():
            decoded = reconstruct(encoder, decoder, real)
        pairs = torch.stack(
            [real.unflatten(0, (rows, columns)), decoded.unflatten(0, (rows, columns))], 1
        )
        save_grid(pairs.flatten(0, 2), path, nrow=columns)

    def finish(self, last: Iteration | None, processes: int) -> RunSummary:
        """The last checkpoint, grid, loss curve and evaluation, then ``summary.json``: written
        last, so that a run stopped before it is resumed to finish; then the report (``last``:
        the final iteration, ``None`` when this session trained no step)."""
        config, run_dir, run_state = self.config, self.run_dir, self.run_state
        step = last.step if last is not None else self.start_step
        self.log.close()
        try:
            if self.saved_step != step:
                self.save_checkpoint(step, last.resume_data_state)
            wall = run_state.elapsed_s()
            busy = wall - run_state.side_work_s()
            summary = RunSummary(
                run_dir,
                step,
                step // self.per_epoch,
                wall,
                step * config.batch_size / max(busy, 1e-9),
                run_state.last_stats,
            )
            self.sample_grid("final.png", step)
            if self.models.is_vae and self.examples is not None:
                self.reconstruction_grid(run_dir / "samples" / "reconstructions.png")
            save_timeline_gif(run_dir / "samples", run_dir / "samples" / "timeline.gif")
            if self.board:
                self.board.close()
            plot_losses(
                read_step_log(run_dir / "metrics.jsonl"),
                run_dir / "loss_curve.png",
                title=f"{config.preset} ({config.loss}, {config.architecture})",
            )
            evaluation_s = None
            if self.reference is not None and config.final_eval_num:
                # What `ganforge eval` would score: the checkpoint's generator, read back.
                evaluation_started = time.perf_counter()
                given = config.architecture == GIVEN_NETWORKS
                result = score_run(
                    run_dir,
                    num=config.final_eval_num,
                    seed=config.seed,
                    trust_code=True,  # this run's own networks, trusted when it started
                    generator=copy.deepcopy(self.models.generator) if given else None,
                    reference=self.reference,
                )
                save_run_evaluation(run_dir, result)
                evaluation_s = round(time.perf_counter() - evaluation_started, 2)
            facts = {
                "steps": summary.steps,
                "epochs_completed": summary.epochs_completed,
                "wall_time_s": round(wall, 2),
                "train_time_s": round(busy, 2),
                "final_evaluation_s": evaluation_s,
                "stopped_by": self.stopped_by,
                "images_per_s": round(summary.images_per_s, 1),
                "device": str(self.device),
                "processes": processes,
                "precision": config.precision,
                "compile": config.compile,
                "peak_memory_mb": round(peak_memory_mb(self.device), 1),
                "best_fid_during_training": run_state.best_fid,
                "last": summary.last_stats,
            }
            if self.models.skip_nonfinite:
                facts["skipped_updates"] = run_state.monitor.skipped_total
            atomic_write_text(run_dir / "summary.json", json.dumps(facts, indent=2) + "\n")
            build_report(run_dir)
        except OSError as exc:
            raise GanforgeError(self.failure_message(exc, then="finish")) from None
        return summary
