"""The training loop: epochs of shuffled batches, one step each, and the side work around them.

:func:`iterate_training` repeats the step (:mod:`ganforge.training.step`) over shuffled epochs and
yields after every one; :func:`run_loop` is every process's loop over those iterations, with the
side work that rank 0 does on a cadence (the step log, grids, evaluations, checkpoints) as a few
named calls on its :class:`~ganforge.training.run_folder.RunFolder`.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ganforge.config import TrainConfig
from ganforge.data import preprocess_images, shuffled_batches
from ganforge.errors import GanforgeError, TrainingStopped, one_line
from ganforge.training.checkpoints import RunState
from ganforge.training.distributed import Shard, agree_on_outcome, barrier
from ganforge.training.interrupts import StopRequests, signal_name
from ganforge.training.monitoring import Diverged
from ganforge.training.state import TrainedModels
from ganforge.training.step import step_function

if TYPE_CHECKING:
    from ganforge.training.run_folder import RunFolder


#: Epoch-end checkpoints are at least this many iterations apart: an epoch of a few hundred
#: images lasts a handful of iterations, and a checkpoint of the dcgan networks (with their
#: standing statistics) costs about as much as five of its iterations.
CHECKPOINT_MIN_ITERATIONS = 250


def checkpointed_epochs(per_epoch: int) -> int:
    """Every how many epochs the end of an epoch is checkpointed: each epoch when it has
    :data:`CHECKPOINT_MIN_ITERATIONS` iterations or more, else every k-th, the fewest that span
    them. A fixed count, not a clock, so that a run's checkpoints are the same on every machine
    and after every resume."""
    return -(-CHECKPOINT_MIN_ITERATIONS // max(per_epoch, 1))


def steps_per_epoch(num_images: int, batch_size: int, n_critic: int = 1) -> int:
    """Iterations in one pass over ``num_images``: each takes ``n_critic`` full batches (the
    last incomplete ones are dropped)."""
    return num_images // (batch_size * n_critic)


@dataclass
class Iteration:
    """What :func:`iterate_training` yields after each step (``step`` counts from 1).

    ``resume_data_state`` is the data generator's state to continue after this step with: its
    state when the next step's epoch began (``None`` without shuffling).
    """

    step: int
    epoch: int
    end_of_epoch: bool
    stats: dict[str, float]
    fake: torch.Tensor
    resume_data_state: torch.Tensor | None = None


def iterate_training(
    models: TrainedModels,
    images: torch.Tensor,
    *,
    batch_size: int,
    epochs: int,
    max_steps: int | None = None,
    data_generator: torch.Generator | None = None,
    noise_generator: torch.Generator | None = None,
    shuffle: bool = True,
    start_step: int = 0,
    labels: torch.Tensor | None = None,
) -> Iterator[Iteration]:
    """Train over ``epochs`` passes of ``images`` (uint8 ``(N, C, H, W)``, on the models' device).

    Each epoch draws a fresh permutation from ``data_generator`` (or goes in order when
    ``shuffle`` is false) and drops the last incomplete batch. ``batch_size`` is the global
    batch; under torchrun each process trains on its slice of it. ``max_steps`` counts from
    the run's start. ``labels`` ``(N,)``, on the same device: the images' classes, which a
    conditional GAN trains on.

    ``start_step`` continues a run after that many steps; ``data_generator`` must then hold
    the :attr:`Iteration.resume_data_state` of that step, and the networks, optimizers and
    ``noise_generator`` their states after it: the steps that follow are the uninterrupted
    run's, bit for bit.
    """
    per_epoch = steps_per_epoch(images.shape[0], batch_size, models.config.n_critic)
    # Schedules run over the epochs: --max-steps and --time-budget end a run early without
    # changing them, so that a run stopped by either continues as the longer one would have.
    planned = per_epoch * epochs
    step_fn = step_function(models)
    step = start_step
    for epoch in range(start_step // max(per_epoch, 1), epochs):
        if per_epoch == 0 or (max_steps is not None and step >= max_steps):
            return
        epoch_data_state = data_generator.get_state() if data_generator is not None else None
        batches = list(shuffled_batches(images.shape[0], batch_size, data_generator, shuffle))
        # This process's slice of every batch, grouped by step (n_critic batches each) and
        # moved to the device in one copy per epoch (a copy per step would make a GPU wait).
        indices = torch.stack(batches[: per_epoch * models.config.n_critic])[
            :, models.shard.local_slice(batch_size)
        ]
        indices = indices.reshape(per_epoch, models.config.n_critic, -1).to(images.device)
        for i in range(step - epoch * per_epoch, per_epoch):
            if max_steps is not None and step >= max_steps:
                return
            reals = [preprocess_images(images[index]) for index in indices[i]]
            classes = None if labels is None else [labels[index] for index in indices[i]]
            models.progress = step / max(planned, 1)  # anneals instance noise
            stats, fake = step_fn(models, reals, noise_generator, classes)
            step += 1
            models.after_step(step)
            end_of_epoch = i == per_epoch - 1
            if end_of_epoch and data_generator is not None:
                epoch_data_state = data_generator.get_state()  # the next epoch begins here
            yield Iteration(step, epoch, end_of_epoch, stats, fake, epoch_data_state)


def run_loop(
    config: TrainConfig,
    models: TrainedModels,
    iterations: Iterator[Iteration],
    run_state: RunState,
    folder: RunFolder | None,
    shard: Shard,
) -> Iteration | None:
    """Every process's loop over the training iterations; returns the last one (``None`` when
    there was none left to train).

    Rank 0 (``folder``) logs each iteration and does the side work it is due; every rank checks
    it for NaNs. Then the ranks agree, in one small all-reduce under torchrun, on whether to go
    on: a SIGINT or SIGTERM on any rank stops all of them after a checkpoint, a failure on
    any rank (a full disk, an evaluation error) stops all of them with its one-line message,
    after rank 0, if it is not the one that failed, has written its checkpoint, and a spent
    ``time_budget`` (rank 0's clock) ends the loop as its last iteration would.
    """
    main = folder is not None
    it = None
    with StopRequests() as stop:
        for it in iterations:
            failure = None
            try:
                with run_state.timing_side_work():
                    if main:
                        folder.log_step(it)  # before the NaN check, so that the log shows a NaN
                    run_state.monitor.check_step(
                        it.step, it.stats, models.generator, models.partner
                    )
                    if main:
                        folder.watch(it)
                    if main and _every(it.step, config.sample_every):
                        folder.sample_grid(f"step_{it.step:07d}.png", it.step)
                    if main and folder.reference and _every(it.step, config.eval_every):
                        folder.evaluate(it)
            except Diverged:
                raise  # every rank sees the same averaged losses, and stops at the same step
            except Exception as exc:
                if not shard.is_distributed:
                    raise
                failure = exc  # the other ranks must hear of it before this one leaves

            # Rank 0's clock decides when a time budget is spent, for every rank.
            budget_spent = main and 0 < config.time_budget <= run_state.training_s()
            outcome = agree_on_outcome(
                shard, models.device, stop.requested, _one_line(failure, folder), budget_spent
            )
            due = _every(it.step, config.checkpoint_every) or (
                main and it.end_of_epoch and folder.epoch_checkpoint_due(it.epoch)
            )
            if main and failure is None and (due or outcome.stopping or outcome.failures):
                with run_state.timing_side_work():
                    folder.save_checkpoint(it.step, it.resume_data_state)
            if outcome.failures:
                barrier(shard)  # the failed rank waits for rank 0's checkpoint before it leaves
            if failure is not None:
                raise failure
            if outcome.failures:
                last = folder.last_saved if main else None
                raise GanforgeError(outcome.describe(it.step, last))
            if outcome.stopping:
                signum = stop.signum or signal.SIGTERM
                message = folder.stop_message(signal_name(signum), it.step) if main else ""
                raise TrainingStopped(message, signum)
            if outcome.finishing:
                if main:
                    folder.note_time_budget(it.step)
                break  # finished like a run at its last step
    return it


def _every(step: int, period: int) -> bool:
    """Whether side work done every ``period`` iterations (0: never) is due after ``step``."""
    return bool(period) and step % period == 0


def _one_line(failure: Exception | None, folder: RunFolder | None) -> str | None:
    """What the other ranks are told of this rank's ``failure``."""
    if failure is None:
        return None
    return folder.failure_message(failure) if folder is not None else one_line(failure)
