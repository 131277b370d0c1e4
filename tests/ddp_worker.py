"""Trains a few steps on one process or, under torchrun, on each of N; the DDP tests drive it.

``python ddp_worker.py OUT ARCHITECTURE STEPS`` writes, on rank 0, ``OUT`` as a torch file with
the per-step stats, the largest weight difference between ranks after every step, and the final
flat weights of both networks.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist

from ganforge.config import build_config
from ganforge.training import build_step, build_trained_models, iterate_training
from ganforge.training.distributed import (
    init_process_group,
    leave_worker_process,
    shard_from_environment,
)

BATCH = 16
SEED = 3


def flat_weights(gan) -> torch.Tensor:
    modules = (gan.generator, gan.discriminator)
    return torch.cat([p.detach().flatten() for m in modules for p in m.parameters()])


def run(architecture: str, steps: int) -> dict:
    """Train ``steps`` iterations of global batch 16 on fixed random images."""
    shard = shard_from_environment()
    device = torch.device("cpu")
    init_process_group(shard, device)
    # fp32: the gradients' all-reduce is checked to float rounding, which bf16 would swamp.
    overrides = {"architecture": architecture, "batch_size": BATCH, "seed": SEED}
    config = build_config("gan", overrides={**overrides, "precision": "fp32"})
    images = torch.randint(
        0,
        256,
        (BATCH * 4, 1, 28, 28),
        generator=torch.Generator().manual_seed(0),
        dtype=torch.uint8,
    )
    torch.manual_seed(SEED + shard.rank)
    gan = build_trained_models(config, device)
    step = build_step(gan, torch.Generator().manual_seed(SEED + 1), shard)
    stats, rank_gaps = [], []
    for it in iterate_training(
        step,
        images,
        batch_size=BATCH,
        epochs=10,
        max_steps=steps,
        data_generator=torch.Generator().manual_seed(SEED),
    ):
        stats.append(it.stats)
        weights = flat_weights(gan)
        if shard.is_distributed:
            gathered = [torch.empty_like(weights) for _ in range(shard.world_size)]
            dist.all_gather(gathered, weights)
            rank_gaps.append(max((g - weights).abs().max().item() for g in gathered))
    return {"stats": stats, "rank_gaps": rank_gaps, "weights": flat_weights(gan)}


if __name__ == "__main__":
    out, architecture, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    result = run(architecture, steps)
    if shard_from_environment().is_main:
        torch.save(result, out)
    if dist.is_initialized():
        dist.destroy_process_group()
    leave_worker_process(0)
