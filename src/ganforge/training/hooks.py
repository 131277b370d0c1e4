"""The side work around the training loop, as hooks with one job each.

After every iteration the loop (:func:`ganforge.training.loop.run_loop`) runs each hook that
is due (:meth:`Hook.due`), in order: on rank 0 the gradient norms, the step log, the loggers,
the NaN check, the progress bar and warnings, the grids, the evaluation and the checkpointer;
on the other ranks only the NaN check. Then the ranks agree on whether to go on; a run stopped
early (a signal, a failure on another rank) calls :meth:`Hook.at_stop`, and a run that trained
its last step :meth:`Hook.at_end` (the checkpointer's final checkpoint, the final grid, and
the end of the run: evaluation, summary, report). What a hook records (an evaluation, a
warning, where a run stopped) or draws goes through :class:`Hooks` to every hook, so a logger
hears everything without the loop or the other hooks knowing it exists.

A new logger is one :class:`Hook` subclass, one line in :data:`LOGGERS` and the setting that
turns it on.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ganforge.checkpoint_file import save_best_checkpoint, save_run_checkpoint
from ganforge.config import TrainConfig
from ganforge.console import Console
from ganforge.data import to_uint8
from ganforge.errors import GanforgeError, first_line
from ganforge.eval import ReferenceSet, quick_scores
from ganforge.image_files import image_grid, save_grid
from ganforge.nets import sample_noise
from ganforge.sampling import balanced_labels, generate, generate_from, in_eval_mode
from ganforge.steplog import StepLog
from ganforge.training.checkpoints import RunState, make_checkpoint
from ganforge.training.monitoring import GRAD_NORM_EVERY, gradient_norm
from ganforge.training.schedule import Iteration, RunPlan, every
from ganforge.training.state import TrainedModels

#: The logged numbers the progress bar shows, and their short names: a GAN's, then a VAE's.
SHOWN_STATS = (("d_loss", "D"), ("g_loss", "G"), ("loss", "-ELBO"), ("kl", "KL"))


class Hook:
    """Side work around training iterations; every method may be left as it is."""

    def due(self, it: Iteration) -> bool:
        """Whether :meth:`after_step` runs after ``it`` (every iteration, unless overridden)."""
        return True

    def after_step(self, it: Iteration) -> None:
        """The hook's work after the iteration ``it``."""

    def on_record(
        self, step: int, kind: str, record: dict[str, Any], scalars: dict[str, float]
    ) -> None:
        """Another hook recorded ``record`` at ``step``: ``kind`` is ``eval``, ``warning``,
        ``stopped`` or ``final`` (the final evaluation's scores); ``scalars``: its numbers worth
        plotting (a logger's business)."""

    def on_images(self, step: int, name: str, images: torch.Tensor) -> None:
        """Another hook drew ``images`` ``(n, C, H, W)`` in ``[-1, 1]`` at ``step``."""

    def at_stop(self, it: Iteration) -> None:
        """The run stops early after ``it`` (a signal, or a failure on another process)."""

    def at_end(self, last: Iteration | None) -> None:
        """The run has trained its last step (``last``; ``None`` when this session trained
        none), in the order of the hooks."""

    def close(self) -> None:
        """The session is over (finished, stopped or failed): release files and connections."""

    @classmethod
    def check_available(cls) -> None:
        """Before any work: one :class:`GanforgeError` line if the hook cannot run here (a
        logger's package is missing, say)."""


class Hooks:
    """A run's hooks, in the order they run; what one records or draws, every one hears."""

    def __init__(self, console: Console, hooks: Iterable[Hook] = ()) -> None:
        self.console = console
        self.hooks: list[Hook] = list(hooks)
        self.steps_seen = 0  # this session's iterations
        self._closed = False

    def add(self, hook: Hook) -> Hook:
        self.hooks.append(hook)
        return hook

    def after_step(self, it: Iteration) -> None:
        self.steps_seen += 1
        for hook in self.hooks:
            if hook.due(it):
                hook.after_step(it)

    def record(
        self,
        step: int,
        kind: str,
        record: dict[str, Any],
        scalars: dict[str, float] | None = None,
    ) -> None:
        for hook in self.hooks:
            hook.on_record(step, kind, record, scalars or {})

    def images(self, step: int, name: str, images: torch.Tensor) -> None:
        for hook in self.hooks:
            hook.on_images(step, name, images)

    def warn(self, step: int, messages: list[str]) -> None:
        """Log each warning and show it above the progress bar."""
        for message in messages:
            self.record(step, "warning", {"warning": message})
            self.console.warning(message)

    def at_stop(self, it: Iteration) -> None:
        for hook in self.hooks:
            hook.at_stop(it)

    def at_end(self, last: Iteration | None) -> None:
        for hook in self.hooks:
            hook.at_end(last)

    def close(self) -> None:
        """Close every hook once (a second call, on the way out of a failure, does nothing)."""
        if self._closed:
            return
        self._closed = True
        for hook in self.hooks:
            with contextlib.suppress(Exception):  # one hook's failure must not keep others open
                hook.close()


# -- loggers -----------------------------------------------------------------------------------


class StepLogHook(Hook):
    """``metrics.jsonl``: one object per iteration (step, epoch, logged numbers, gradient norms
    when measured, wall time) and every record at its step."""

    def __init__(self, run_dir: Path, run_state: RunState) -> None:
        self.log, self.run_state = StepLog(run_dir / "metrics.jsonl"), run_state

    def after_step(self, it: Iteration) -> None:
        norms = {f"{k}_grad_norm": v for k, v in it.grad_norms.items() if v is not None}
        record = {"step": it.step, "epoch": it.epoch, **it.stats, **norms}
        self.log.write({**record, "time": self.run_state.elapsed_s()})

    def on_record(self, step, kind, record, scalars) -> None:
        if kind != "final":  # the final evaluation has its own file, eval.json
            self.log.write({"step": step, **record})

    def close(self) -> None:
        self.log.close()


class TensorBoardHook(Hook):
    """``--tensorboard``: the logged numbers, scores and grids under ``RUN/tensorboard``."""

    def __init__(self, config: TrainConfig, run_dir: Path, start_step: int) -> None:
        """Every logger of :data:`LOGGERS` is built from the run's config, folder and first
        step (TensorBoard needs only the last two)."""
        writer_class = summary_writer_class()
        purge = {"purge_step": start_step + 1} if start_step else {}  # drop the later steps
        self.board = writer_class(log_dir=str(run_dir / "tensorboard"), **purge)

    def after_step(self, it: Iteration) -> None:
        for key, value in it.stats.items():
            self.board.add_scalar(f"train/{key}", value, it.step)

    def on_record(self, step, kind, record, scalars) -> None:
        for key, value in scalars.items():
            self.board.add_scalar(f"{kind}/{key}", value, step)

    def on_images(self, step, name, images) -> None:
        self.board.add_images(name, (images.cpu() + 1) / 2, step)

    def close(self) -> None:
        self.board.close()

    @classmethod
    def check_available(cls) -> None:
        summary_writer_class()


def summary_writer_class():
    """TensorBoard's ``SummaryWriter``, or one clear error when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise GanforgeError(
            "--tensorboard needs the tensorboard package: pip install tensorboard"
        ) from None
    return SummaryWriter


class WandbHook(Hook):
    """``--wandb``: the logged numbers, scores and grids as a Weights & Biases run, resumed
    with the run folder (its id is kept in ``RUN/wandb-id``). ``WANDB_MODE=offline`` writes it
    under ``RUN/wandb`` without a network, for ``wandb sync`` later. A resume after a kill
    logs again the steps after its checkpoint, which W&B, whose steps only increase, drops
    (TensorBoard's writer purges them instead)."""

    def __init__(self, config: TrainConfig, run_dir: Path, start_step: int) -> None:
        wandb = wandb_module()
        id_file = run_dir / "wandb-id"
        run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)
        id_file.write_text(run_id + "\n")
        self.wandb = wandb
        try:
            self.run = wandb.init(
                project=os.environ.get("WANDB_PROJECT", "ganforge"),
                name=run_dir.name,
                id=run_id,
                resume="allow",
                dir=str(run_dir),
                config=config.to_dict(),
            )
        except Exception as exc:  # wandb's own errors: no login, a bad WANDB_MODE, no network
            raise GanforgeError(
                f"--wandb: Weights & Biases did not start: {first_line(exc)} (log in with "
                "'wandb login', or set WANDB_MODE=offline to write RUN/wandb for wandb sync)"
            ) from None

    def after_step(self, it: Iteration) -> None:
        self.run.log({f"train/{key}": value for key, value in it.stats.items()}, step=it.step)

    def on_record(self, step, kind, record, scalars) -> None:
        if scalars:
            self.run.log({f"{kind}/{key}": value for key, value in scalars.items()}, step=step)

    def on_images(self, step, name, images) -> None:
        grid = image_grid(images.cpu(), nrow=math.isqrt(len(images) - 1) + 1)  # in [0, 1]
        pixels = (grid * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        self.run.log({name: self.wandb.Image(pixels)}, step=step)

    def close(self) -> None:
        self.run.finish()

    @classmethod
    def check_available(cls) -> None:
        wandb_module()


def wandb_module():
    """The ``wandb`` package, or one clear error when it is missing."""
    try:
        import wandb
    except ImportError:
        raise GanforgeError(
            "--wandb needs the wandb package: pip install 'ganforge[wandb]'"
        ) from None
    return wandb


#: The optional loggers: the config setting that turns each on, and its hook.
LOGGERS: dict[str, type[Hook]] = {"tensorboard": TensorBoardHook, "wandb": WandbHook}


# -- watching ----------------------------------------------------------------------------------


class GradientNormHook(Hook):
    """Every :data:`~ganforge.training.monitoring.GRAD_NORM_EVERY` iterations, each network's
    gradient norm into :attr:`Iteration.grad_norms`, for the step log and the monitor."""

    def __init__(self, models: TrainedModels) -> None:
        self.models = models

    def due(self, it: Iteration) -> bool:
        return every(it.step, GRAD_NORM_EVERY)

    def after_step(self, it: Iteration) -> None:
        models = self.models
        it.grad_norms = {"d": gradient_norm(models.partner), "g": gradient_norm(models.generator)}


class NaNCheckHook(Hook):
    """Stop with :class:`~ganforge.training.monitoring.Diverged` at a NaN or infinite loss or
    weight. Every process runs it (every one sees the same averaged losses, so all stop at the
    same step)."""

    def __init__(self, models: TrainedModels, run_state: RunState) -> None:
        self.models, self.monitor = models, run_state.monitor

    def after_step(self, it: Iteration) -> None:
        self.monitor.check_step(it.step, it.stats, self.models.generator, self.models.partner)


class ProgressHook(Hook):
    """The monitor's warnings that a step starts, and the progress bar with its status."""

    def __init__(self, hooks: Hooks, run_state: RunState, plan: RunPlan, batch_size: int) -> None:
        self.hooks, self.run_state, self.plan, self.batch_size = hooks, run_state, plan, batch_size

    def after_step(self, it: Iteration) -> None:
        run_state = self.run_state
        run_state.last_stats = it.stats
        self.hooks.warn(it.step, run_state.monitor.observe_step(it.step, it.stats, it.grad_norms))
        shown = it.step % 10 == 0 or it.step == self.plan.total
        self.hooks.console.advance(1, self._status(it) if shown else None)

    def _status(self, it: Iteration) -> dict[str, str]:
        run_state = self.run_state
        training = run_state.elapsed_s() - run_state.elapsed_before - run_state.side_work
        speed = (it.step - self.plan.start_step) * self.batch_size / max(training, 1e-9)
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


# -- grids, evaluations, checkpoints -----------------------------------------------------------


class GridHook(Hook):
    """Every ``sample_every`` iterations, ``samples/step_NNNNNNN.png``, and at the end
    ``samples/final.png``: the sampler's images of a fixed noise batch (seed + 2), so that the
    grids show one set of images as it trains."""

    def __init__(
        self, config: TrainConfig, run_dir: Path, models: TrainedModels, hooks: Hooks, plan: RunPlan
    ) -> None:
        self.every, self.folder, self.start_step = config.sample_every, run_dir, plan.start_step
        self.models, self.hooks = models, hooks
        noise = torch.Generator().manual_seed(config.seed + 2)
        self.fixed_noise = sample_noise(
            config.grid_size, config.noise_dim, distribution=config.noise, generator=noise
        ).to(models.device)

    def due(self, it: Iteration) -> bool:
        return every(it.step, self.every)

    def after_step(self, it: Iteration) -> None:
        self.draw(f"step_{it.step:07d}.png", it.step)

    def at_end(self, last: Iteration | None) -> None:
        self.draw("final.png", last.step if last is not None else self.start_step)

    def draw(self, name: str, step: int) -> None:
        sampler = self.models.sampler
        with in_eval_mode(sampler), torch.inference_mode():
            images = generate_from(sampler, self.fixed_noise, device=self.models.device)
        save_grid(images, self.folder / "samples" / name)
        self.hooks.images(step, "samples", images)


class Checkpointer(Hook):
    """The run's checkpoints: the newest ``keep_checkpoints`` at epoch ends (of every k-th epoch
    when epochs are short, :meth:`RunPlan.epoch_checkpoint_due`) and every
    ``checkpoint_every`` iterations; on an early stop; after the last step; and ``best.pt`` at
    each new best FID (:meth:`save_best`). ``last_saved``: the newest checkpoint's path (the
    one that a failure message names)."""

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path,
        models: TrainedModels,
        run_state: RunState,
        plan: RunPlan,
        resumed_from: str | None,
    ) -> None:
        self.config, self.run_dir, self.models, self.run_state = config, run_dir, models, run_state
        self.plan = plan
        self.last_saved = resumed_from
        self.saved_step = plan.start_step if resumed_from else None

    def due(self, it: Iteration) -> bool:
        return every(it.step, self.config.checkpoint_every) or (
            it.end_of_epoch and self.plan.epoch_checkpoint_due(it.epoch)
        )

    def after_step(self, it: Iteration) -> None:
        self.save(it.step, it.resume_data_state)

    def at_stop(self, it: Iteration) -> None:
        if self.saved_step != it.step:
            self.save(it.step, it.resume_data_state)

    def at_end(self, last: Iteration | None) -> None:
        if last is not None:
            self.at_stop(last)

    def _checkpoint(self, step: int, data_state: torch.Tensor | None) -> dict[str, Any]:
        return make_checkpoint(
            self.config, step, self.plan.per_epoch, self.models, self.run_state, data_state
        )

    def save(self, step: int, data_state: torch.Tensor | None) -> None:
        """The checkpoint after ``step``; ``data_state``: the data order's stream to go on
        with (:attr:`Iteration.resume_data_state`)."""
        checkpoint = self._checkpoint(step, data_state)
        keep = self.config.keep_checkpoints
        self.last_saved = save_run_checkpoint(self.run_dir, checkpoint, keep)
        self.saved_step = step

    def save_best(self, it: Iteration, fid: float) -> None:
        checkpoint = self._checkpoint(it.step, it.resume_data_state)
        save_best_checkpoint(self.run_dir, {**checkpoint, "fid": fid})


class EvaluationHook(Hook):
    """Every ``eval_every`` iterations: FID and class coverage of ``eval_num`` samples against
    the reference set, recorded and watched for mode collapse; a new best FID is saved as
    ``checkpoints/best.pt``."""

    def __init__(
        self,
        config: TrainConfig,
        models: TrainedModels,
        reference: ReferenceSet,
        run_state: RunState,
        checkpointer: Checkpointer,
        hooks: Hooks,
    ) -> None:
        self.config, self.models, self.reference = config, models, reference
        self.run_state, self.checkpointer, self.hooks = run_state, checkpointer, hooks

    def due(self, it: Iteration) -> bool:
        return every(it.step, self.config.eval_every)

    def after_step(self, it: Iteration) -> None:
        config, sampler, run_state = self.config, self.models.sampler, self.run_state
        with in_eval_mode(sampler):
            fake = generate(
                sampler,
                config.eval_num,
                config.noise_dim,
                seed=config.seed + 3,
                noise=config.noise,
                device=self.models.device,
            )
        classes = self.models.num_classes
        labels = balanced_labels(config.eval_num, classes) if classes else None
        scores = quick_scores(self.reference, to_uint8(fake), labels)
        run_state.last_fid = scores["fid"]
        trained = round(run_state.training_s(), 3)  # the steps' time so far, not this one's
        record = {**scores, "train_time_s": trained, "evaluator": self.reference.evaluator.name}
        self.hooks.record(it.step, "eval", record, scores)
        evaluator_classes = len(self.reference.evaluator.classes)
        covered = scores["classes_covered"]
        self.hooks.warn(
            it.step, run_state.monitor.observe_evaluation(it.step, covered, evaluator_classes)
        )
        if run_state.best_fid is None or scores["fid"] < run_state.best_fid:
            run_state.best_fid = scores["fid"]
            self.checkpointer.save_best(it, run_state.best_fid)


def build_hooks(
    config: TrainConfig,
    run_dir: Path,
    models: TrainedModels,
    run_state: RunState,
    console: Console,
    plan: RunPlan,
    checkpointer: Checkpointer,
    reference: ReferenceSet | None,
) -> Hooks:
    """Rank 0's hooks, in the order they run. The gradient norms come first, for the step log
    and the monitor; the step log before the NaN check, so that it shows a NaN; the checkpointer
    after the grids and the evaluation, so that its checkpoint holds their effects (the best
    FID, the monitor's state)."""
    hooks = Hooks(console)
    try:
        hooks.add(GradientNormHook(models))
        hooks.add(StepLogHook(run_dir, run_state))
        for setting, logger in LOGGERS.items():
            if getattr(config, setting):
                hooks.add(logger(config, run_dir, plan.start_step))
        hooks.add(NaNCheckHook(models, run_state))
        hooks.add(ProgressHook(hooks, run_state, plan, config.batch_size))
        hooks.add(GridHook(config, run_dir, models, hooks, plan))
        if reference is not None:
            hooks.add(EvaluationHook(config, models, reference, run_state, checkpointer, hooks))
        hooks.add(checkpointer)
    except BaseException:
        hooks.close()  # what was opened before the failure
        raise
    return hooks


def check_loggers(config: TrainConfig) -> None:
    """Before any work: each logger the config turns on can run here, or one line says why."""
    for setting, logger in LOGGERS.items():
        if getattr(config, setting):
            logger.check_available()
