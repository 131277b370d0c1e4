"""Data-parallel training across processes with PyTorch's own engine (``torchrun`` + DDP).

``torchrun --nproc_per_node=N -m ganforge train ...`` starts N copies of ``ganforge train``;
each finds its rank in the environment torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``) and joins one process group: gloo on CPUs, nccl on CUDA GPUs.

How a run on N processes relates to the same run on one:

* ``batch_size`` is the global batch: every rank takes its own contiguous ``batch_size / N``
  slice of each batch of the epoch's shared permutation, so the ranks' shards are disjoint;
* every rank draws the same global noise batch from the run's seed and keeps its own slice, and
  DDP averages the gradients of the per-rank mean losses, which is the gradient of the global
  mean: the N-process run is the one-process run computed in parallel (up to float rounding,
  and up to BatchNorm statistics unless ``sync_bn`` makes them global);
* each rank seeds torch's global generator with ``seed + rank`` for anything else random;
  DDP broadcasts rank 0's initial weights and buffers, so all ranks start alike;
* only rank 0 writes logs, grids, checkpoints and evaluations; its checkpoints hold the plain
  modules' state dicts, the same files a single process writes (BatchNorm's running statistics
  are rank 0's, from its slices, unless ``sync_bn``); rank 0 scores its evaluations alone, with
  no collective (:data:`ganforge.eval.metrics.LOCAL_METRIC`), while the others wait in the next
  step's, and they leave when training ends, without waiting for its final evaluation;
* local rank 0 of each node prepares the dataset (fetching it if needed) while the others wait.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import torch
import torch.distributed as dist
from torch import nn

from ganforge.errors import GanforgeError


@dataclass(frozen=True)
class Shard:
    """This process's place among ``world_size`` data-parallel processes (one process: 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def local_slice(self, global_batch: int) -> slice:
        """This rank's contiguous part of a global batch (``global_batch`` divisible by N)."""
        size = global_batch // self.world_size
        return slice(self.rank * size, (self.rank + 1) * size)


SINGLE_PROCESS = Shard()


def shard_from_environment() -> Shard:
    """The shard torchrun describes in ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; one process
    otherwise."""
    if "WORLD_SIZE" not in os.environ:
        return SINGLE_PROCESS
    try:
        return Shard(
            int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
        )
    except (KeyError, ValueError):
        raise GanforgeError(
            "WORLD_SIZE is set but RANK/LOCAL_RANK are missing or not integers; start "
            "distributed runs with torchrun"
        ) from None


def process_device(shard: Shard, device: torch.device) -> torch.device:
    """On CUDA, each process of a node takes the GPU of its local rank."""
    if device.type == "cuda" and shard.is_distributed:
        if shard.local_rank >= torch.cuda.device_count():
            raise GanforgeError(
                f"local rank {shard.local_rank} has no GPU: this node has "
                f"{torch.cuda.device_count()}; use --nproc_per_node ≤ the GPU count"
            )
        torch.cuda.set_device(shard.local_rank)
        return torch.device("cuda", shard.local_rank)
    return device


def init_process_group(shard: Shard, device: torch.device) -> bool:
    """Join the process group torchrun set up; ``True`` when this call created it (one
    process, or a group the caller already made: ``False``)."""
    if not shard.is_distributed or dist.is_initialized():
        return False
    if device.type == "mps":
        raise GanforgeError("torchrun with MPS is not supported by PyTorch; use --device cpu")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    return True


def close_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def leave_worker_process(exit_code: int) -> NoReturn:
    """End a torchrun worker with ``exit_code``; one that succeeded skips the interpreter's
    finalisation.

    PyTorch's DistributedDataParallel keeps its gloo process group alive after
    ``destroy_process_group`` (its worker threads are never joined), and a worker thread that
    releases the tensors of the last collective while the interpreter finalises takes the GIL
    of a dying interpreter: the process aborts with SIGABRT after a run that succeeded, about
    one torchrun run in ten on 2 CPU cores (pytorch/pytorch#179291 describes the same abort).
    Exit handlers still run and the streams are flushed first; only the finalisation, which
    has nothing left to write, is skipped. A worker that failed exits as usual, which leaves
    the other ranks the time to say why before torchrun ends them.
    """
    if exit_code != 0:
        raise SystemExit(exit_code)
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)


def barrier(shard: Shard) -> None:
    if shard.is_distributed:
        dist.barrier()


def share_main_outcome(shard: Shard, error: str | None) -> None:
    """Rank 0 tells every rank whether its checks passed; all raise its error if not, so that
    no rank waits in a collective for a rank 0 that has gone."""
    if not shard.is_distributed:
        if error:
            raise GanforgeError(error)
        return
    message = [error]
    dist.broadcast_object_list(message, src=0)
    if message[0]:
        raise GanforgeError(message[0])


def wrap_for_data_parallel(model: nn.Module, shard: Shard, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(model)`` across the group (the model itself for one process)."""
    if not shard.is_distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    # Buffers (BatchNorm's running statistics) stay per rank: only rank 0's are saved, and
    # broadcasting them would cost a collective per forward for nothing. torch 2.13 deprecated
    # broadcast_buffers=False for forward_sync_buffers=False, which also stops that broadcast
    # but still copies rank 0's buffers once, here: the model is freshly built (a resumed run
    # loads its checkpoint after this), so BatchNorm's are alike on every rank anyway, and
    # spectral norm's random power-iteration vectors become rank 0's, the one-process run's.
    return DistributedDataParallel(model, device_ids=device_ids, forward_sync_buffers=False)


def check_sync_batchnorm(device: torch.device) -> None:
    """PyTorch implements SyncBatchNorm for GPUs only: refuse it elsewhere."""
    if device.type != "cuda":
        raise GanforgeError(
            "sync_bn needs CUDA GPUs: PyTorch's SyncBatchNorm does not run on the CPU"
        )


def use_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Replace BatchNorm layers by SyncBatchNorm (statistics over the global batch)."""
    check_sync_batchnorm(device)
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


class _AnyRankBatchNorm(nn.modules.batchnorm._BatchNorm):
    """A per-process BatchNorm that, like SyncBatchNorm, takes inputs of any rank ≥ 2."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected an input of 2 or more dimensions, got {input.dim()}")


def without_sync_batchnorm(model: nn.Module) -> nn.Module:
    """``model`` with its SyncBatchNorm layers replaced by per-process ones holding the same
    parameters and buffers (and state-dict keys): for a copy that one process runs alone, such
    as the EMA generator whose statistics rank 0 estimates, where a SyncBatchNorm in training
    mode would wait for the other ranks."""
    if isinstance(model, nn.SyncBatchNorm):
        state = model.state_dict()
        plain = _AnyRankBatchNorm(
            model.num_features, model.eps, model.momentum, model.affine, model.track_running_stats
        )
        plain.load_state_dict(state)
        if state:
            plain = plain.to(next(iter(state.values())).device)
        return plain.train(model.training)
    for name, child in model.named_children():
        setattr(model, name, without_sync_batchnorm(child))
    return model


def mean_over_ranks(values: torch.Tensor, shard: Shard) -> torch.Tensor:
    """Average a tensor over all ranks (the tensor itself for one process)."""
    if not shard.is_distributed:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / shard.world_size


@dataclass(frozen=True)
class Outcome:
    """What the ranks agreed on after an iteration: whether any was asked to stop (SIGINT or
    SIGTERM), whether the run is to finish now (its time budget is spent), and ``(rank,
    one-line message)`` for each rank that failed."""

    stopping: bool
    failures: tuple[tuple[int, str], ...] = ()
    finishing: bool = False

    def describe(self, step: int, last_checkpoint: str | Path | None) -> str:
        """One line for the ranks that did not fail: who failed, why, and what is kept."""
        who = "; ".join(f"rank {rank} failed at step {step}: {why}" for rank, why in self.failures)
        kept = f"; the last checkpoint is {last_checkpoint}" if last_checkpoint else ""
        return who + kept


def agree_on_outcome(
    shard: Shard,
    device: torch.device,
    stop_requested: bool,
    failure: str | None,
    finish: bool = False,
) -> Outcome:
    """Every rank's :class:`Outcome` of this iteration, from each rank's ``stop_requested``,
    ``failure`` (a one-line message, or ``None``) and ``finish``.

    Ranks that decide differently would hang in the next collective; this is one small
    all-reduce, paid only under torchrun. The messages travel only when a rank failed.
    """
    if not shard.is_distributed:
        return Outcome(stop_requested, ((0, failure),) if failure else (), finish)
    flags = [float(stop_requested), float(failure is not None), float(finish)]
    flags = torch.tensor(flags, device=device)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)  # nccl reduces GPU tensors only
    stopping, failed, finishing = (bool(flag) for flag in flags.tolist())
    if not failed:
        return Outcome(stopping, (), finishing)
    messages: list[str | None] = [None] * shard.world_size
    dist.all_gather_object(messages, failure)
    failures = tuple((rank, why) for rank, why in enumerate(messages) if why)
    return Outcome(stopping, failures, finishing)
