"""Milliseconds per training iteration of the dcgan networks at several widths and batch sizes,
and with the augmentations of ``--augment``.

Not a test. One process, the real MNIST training images, ``iterate_training`` as ``ganforge
train`` runs it (no side work): 8 iterations of warm-up, then the mean of 40::

    python benchmarks/step_cost.py
"""

from __future__ import annotations

import time

import torch

from ganforge.config import build_config
from ganforge.data import load_dataset
from ganforge.training import build_trained_models, iterate_training

SETTINGS = [  # (g_width, d_width, batch_size, augment)
    (1.0, 1.0, 128, "none"),
    (0.5, 0.5, 128, "none"),
    (0.75, 0.5, 128, "none"),
    (0.5, 0.5, 64, "none"),
    (0.5, 1.0, 128, "none"),
    (1.0, 0.5, 128, "none"),
    (1.0, 1.0, 128, "diffaugment"),
    (0.5, 0.5, 128, "diffaugment"),
]
WARM_UP, MEASURED = 8, 40


def main() -> None:
    images = load_dataset("mnist", "train").images
    print("| g_width | d_width | batch | augment | ms per iteration |")
    print("|---|---|---|---|---|")
    for g_width, d_width, batch, augment in SETTINGS:
        overrides = {"g_width": g_width, "d_width": d_width, "batch_size": batch}
        config = build_config("dcgan", overrides={**overrides, "augment": augment})
        torch.manual_seed(0)
        models = build_trained_models(config, torch.device("cpu"))
        iterations = iterate_training(
            models,
            images,
            batch_size=batch,
            epochs=1,
            max_steps=WARM_UP + MEASURED,
            data_generator=torch.Generator().manual_seed(0),
            noise_generator=torch.Generator().manual_seed(1),
        )
        for _, _ in zip(range(WARM_UP), iterations, strict=False):
            pass
        start = time.perf_counter()
        count = sum(1 for _ in iterations)
        milliseconds = (time.perf_counter() - start) / count * 1000
        print(f"| {g_width} | {d_width} | {batch} | {augment} | {milliseconds:.1f} |")


if __name__ == "__main__":
    main()
