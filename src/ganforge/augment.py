"""Differentiable augmentation of what a discriminator sees, for training on little data.

* DiffAugment (Zhao et al. 2020): every image D scores, real or generated, in the D step and
  in the G step, is augmented by the same random transforms, each of them differentiable, so
  that G's gradient flows through them. The policy ``color,translation,cutout`` is the paper's
  default for small data sets.
* ADA (Karras et al. 2020): the same transforms, each applied to an image with a probability
  ``p`` that :class:`AdaptiveProbability` moves toward the point where D's outputs on real
  images stop telling it apart (the overfitting heuristic ``r_t = E[sign(D(x_real))]``).

The transforms follow the paper's reference code: brightness (add ``U(-0.5, 0.5)``),
saturation (scale the distance from the pixel's grey value by ``U(0, 2)``; nothing for one
channel), contrast (scale the distance from the image's mean by ``U(0.5, 1.5)``), translation
(shift by up to 1/8 of the size), cutout (a square of half the size). Images are
``(N, C, H, W)`` floats in ``[-1, 1]``; the transforms may leave that range, and translation
and cutout fill with 0 (mid-grey), as the paper's code does in the same range.

The random draws come from a :class:`torch.Generator` passed in (training's noise generator,
which checkpoints keep), in one call per batch for the global batch, so that a resumed run
and a run on N processes augment exactly as one uninterrupted process does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: The transforms of a policy, in the order the paper applies them.
TRANSFORMS = ("color", "translation", "cutout")
#: The paper's default policy for small data sets.
DEFAULT_POLICY = "color,translation,cutout"
#: Augmentation modes: ``none``, DiffAugment (always) and ADA (with probability p).
AUGMENTS = ("none", "diffaugment", "ada")
TRANSLATION_RATIO = 1 / 8
CUTOUT_RATIO = 1 / 2


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"color,translation"`` → ``("color", "translation")``; ``ValueError`` naming an unknown
    transform, or an empty policy."""
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [name for name in names if name not in TRANSFORMS]
    if unknown or not names:
        raise ValueError(
            f"augment policy {policy!r}: use a comma-separated list of {', '.join(TRANSFORMS)}"
        )
    return names


Draw = Callable[[Callable[[int, torch.Generator | None], torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class Augmentation:
    """A policy and the probability each of its transforms is applied to an image with
    (1: DiffAugment; ADA's current ``p`` otherwise)."""

    policy: tuple[str, ...]
    probability: float = 1.0

    def __call__(self, images: torch.Tensor, draw: Draw) -> torch.Tensor:
        """Augment ``images`` ``(n, C, H, W)``. ``draw(make)`` returns the random numbers
        ``make(global_n, generator)`` for this process's images (the slice of a global draw
        under torchrun); every tensor is drawn whatever the probability, so that the number of
        draws never depends on ``p``."""
        n, channels, height, width = images.shape
        device, dtype = images.device, images.dtype

        def uniform(*shape: int) -> torch.Tensor:
            return draw(
                lambda g_n, g: torch.rand(g_n, *shape, generator=g, device=device, dtype=dtype)
            )

        def applied() -> torch.Tensor:
            """Which images (``(n, 1, 1, 1)`` of 0/1) this transform touches."""
            return (uniform(1, 1, 1) < self.probability).to(dtype)

        for name in self.policy:
            if name == "color":
                keep = applied()
                brightness = (uniform(1, 1, 1) - 0.5) * keep
                images = images + brightness
                if channels > 1:
                    keep = applied()
                    grey = images.mean(dim=1, keepdim=True)
                    factor = 1 + (uniform(1, 1, 1) * 2 - 1) * keep
                    images = grey + (images - grey) * factor
                keep = applied()
                mean = images.mean(dim=(1, 2, 3), keepdim=True)
                factor = 1 + (uniform(1, 1, 1) - 0.5) * keep
                images = mean + (images - mean) * factor
            elif name == "translation":
                keep = applied().reshape(n)
                reach_y, reach_x = (
                    _reach(height, TRANSLATION_RATIO),
                    _reach(width, TRANSLATION_RATIO),
                )
                shift_y = ((uniform(1).reshape(n) * (2 * reach_y + 1)).floor() - reach_y) * keep
                shift_x = ((uniform(1).reshape(n) * (2 * reach_x + 1)).floor() - reach_x) * keep
                images = translate(images, shift_y.long(), shift_x.long(), max(reach_y, reach_x))
            else:  # cutout
                keep = applied()
                size_y, size_x = _reach(height, CUTOUT_RATIO), _reach(width, CUTOUT_RATIO)
                centre_y = (uniform(1).reshape(n) * (height + 1 - size_y % 2)).long()
                centre_x = (uniform(1).reshape(n) * (width + 1 - size_x % 2)).long()
                mask = cutout_mask(height, width, (size_y, size_x), centre_y, centre_x, dtype)
                images = images * (1 - keep + keep * mask)
        return images


def _reach(size: int, ratio: float) -> int:
    """``size · ratio`` rounded half up, as the paper's code rounds."""
    return int(size * ratio + 0.5)


def translate(
    images: torch.Tensor, shift_y: torch.Tensor, shift_x: torch.Tensor, reach: int
) -> torch.Tensor:
    """Shift each image by its own whole-pixel offsets ``(n,)``, each within ``[-reach,
    reach]`` (positive: down and right), zeros coming in at the edges; a gather, so gradients
    flow to the pixels that stay."""
    n, _, height, width = images.shape
    padded = F.pad(images, (reach, reach, reach, reach))
    rows = torch.arange(height, device=images.device)[None, :] - shift_y[:, None] + reach
    cols = torch.arange(width, device=images.device)[None, :] - shift_x[:, None] + reach
    batch = torch.arange(n, device=images.device)[:, None, None]
    # (n, H, W, C) → back to (n, C, H, W)
    gathered = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return gathered.permute(0, 3, 1, 2)


def cutout_mask(
    height: int,
    width: int,
    size: tuple[int, int],
    centre_y: torch.Tensor,
    centre_x: torch.Tensor,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``(n, 1, H, W)``: 0 inside a rectangle of ``size`` ``(h, w)`` whose rows are
    ``[centre_y − h//2, centre_y − h//2 + h)`` (the columns alike), clipped at the edges, for
    each image's ``centre_y``, ``centre_x`` ``(n,)``; 1 elsewhere."""
    device = centre_y.device
    ys = torch.arange(height, device=device)[None, :]
    xs = torch.arange(width, device=device)[None, :]
    top, left = centre_y[:, None] - size[0] // 2, centre_x[:, None] - size[1] // 2
    inside_y = (ys >= top) & (ys < top + size[0])
    inside_x = (xs >= left) & (xs < left + size[1])
    inside = inside_y[:, :, None] & inside_x[:, None, :]
    return (~inside).to(dtype)[:, None]


@dataclass
class AdaptiveProbability:
    """ADA's ``p``: every ``interval`` iterations, ``r_t`` (the mean over those iterations of
    ``E[sign(D(x_real) − threshold)]``) is compared with ``target``, and ``p`` moves up when D
    is too sure of real images (overfitting), down otherwise, by ``images / speed_images`` in
    that direction (``images``: those seen in the interval), clipped to ``[0, 1]``.

    The paper adjusts every 4 iterations of 64 images, so that ``p`` can go from 0 to 1 in
    500k images (of runs of millions). Here runs see a few hundred thousand images, so the
    default lets ``p`` cross ``[0, 1]`` in 100k images. The state (``p`` and the signs summed
    so far) is in checkpoints, so a resumed run adjusts as the uninterrupted one.
    """

    target: float = 0.6
    interval: int = 4
    speed_images: int = 100_000
    p: float = 0.0
    sign_sum: float = 0.0
    counted: int = 0

    def observe(self, real_sign_mean: float, batch_size: int) -> None:
        """Count one iteration's ``E[sign(D(x_real))]`` (global batch ``batch_size``)."""
        self.sign_sum += real_sign_mean
        self.counted += 1
        if self.counted >= self.interval:
            r_t = self.sign_sum / self.counted
            step = self.counted * batch_size / self.speed_images
            direction = 1.0 if r_t > self.target else -1.0
            self.p = min(1.0, max(0.0, self.p + direction * step))
            self.sign_sum, self.counted = 0.0, 0

    def state_dict(self) -> dict[str, float]:
        return {"p": self.p, "sign_sum": self.sign_sum, "counted": self.counted}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.p = float(state["p"])
        self.sign_sum = float(state["sign_sum"])
        self.counted = int(state["counted"])
