"""The training loop: epochs of shuffled batches, one step each, and the side work around them.

:func:`iterate_training` repeats the step (:mod:`ganforge.training.step`) over shuffled epochs and
yields after every one; :func:`run_loop` is every process's loop over those iterations: it runs
the hooks that are due (:mod:`ganforge.training.hooks`), then the ranks agree on whether to go
on.
"""

from __future__ import annotations

import itertools
import signal
from collections.abc import Iterator

import torch

from ganforge.config import TrainConfig
from ganforge.data import preprocess_images, shuffled_batches
from ganforge.errors import GanforgeError, TrainingStopped, one_line
from ganforge.training.checkpoints import RunState
from ganforge.training.distributed import Shard, agree_on_outcome, barrier
from ganforge.training.hooks import Hooks
from ganforge.training.interrupts import StopRequests, signal_name
from ganforge.training.monitoring import Diverged
from ganforge.training.run_folder import RunFolder
from ganforge.training.schedule import Iteration, steps_per_epoch
from ganforge.training.step import GanStep, VaeStep


def iterate_training(
    step_fn: GanStep | VaeStep,
    images: torch.Tensor,
    *,
    batch_size: int,
    epochs: int,
    max_steps: int | None = None,
    data_generator: torch.Generator | None = None,
    shuffle: bool = True,
    start_step: int = 0,
    labels: torch.Tensor | None = None,
) -> Iterator[Iteration]:
    """Train ``step_fn``'s models (:func:`~ganforge.training.step.build_step`) over ``epochs``
    passes of ``images`` (uint8 ``(N, C, H, W)``, on the models' device); ``epochs`` 0: as many
    as ``max_steps`` (or the caller, which stops iterating) asks for.

    Each epoch draws a fresh permutation from ``data_generator`` (or goes in order when
    ``shuffle`` is false) and drops the last incomplete batch. ``batch_size`` is the global
    batch; under torchrun each process trains on its slice of it. ``max_steps`` counts from
    the run's start. ``labels`` ``(N,)``, on the same device: the images' classes, which a
    conditional GAN trains on.

    ``start_step`` continues a run after that many steps; ``data_generator`` must then hold
    the :attr:`Iteration.resume_data_state` of that step, and the networks, optimizers and
    the step's noise generator their states after it: the steps that follow are the
    uninterrupted run's, bit for bit.
    """
    models, shard, n_critic = step_fn.models, step_fn.shard, step_fn.models.config.n_critic
    per_epoch = steps_per_epoch(images.shape[0], batch_size, n_critic)
    # Schedules run over the planned epochs: --max-steps and --time-budget end a run early
    # without changing them, so that a run stopped by either continues as the longer one would.
    planned = per_epoch * epochs
    step = start_step
    first_epoch = start_step // max(per_epoch, 1)
    for epoch in range(first_epoch, epochs) if epochs else itertools.count(first_epoch):
        if per_epoch == 0 or (max_steps is not None and step >= max_steps):
            return
        epoch_data_state = data_generator.get_state() if data_generator is not None else None
        batches = list(shuffled_batches(images.shape[0], batch_size, data_generator, shuffle))
        # This process's slice of every batch, grouped by step (n_critic batches each) and
        # moved to the device in one copy per epoch (a copy per step would make a GPU wait).
        indices = torch.stack(batches[: per_epoch * n_critic])[:, shard.local_slice(batch_size)]
        indices = indices.reshape(per_epoch, n_critic, -1).to(images.device)
        for i in range(step - epoch * per_epoch, per_epoch):
            if max_steps is not None and step >= max_steps:
                return
            reals = [preprocess_images(images[index]) for index in indices[i]]
            classes = None if labels is None else [labels[index] for index in indices[i]]
            progress = step / planned if planned else 0.0  # anneals noise and rates
            models.before_step(progress)
            stats, fake = step_fn(reals, classes, progress)
            step += 1
            models.after_step(step)
            end_of_epoch = i == per_epoch - 1
            if end_of_epoch and data_generator is not None:
                epoch_data_state = data_generator.get_state()  # the next epoch begins here
            yield Iteration(step, epoch, end_of_epoch, stats, fake, epoch_data_state)


def run_loop(
    config: TrainConfig,
    iterations: Iterator[Iteration],
    run_state: RunState,
    hooks: Hooks,
    folder: RunFolder | None,
    shard: Shard,
) -> Iteration | None:
    """Every process's loop over the training iterations; returns the last one (``None`` when
    there was none left to train).

    After each iteration the ``hooks`` that are due run (rank 0's all; the other ranks' only
    the NaN check). Then the ranks agree, in one small all-reduce under torchrun, on whether to
    go on: a SIGINT or SIGTERM on any rank stops all of them after a checkpoint, a failure on
    any rank (a full disk, an evaluation error) stops all of them with its one-line message,
    after rank 0, if it is not the one that failed, has written its checkpoint, and a spent
    ``time_budget`` (rank 0's clock) ends the loop as its last iteration would; a stop or a
    failure elsewhere has rank 0's hooks (``folder``'s) save what they must first
    (:meth:`~ganforge.training.hooks.Hook.at_stop`: the checkpointer's checkpoint).
    """
    main = folder is not None
    it = None
    with StopRequests() as stop:
        for it in iterations:
            failure = None
            try:
                with run_state.timing_side_work():
                    hooks.after_step(it)
            except Diverged:
                raise  # every rank sees the same averaged losses, and stops at the same step
            except Exception as exc:
                if not shard.is_distributed:
                    raise
                failure = exc  # the other ranks must hear of it before this one leaves

            # Rank 0's clock decides when a time budget is spent, for every rank.
            budget_spent = main and 0 < config.time_budget <= run_state.training_s()
            outcome = agree_on_outcome(
                shard, run_state.device, stop.requested, _one_line(failure, folder), budget_spent
            )
            if main and failure is None and (outcome.stopping or outcome.failures):
                with run_state.timing_side_work():
                    hooks.at_stop(it)  # the checkpointer's checkpoint of this step
            if outcome.failures:
                barrier(shard)  # the failed rank waits for rank 0's checkpoint before it leaves
            if failure is not None:
                raise failure
            if outcome.failures:
                last = folder.checkpointer.last_saved if main else None
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


def _one_line(failure: Exception | None, folder: RunFolder | None) -> str | None:
    """What the other ranks are told of this rank's ``failure``."""
    if failure is None:
        return None
    return folder.failure_message(failure) if folder is not None else one_line(failure)
