"""Milliseconds per training iteration of the dcgan networks at several widths and batch sizes,
with the augmentations of ``--augment``, and in bf16 (autocast: fast only on CPUs with native
bf16, such as AVX512-BF16 or AMX; emulated and slow elsewhere).

Not a test. One process, the real MNIST training images, ``iterate_training`` as ``ganforge
train`` runs it (no side work): 8 iterations of warm-up, then the mean of 40::

    python benchmarks/step_cost.py
"""

from __future__ import annotations

import json
import time

import torch
from time_to_quality import machine

from ganforge.config import build_config
from ganforge.data import load_dataset
from ganforge.training import build_step, build_trained_models, iterate_training

SETTINGS = [  # (g_width, d_width, batch_size, augment, precision)
    (1.0, 1.0, 128, "none", "fp32"),
    (0.5, 0.5, 128, "none", "fp32"),
    (0.75, 0.5, 128, "none", "fp32"),
    (0.5, 0.5, 64, "none", "fp32"),
    (0.5, 1.0, 128, "none", "fp32"),
    (1.0, 0.5, 128, "none", "fp32"),
    (1.0, 1.0, 128, "diffaugment", "fp32"),
    (0.5, 0.5, 128, "diffaugment", "fp32"),
    (1.0, 1.0, 128, "none", "bf16"),
    (0.5, 0.5, 128, "none", "bf16"),
]
WARM_UP, MEASURED = 8, 40


def main() -> None:
    images = load_dataset("mnist", "train").images
    print(f"Machine: {json.dumps(machine())}")
    print("| g_width | d_width | batch | augment | precision | ms per iteration |")
    print("|---|---|---|---|---|---|")
    for g_width, d_width, batch, augment, precision in SETTINGS:
        overrides = {"g_width": g_width, "d_width": d_width, "batch_size": batch}
        overrides |= {"augment": augment, "precision": precision}
        config = build_config("dcgan", overrides=overrides)
        torch.manual_seed(0)
        models = build_trained_models(config, torch.device("cpu"))
        iterations = iterate_training(
            build_step(models, torch.Generator().manual_seed(1)),
            images,
            batch_size=batch,
            epochs=1,
            max_steps=WARM_UP + MEASURED,
            data_generator=torch.Generator().manual_seed(0),
        )
        for _, _ in zip(range(WARM_UP), iterations, strict=False):
            pass
        start = time.perf_counter()
        count = sum(1 for _ in iterations)
        milliseconds = (time.perf_counter() - start) / count * 1000
        print(f"| {g_width} | {d_width} | {batch} | {augment} | {precision} | {milliseconds:.1f} |")


if __name__ == "__main__":
    main()
