"""A training run's folder, as rank 0 keeps it while the loop in :mod:`ganforge.training` runs.

:class:`RunFolder` writes the log, the progress bar, sample grids, evaluations, warnings,
checkpoints and, last of all, ``summary.json``: the mark of a finished run. It also keeps the
bookkeeping a checkpoint carries so that a resumed run goes on as the uninterrupted one would
(wall time, best FID, the monitor's state). Any ``OSError`` while writing (a full disk, a folder
made read-only) becomes one :class:`~ganforge.errors.GanforgeError` line that names the last
checkpoint, which atomic writes keep intact.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ganforge.checkpoint import (
    make_checkpoint,
    remove_partial_writes,
    save_best_checkpoint,
    save_run_checkpoint,
)
from ganforge.config import TrainConfig
from ganforge.data import preprocess_images, to_uint8
from ganforge.errors import GanforgeError, first_line
from ganforge.files import atomic_write_text
from ganforge.metrics import ReferenceSet, quick_scores
from ganforge.models import sample_noise
from ganforge.monitoring import (
    GRAD_NORM_EVERY,
    Diverged,
    TrainingMonitor,
    gradient_norm,
    non_finite_tensors,
)
from ganforge.performance import peak_memory_mb
from ganforge.reporting import (
    MetricsLog,
    plot_losses,
    read_metrics,
    save_grid,
    save_timeline_gif,
    truncate_metrics,
)
from ganforge.sampling import balanced_labels, generate, generate_from
from ganforge.vae import reconstruct


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


def _folder_error(run_dir: Path, exc: OSError) -> GanforgeError:
    return GanforgeError(f"cannot write the run folder {run_dir}: {exc.strerror or exc}")


def prepare_run_folder(config: TrainConfig, resume_step: int | None) -> Path:
    """A new run's empty folder with its ``config.json``; or, resuming after ``resume_step``,
    the run's folder without what came after that checkpoint: later log records, half written
    temporary files, and the summary and scores of a shorter finish."""
    if resume_step is None:
        if config.out:
            run_dir = Path(config.out)
        else:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            run_dir = Path("runs") / f"{config.preset}-{stamp}"
        check_run_folder_is_free(run_dir)
    else:
        run_dir = Path(config.out)
    try:
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            remove_partial_writes(run_dir)
            truncate_metrics(run_dir / "metrics.jsonl", resume_step)
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


@contextlib.contextmanager
def _in_eval_mode(*models: torch.nn.Module) -> Iterator[None]:
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


class RunFolder:
    """Rank 0's record of one training session of a run (see the module docstring).

    ``gan`` is a :class:`ganforge.training.GAN`; ``past`` the ``progress`` of the checkpoint the
    session resumes from (empty for a new run); ``noise_generator`` and ``per_epoch`` are the
    loop's, for checkpoints; ``examples``: a few training images, uint8 ``(k, C, H, W)``, that a
    VAE reconstructs at the end (``samples/reconstructions.png``).
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path,
        gan,
        monitor: TrainingMonitor,
        *,
        reference: ReferenceSet | None,
        examples: torch.Tensor | None = None,
        noise_generator: torch.Generator,
        per_epoch: int,
        total: int,
        start_step: int,
        resumed_from: str | None,
        past: dict[str, Any],
        quiet: bool,
    ) -> None:
        self.config, self.run_dir, self.gan, self.monitor = config, run_dir, gan, monitor
        self.reference, self.noise_generator = reference, noise_generator
        self.examples = examples
        self.per_epoch, self.total, self.start_step = per_epoch, total, start_step
        self.device = gan.device
        grid_noise = torch.Generator().manual_seed(config.seed + 2)
        self.fixed_noise = sample_noise(
            config.grid_size, config.noise_dim, distribution=config.noise, generator=grid_noise
        ).to(self.device)
        self.elapsed_before = past.get("elapsed_s", 0.0)
        self.side_work_before = past.get("side_work_s", 0.0)
        self.best_fid, self.last_fid = past.get("best_fid"), past.get("last_fid")
        self.last_stats = past.get("last_stats") or {}
        self.last_saved, self.saved_step = resumed_from, start_step if resumed_from else None
        self.resumed = resumed_from is not None
        self.steps_done = 0
        self.log = MetricsLog(run_dir / "metrics.jsonl")
        writer_class = summary_writer_class() if config.tensorboard else None
        purge = {"purge_step": start_step + 1} if self.resumed else {}  # drop the later steps
        self.board = (
            writer_class(log_dir=str(run_dir / "tensorboard"), **purge) if writer_class else None
        )
        self.progress = tqdm(
            total=total, initial=start_step, disable=quiet, unit="it", dynamic_ncols=True
        )
        self.start = time.perf_counter()
        self.side_work = 0.0  # seconds on grids, evaluations and checkpoints, not on training

    # -- during the loop -------------------------------------------------------------------

    def begin(self, data_state: torch.Tensor | None) -> None:
        """A new run's step-0 checkpoint: from the first moment on, a kill leaves one."""
        if not self.resumed:
            self.save_checkpoint(0, data_state, None)

    def log_step(self, it) -> None:
        """Log one iteration (``it``: a :class:`ganforge.training.Iteration`) and its gradient
        norms, measured every :data:`~ganforge.monitoring.GRAD_NORM_EVERY` steps."""
        self.step_began = time.perf_counter()
        self.grad_norms = {}
        if it.step % GRAD_NORM_EVERY == 0:
            self.grad_norms = {
                "d": gradient_norm(self.gan.discriminator),
                "g": gradient_norm(self.gan.generator),
            }
        norms = {f"{k}_grad_norm": v for k, v in self.grad_norms.items() if v is not None}
        time_s = self.elapsed_before + self.step_began - self.start
        self.log.write({"step": it.step, "epoch": it.epoch, **it.stats, **norms, "time": time_s})
        if self.board:
            for key, value in it.stats.items():
                self.board.add_scalar(f"train/{key}", value, it.step)

    def after_step(self, it, stopping: bool) -> None:
        """Warnings, progress, grids, evaluations and checkpoints that this step is due."""
        config = self.config
        self.steps_done += 1
        self.last_stats = it.stats
        warnings = self.monitor.observe_step(it.step, it.stats, self.grad_norms)
        self.progress.update(1)
        if it.step % config.sample_every == 0:
            self.sample_grid(f"step_{it.step:07d}.png", it.step)
        if self.reference is not None and config.eval_every and it.step % config.eval_every == 0:
            scores = self.evaluate(it.step)
            classes = len(self.reference.evaluator.classes)
            warnings += self.monitor.observe_evaluation(it.step, scores["classes_covered"], classes)
            if self.best_fid is None or scores["fid"] < self.best_fid:
                self.best_fid = scores["fid"]
                best = self.snapshot(it.step, it.resume_data_state, it.stats)
                save_best_checkpoint(self.run_dir, {**best, "fid": self.best_fid})
        for message in warnings:
            self.log.write({"step": it.step, "warning": message})
            tqdm.write(f"ganforge: warning: {message}", file=sys.stderr)
        if it.step % 10 == 0 or it.step == self.total:
            self._show_progress(it)
        periodic = config.checkpoint_every and it.step % config.checkpoint_every == 0
        if it.end_of_epoch or periodic or stopping:
            self.save_checkpoint(it.step, it.resume_data_state, it.stats)
        self.side_work += time.perf_counter() - self.step_began

    def _show_progress(self, it) -> None:
        busy = self.step_began - self.start - self.side_work
        speed = (it.step - self.start_step) * self.config.batch_size / max(busy, 1e-9)
        postfix = {
            "epoch": it.epoch + 1,
            **{short: f"{it.stats[key]:.3f}" for key, short in SHOWN_STATS if key in it.stats},
            "img/s": f"{speed:.0f}",
        }
        if self.last_fid is not None:
            postfix["FID"] = f"{self.last_fid:.1f}"
        if self.monitor.warned:
            postfix["warning"] = ",".join(sorted(self.monitor.warned))
        self.progress.set_postfix(postfix)

    def sample_grid(self, name: str, step: int) -> None:
        sampler = self.gan.sampler
        with _in_eval_mode(sampler), torch.inference_mode():
            images = generate_from(sampler, self.fixed_noise, device=self.device)
        save_grid(images, self.run_dir / "samples" / name)
        if self.board:
            self.board.add_images("samples", (images.cpu() + 1) / 2, step)

    def reconstruction_grid(self, path: Path) -> None:
        """A VAE's training examples (odd rows) above their reconstructions from the posterior
        means (even rows), up to 8 per row."""
        columns = min(8, len(self.examples))
        rows = min(RECONSTRUCTED, len(self.examples)) // columns
        real = preprocess_images(self.examples[: rows * columns]).to(self.device)
        encoder, decoder = self.gan.discriminator, self.gan.sampler
        with _in_eval_mode(encoder, decoder), torch.inference_mode():
            decoded = reconstruct(encoder, decoder, real)
        pairs = torch.stack(
            [real.unflatten(0, (rows, columns)), decoded.unflatten(0, (rows, columns))], 1
        )
        save_grid(pairs.flatten(0, 2), path, nrow=columns)

    def evaluate(self, step: int) -> dict[str, float]:
        config, sampler = self.config, self.gan.sampler
        with _in_eval_mode(sampler):
            fake = generate(
                sampler,
                config.eval_num,
                config.noise_dim,
                seed=config.seed + 3,
                noise=config.noise,
                device=self.device,
            )
        labels = (
            balanced_labels(config.eval_num, self.gan.num_classes) if self.gan.num_classes else None
        )
        scores = quick_scores(self.reference, to_uint8(fake), labels)
        self.last_fid = scores["fid"]
        self.log.write({"step": step, **scores, "evaluator": self.reference.evaluator.name})
        if self.board:
            for key, value in scores.items():
                self.board.add_scalar(f"eval/{key}", value, step)
        return scores

    def snapshot(self, step: int, data_state: torch.Tensor | None, stats) -> dict[str, Any]:
        """The checkpoint of the run as it is after ``step``; refuses non-finite weights, so
        that no checkpoint ever holds a diverged network."""
        gan = self.gan
        for name, model in (("generator", gan.generator), ("discriminator", gan.discriminator)):
            bad = non_finite_tensors(model)
            if bad:
                raise Diverged(f"step {step}: the {name}'s weights hold NaN or Inf ({bad[0]})")
        cuda = self.device.type == "cuda"
        rng = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(self.device) if cuda else None,
            "data": data_state,
            "noise": self.noise_generator.get_state(),
        }
        progress = {
            "device_type": self.device.type,
            "elapsed_s": self.elapsed_before + time.perf_counter() - self.start,
            "side_work_s": self.side_work_before + self.side_work,
            "best_fid": self.best_fid,
            "last_fid": self.last_fid,
            "last_stats": stats,
            "monitor": self.monitor.state_dict(),
        }
        return make_checkpoint(
            config=self.config.to_dict(),
            step=step,
            epoch=step // self.per_epoch,
            generator=gan.generator,
            discriminator=gan.discriminator,
            g_optimizer=gan.g_optimizer,
            d_optimizer=gan.d_optimizer,
            g_scaler=gan.g_scaler,
            d_scaler=gan.d_scaler,
            rng_states=rng,
            progress=progress,
            generator_ema=gan.averaged_generator(),
        )

    def save_checkpoint(self, step: int, data_state: torch.Tensor | None, stats) -> None:
        state = self.snapshot(step, data_state, stats)
        self.last_saved = save_run_checkpoint(self.run_dir, state, self.config.keep_checkpoints)
        self.saved_step = step

    def stop_message(self, signal_name: str, step: int) -> str:
        return (
            f"stopped by {signal_name} at step {step} of {self.total}; checkpoint "
            f"{self.last_saved}; continue with: ganforge train --resume {self.run_dir}"
        )

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
                raise GanforgeError(
                    f"cannot write to the run folder {run_dir}: {exc.strerror or exc}; the last "
                    f"checkpoint, {self.last_saved}, is intact: make room, then continue with "
                    f"--resume {run_dir}"
                ) from None
            if (
                fresh
                and self.config.compile
                and not isinstance(exc, (GanforgeError, KeyboardInterrupt))
            ):
                raise GanforgeError(f"torch.compile failed: {first_line(exc)}") from exc
            raise
        finally:
            self.progress.close()

    def close(self) -> None:
        self.progress.close()
        self.log.close()
        if self.board:
            self.board.close()

    # -- at the end ------------------------------------------------------------------------

    def finish(self, last, processes: int) -> RunSummary:
        """The last checkpoint, grid, loss curve and evaluation, then ``summary.json``: written
        last, so that a run stopped before it is resumed to finish (``last``: the final
        :class:`ganforge.training.Iteration`, ``None`` when this session trained no step)."""
        config, run_dir = self.config, self.run_dir
        step = last.step if last is not None else self.start_step
        self.log.close()
        try:
            if self.saved_step != step:
                self.save_checkpoint(step, last.resume_data_state, last.stats)
            wall = self.elapsed_before + time.perf_counter() - self.start
            busy = wall - self.side_work_before - self.side_work
            summary = RunSummary(
                run_dir,
                step,
                step // self.per_epoch,
                wall,
                step * config.batch_size / max(busy, 1e-9),
                self.last_stats,
            )
            self.sample_grid("final.png", step)
            if self.gan.likelihood and self.examples is not None:
                self.reconstruction_grid(run_dir / "samples" / "reconstructions.png")
            save_timeline_gif(run_dir / "samples", run_dir / "samples" / "timeline.gif")
            if self.board:
                self.board.close()
            plot_losses(
                read_metrics(run_dir / "metrics.jsonl"),
                run_dir / "loss_curve.png",
                title=f"{config.preset} ({config.loss}, {config.architecture})",
            )
            if self.reference is not None and config.final_eval_num:
                from ganforge.evaluation import evaluate_run

                evaluate_run(run_dir, num=config.final_eval_num, seed=config.seed)
            facts = {
                "steps": summary.steps,
                "epochs_completed": summary.epochs_completed,
                "wall_time_s": round(wall, 2),
                "images_per_s": round(summary.images_per_s, 1),
                "device": str(self.device),
                "processes": processes,
                "precision": config.precision,
                "compile": config.compile,
                "peak_memory_mb": round(peak_memory_mb(self.device), 1),
                "best_fid_during_training": self.best_fid,
                "last": summary.last_stats,
            }
            if self.gan.skip_nonfinite:
                facts["skipped_updates"] = self.monitor.skipped_total
            atomic_write_text(run_dir / "summary.json", json.dumps(facts, indent=2) + "\n")
            from ganforge.report import build_report

            build_report(run_dir)
        except OSError as exc:
            raise GanforgeError(
                f"cannot write to the run folder {run_dir}: {exc.strerror or exc}; the last "
                f"checkpoint, {self.last_saved}, is intact: make room, then finish with "
                f"--resume {run_dir}"
            ) from None
        return summary
