"""What DiffAugment's transforms cost on this CPU: ganforge's own against kornia's.

Not a test, and kornia is not a dependency: install it by hand to compare
(``pip install kornia``). A batch of 128 MNIST-sized images (1×28×28) goes through colour,
translation and cutout, forward and backward, 20 times per round, the two contenders
alternating for 5 rounds; the median milliseconds per batch are printed::

    python benchmarks/augment_cost.py
"""

from __future__ import annotations

import statistics
import time

import torch

from ganforge.augment import Augmentation, parse_policy

BATCH, ROUNDS, REPEATS = 128, 5, 20


def contenders() -> dict:
    images_generator = torch.Generator().manual_seed(0)
    own = Augmentation(parse_policy("color,translation,cutout"))
    found = {"ganforge": lambda x: own(x, lambda make: make(BATCH, images_generator))}
    try:
        import kornia
        import kornia.augmentation as K
    except ImportError:
        print("kornia is not installed: timing ganforge's transforms alone")
        return found
    found[f"kornia {kornia.__version__}"] = torch.nn.Sequential(
        K.ColorJitter(brightness=0.5, contrast=0.5, p=1.0),
        K.RandomAffine(degrees=0, translate=(0.125, 0.125), p=1.0, padding_mode="zeros"),
        K.RandomErasing(scale=(0.25, 0.25), ratio=(1.0, 1.0), value=0.0, p=1.0),
    )
    return found


def main() -> None:
    torch.manual_seed(0)
    images = torch.rand(BATCH, 1, 28, 28) * 2 - 1
    timed = contenders()
    times: dict[str, list[float]] = {name: [] for name in timed}

    def once(augment) -> None:
        x = images.clone().requires_grad_(True)
        augment(x).sum().backward()

    for _ in range(ROUNDS):
        for name, augment in timed.items():
            for _ in range(3):
                once(augment)
            start = time.perf_counter()
            for _ in range(REPEATS):
                once(augment)
            times[name].append((time.perf_counter() - start) / REPEATS * 1000)
    for name, values in times.items():
        print(f"{name}: {statistics.median(values):.2f} ms per batch of {BATCH}, fwd + bwd")


if __name__ == "__main__":
    main()
