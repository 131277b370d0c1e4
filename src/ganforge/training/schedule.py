"""The arithmetic of a run's length and cadences, and what one iteration yields.

A leaf of the training package (it imports nothing of it), so that the loop and the side work
around it (:mod:`ganforge.training.hooks`) both lean on it and never on each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

#: Epoch-end checkpoints are at least this many iterations apart: an epoch of a few hundred
#: images lasts a handful of iterations, and a checkpoint of the dcgan networks (with their
#: standing statistics) costs about as much as five of its iterations.
CHECKPOINT_MIN_ITERATIONS = 250


def steps_per_epoch(num_images: int, batch_size: int, n_critic: int = 1) -> int:
    """Iterations in one pass over ``num_images``: each takes ``n_critic`` full batches (the
    last incomplete ones are dropped)."""
    return num_images // (batch_size * n_critic)


def checkpointed_epochs(per_epoch: int) -> int:
    """Every how many epochs the end of an epoch is checkpointed: each epoch when it has
    :data:`CHECKPOINT_MIN_ITERATIONS` iterations or more, else every k-th, the fewest that span
    them. A fixed count, not a clock, so that a run's checkpoints are the same on every machine
    and after every resume."""
    return -(-CHECKPOINT_MIN_ITERATIONS // max(per_epoch, 1))


def every(step: int, period: int) -> bool:
    """Whether work done every ``period`` iterations (0: never) is due after ``step``."""
    return bool(period) and step % period == 0


@dataclass(frozen=True)
class RunPlan:
    """How long a run is: ``per_epoch`` iterations an epoch, ``total`` in all (``None``: no
    count ends it, only its time budget), ``start_step`` done already (a resumed run);
    ``ends_by``: what ends it, ``"epochs"``, ``"steps"`` or ``"time_budget"``."""

    per_epoch: int
    total: int | None
    start_step: int
    ends_by: str

    @classmethod
    def of(cls, per_epoch: int, epochs: int, max_steps: int | None, start_step: int = 0) -> RunPlan:
        """The plan of ``epochs`` passes (0: no epoch limit) cut at ``max_steps``."""
        by_epochs = per_epoch * epochs if epochs else None
        if max_steps and (by_epochs is None or max_steps <= by_epochs):
            return cls(per_epoch, max_steps, start_step, "steps")
        if by_epochs is None:
            return cls(per_epoch, None, start_step, "time_budget")
        return cls(per_epoch, by_epochs, start_step, "epochs")

    def epoch_checkpoint_due(self, epoch: int) -> bool:
        """Whether the end of ``epoch`` (from 0) is checkpointed (:func:`checkpointed_epochs`)."""
        return (epoch + 1) % checkpointed_epochs(self.per_epoch) == 0


@dataclass
class Iteration:
    """What :func:`~ganforge.training.loop.iterate_training` yields after each step (``step``
    counts from 1): the logged numbers and the generator's images of the step.

    ``resume_data_state`` is the data generator's state to continue after this step with: its
    state when the next step's epoch began (``None`` without shuffling). ``grad_norms``: each
    network's gradient norm (``"g"``, ``"d"``), which rank 0's
    :class:`~ganforge.training.hooks.GradientNormHook` measures every few steps (empty
    otherwise).
    """

    step: int
    epoch: int
    end_of_epoch: bool
    stats: dict[str, float]
    fake: torch.Tensor
    resume_data_state: torch.Tensor | None = None
    grad_norms: dict[str, float | None] = field(default_factory=dict)
