"""Watching a training run for the ways GANs go wrong, as it trains.

:class:`TrainingMonitor` sees the logged numbers of every step (and the evaluations, when
they run) and

* raises :class:`Diverged` when a loss or a weight is NaN or infinite, naming the step and
  the network (the training loop then keeps the last good checkpoint and stops), or, under
  ``--on-nan skip-step``, when :data:`SKIPPED_STREAK_LIMIT` steps in a row each dropped an
  update (skipping is then only postponing the end);
* returns warnings, once per episode, for three classic failure modes:

  - **D winning outright**: D(G(z)) below :data:`D_WINS_BELOW` for
    :data:`D_WINS_PATIENCE` steps in a row, so G's gradient has nothing left to follow;
  - **exploding gradients**: a network's gradient norm more than :data:`EXPLODING_FACTOR`
    times the median of its recent measurements (norms are measured every
    :data:`GRAD_NORM_EVERY` steps, which costs about 0.1% of a step);
  - **mode collapse**: the evaluator's class coverage of the samples falls under half of the
    classes after it had reached half (early samples cover few classes without collapsing).

Its state is plain data (:meth:`state_dict`), saved in checkpoints, so a resumed run warns as
the uninterrupted one would.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch
from torch import nn

from ganforge.errors import GanforgeError

SKIPPED_STREAK_LIMIT = 50
D_WINS_BELOW = 0.01
D_WINS_PATIENCE = 200
GRAD_NORM_EVERY = 10
GRAD_NORM_HISTORY = 20
EXPLODING_FACTOR = 100.0
NETWORKS = {"d": "discriminator", "g": "generator"}


class Diverged(GanforgeError):
    """A loss or weight became NaN or infinite."""


def gradient_norm(model: nn.Module) -> float | None:
    """The L2 norm of all of ``model``'s gradients (``None`` when it holds none)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return None
    return float(torch.nn.utils.get_total_norm(grads))


def non_finite_tensors(model: nn.Module) -> list[str]:
    """Names of ``model``'s parameters and buffers that hold a NaN or an infinity."""
    named = [*model.named_parameters(), *model.named_buffers()]
    return [
        name
        for name, tensor in named
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]


class TrainingMonitor:
    """Checks and warnings over a run's steps; see the module docstring."""

    def __init__(self, d_wins_below: float | None = D_WINS_BELOW) -> None:
        self.d_wins_below = d_wins_below  # None: the objective's scores are unbounded
        self.d_wins_streak = 0
        self.skipped_streak = 0
        self.skipped_total = 0
        self.warned: set[str] = set()  # the failure modes warned about and not yet over
        self.grad_norms: dict[str, list[float]] = {"d": [], "g": []}
        self.most_classes_covered = 0

    def check_step(
        self, step: int, stats: dict[str, float], generator: nn.Module, discriminator: nn.Module
    ) -> None:
        """Raise :class:`Diverged` if a logged number or a weight is NaN or infinite, or, when
        the step skips non-finite updates (``stats`` has ``skipped_updates``), if it has
        skipped one in each of the last :data:`SKIPPED_STREAK_LIMIT` steps."""
        if "skipped_updates" in stats:
            skipped = int(stats["skipped_updates"])
            self.skipped_total += skipped
            self.skipped_streak = self.skipped_streak + 1 if skipped else 0
            if self.skipped_streak >= SKIPPED_STREAK_LIMIT:
                raise Diverged(
                    f"step {step}: each of the last {SKIPPED_STREAK_LIMIT} steps had a "
                    "NaN or Inf gradient, so skipping them cannot help"
                )
            if skipped:
                return
            # An update that went through with a NaN loss is a divergence all the same.
        bad_stats = [f"{key} {value}" for key, value in stats.items() if not math.isfinite(value)]
        if not bad_stats:
            return
        problems = []
        for key, model in (("d", discriminator), ("g", generator)):
            names = non_finite_tensors(model)
            if names:
                shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
                problems.append(f"the {NETWORKS[key]}'s weights hold NaN or Inf ({shown})")
        losses = [
            f"{NETWORKS[k]} loss" for k in "dg" if not math.isfinite(stats.get(f"{k}_loss", 0.0))
        ]
        if losses:
            problems.insert(0, f"the {' and '.join(losses)} became NaN or Inf")
        if not problems:
            problems.append(f"non-finite values ({', '.join(bad_stats)})")
        raise Diverged(f"step {step}: {'; '.join(problems)}")

    def observe_step(
        self, step: int, stats: dict[str, float], grad_norms: dict[str, float | None]
    ) -> list[str]:
        """Warnings that this step starts (each failure mode warns once until it ends)."""
        warnings = []
        losing = self.d_wins_below is not None and stats["d_fake"] < self.d_wins_below
        self.d_wins_streak = self.d_wins_streak + 1 if losing else 0
        if self._episode("d_wins", self.d_wins_streak >= D_WINS_PATIENCE):
            warnings.append(
                f"step {step}: the discriminator is winning outright: D(G(z)) has stayed below "
                f"{self.d_wins_below} for {D_WINS_PATIENCE} steps, so the generator gets almost "
                "no gradient (try a lower learning rate, or the lsgan preset)"
            )
        for key, norm in grad_norms.items():
            if norm is None:
                continue
            history = self.grad_norms[key]
            median = statistics.median(history) if len(history) >= GRAD_NORM_HISTORY else None
            exploding = not math.isfinite(norm) or (
                median is not None and norm > EXPLODING_FACTOR * median
            )
            if self._episode(f"{key}_exploding", exploding):
                warnings.append(
                    f"step {step}: the {NETWORKS[key]}'s gradient norm is exploding: {norm:.3g}, "
                    f"against a recent median of {median:.3g}"
                    if median is not None and math.isfinite(norm)
                    else f"step {step}: the {NETWORKS[key]}'s gradient norm is {norm}"
                )
            if math.isfinite(norm):
                history.append(norm)
                del history[:-GRAD_NORM_HISTORY]
        return warnings

    def observe_evaluation(self, step: int, classes_covered: int, classes: int) -> list[str]:
        """A warning when the samples' class coverage falls under half of the evaluator's
        classes, having been at least half before."""
        self.most_classes_covered = max(self.most_classes_covered, classes_covered)
        fallen = classes_covered < classes / 2 <= self.most_classes_covered
        if self._episode("mode_collapse", fallen):
            return [
                f"step {step}: mode collapse: the samples cover only {classes_covered} of "
                f"{classes} classes, down from {self.most_classes_covered} (a class counts "
                "with at least 2% of the samples)"
            ]
        return []

    def _episode(self, name: str, happening: bool) -> bool:
        """True when ``name`` starts happening; it can warn again once it has stopped."""
        if not happening:
            self.warned.discard(name)
            return False
        if name in self.warned:
            return False
        self.warned.add(name)
        return True

    def state_dict(self) -> dict[str, Any]:
        return {
            "d_wins_streak": self.d_wins_streak,
            "skipped_streak": self.skipped_streak,
            "skipped_total": self.skipped_total,
            "warned": sorted(self.warned),
            "grad_norms": {key: list(values) for key, values in self.grad_norms.items()},
            "most_classes_covered": self.most_classes_covered,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.d_wins_streak = int(state["d_wins_streak"])
        self.skipped_streak = int(state["skipped_streak"])
        self.skipped_total = int(state["skipped_total"])
        self.warned = set(state["warned"])
        self.grad_norms = {key: list(values) for key, values in state["grad_norms"].items()}
        self.most_classes_covered = int(state["most_classes_covered"])
