"""The training loop: the assignment's alternating D and G updates, on data held in memory.

:func:`training_step` is one iteration; :func:`iterate_training` repeats it over shuffled
epochs and yields after every step; :func:`train` is what ``ganforge train`` runs: it adds the
run folder, logs, sample grids and checkpoints around that loop, on one process or on each of
the processes ``torchrun`` starts (see :mod:`ganforge.distributed`).

The step computes the assignment's losses and updates without the work whose result it never
uses: the generator's forward of the D step runs without autograd, D's weight gradients are not
computed during the G step, and when D has no BatchNorm it scores real and fake images in one
pass (the same numbers, one larger matmul).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ganforge.checkpoint import make_checkpoint, save_run_checkpoint
from ganforge.config import TrainConfig
from ganforge.data import load_dataset, preprocess_images, shuffled_batches, to_uint8
from ganforge.distributed import (
    SINGLE_PROCESS,
    Shard,
    barrier,
    check_sync_batchnorm,
    close_process_group,
    init_process_group,
    mean_over_ranks,
    process_device,
    shard_from_environment,
    share_main_outcome,
    use_sync_batchnorm,
    wrap_for_data_parallel,
)
from ganforge.errors import GanforgeError
from ganforge.files import atomic_write_text
from ganforge.losses import OBJECTIVES, Objective
from ganforge.metrics import ReferenceSet, quick_scores
from ganforge.models import build_models, sample_noise
from ganforge.performance import (
    autocast,
    check_precision,
    fused_adam_supported,
    grad_scaler,
    maybe_compile,
    peak_memory_mb,
    prepare_for_speed,
)
from ganforge.report import build_report
from ganforge.reporting import MetricsLog, plot_losses, read_metrics, save_grid
from ganforge.sampling import generate


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@dataclass
class GAN:
    """A generator and a discriminator with their optimizers and the objective they play.

    ``generator`` and ``discriminator`` are the plain modules (their state dicts are what
    checkpoints hold). The step runs them through ``*_synced`` where their weight gradients
    feed an optimizer (DDP across processes, ``torch.compile`` when asked) and through
    ``*_local`` where no gradient of theirs is needed (compiled when asked, never
    synchronised).
    """

    generator: nn.Module
    discriminator: nn.Module
    g_optimizer: torch.optim.Optimizer
    d_optimizer: torch.optim.Optimizer
    objective: Objective
    noise_dim: int
    precision: str = "fp32"
    compile: bool = False
    shard: Shard = SINGLE_PROCESS
    g_synced: nn.Module = field(init=False, repr=False)
    d_synced: nn.Module = field(init=False, repr=False)
    g_local: nn.Module = field(init=False, repr=False)
    d_local: nn.Module = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.device = next(self.generator.parameters()).device
        self.g_scaler = grad_scaler(self.device, self.precision)
        self.d_scaler = grad_scaler(self.device, self.precision)
        # With BatchNorm in D, one pass over real and fake would mix their batch statistics.
        self.joint_d_pass = not _has_batchnorm(self.discriminator)
        if self.shard.is_distributed and not self.joint_d_pass:
            raise GanforgeError(
                "distributed training needs a discriminator without BatchNorm (DDP allows one "
                "forward per backward)"
            )
        self.g_local = maybe_compile(self.generator, self.compile)
        self.d_local = maybe_compile(self.discriminator, self.compile)
        if self.shard.is_distributed:
            self.g_synced = maybe_compile(
                wrap_for_data_parallel(self.generator, self.shard, self.device), self.compile
            )
            self.d_synced = maybe_compile(
                wrap_for_data_parallel(self.discriminator, self.shard, self.device), self.compile
            )
        else:
            self.g_synced, self.d_synced = self.g_local, self.d_local

    def autocast(self):
        return autocast(self.device, self.precision)


def make_optimizer(
    model: nn.Module, lr: float = 1e-3, betas=(0.5, 0.999), fused: bool = False
) -> torch.optim.Adam:
    """The assignment's optimizer: Adam, lr 1e-3, betas (0.5, 0.999).

    ``fused`` updates all parameters in one kernel: the same update rule, rounded differently,
    and faster than PyTorch's per-parameter loop on the CPU.
    """
    return torch.optim.Adam(model.parameters(), lr=lr, betas=betas, fused=fused or None)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; other names are checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GanforgeError("device cuda was asked for, but no CUDA GPU is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise GanforgeError("device mps was asked for, but Apple's MPS is not available")
    return torch.device(name)


STAT_NAMES = ("d_loss", "g_loss", "d_real", "d_fake")


@contextlib.contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    """No weight gradients for ``model`` inside; afterwards the parameters that required
    gradients before require them again (and only those)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    for parameter in trainable:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in trainable:
            parameter.requires_grad_(True)


def _full_precision(scores: torch.Tensor) -> torch.Tensor:
    """Autocast's half-precision scores → fp32, so that losses are computed in fp32."""
    return scores.float() if scores.dtype in (torch.float16, torch.bfloat16) else scores


def training_step(
    gan: GAN, real: torch.Tensor, noise_generator: torch.Generator | None = None
) -> tuple[dict[str, float], torch.Tensor]:
    """One iteration: a discriminator update on real and fresh fake images, then a generator
    update on another fresh noise batch, as the assignment alternates them.

    ``real``: this process's images ``(n, C, H, W)`` in ``[-1, 1]`` (the whole batch on one
    process, its shard under torchrun). Returns the logged numbers (losses, and D's outputs on
    real and fake read through the objective, averaged over processes) and the generator's
    images of the G step, ``(n, C, H, W)``, detached.
    """
    objective = gan.objective
    local_batch = real.shape[0]
    global_batch = local_batch * gan.shard.world_size

    def noise() -> torch.Tensor:
        # Every process draws the whole batch's noise and keeps its slice: the same numbers
        # as a single process, whatever the process count.
        noise = sample_noise(
            global_batch,
            gan.noise_dim,
            generator=noise_generator,
            device=real.device,
            dtype=real.dtype,
        )
        return noise[gan.shard.local_slice(global_batch)]

    gan.d_optimizer.zero_grad(set_to_none=True)
    with torch.no_grad(), gan.autocast():
        fake = gan.g_local(noise())
    with gan.autocast():
        if gan.joint_d_pass:
            scores = gan.d_synced(torch.cat([real, fake.to(real.dtype)]))
            scores_real, scores_fake = scores[:local_batch], scores[local_batch:]
        else:
            scores_real, scores_fake = gan.d_synced(real), gan.d_synced(fake)
    d_loss = objective.discriminator_loss(
        _full_precision(scores_real), _full_precision(scores_fake)
    )
    gan.d_scaler.scale(d_loss).backward()
    gan.d_scaler.step(gan.d_optimizer)
    gan.d_scaler.update()

    gan.g_optimizer.zero_grad(set_to_none=True)
    with _frozen(gan.discriminator):  # D's weight gradients would go unused
        with gan.autocast():
            fake = gan.g_synced(noise())
            scores_g = gan.d_local(fake)
        g_loss = objective.generator_loss(_full_precision(scores_g))
        gan.g_scaler.scale(g_loss).backward()
    gan.g_scaler.step(gan.g_optimizer)
    gan.g_scaler.update()

    stats = torch.stack(
        [
            d_loss.detach(),
            g_loss.detach(),
            objective.score_summary(_full_precision(scores_real.detach())),
            objective.score_summary(_full_precision(scores_fake.detach())),
        ]
    )
    stats = mean_over_ranks(stats, gan.shard).tolist()  # one device sync per step
    return dict(zip(STAT_NAMES, stats, strict=True)), _full_precision(fake.detach())


@dataclass
class Iteration:
    """What :func:`iterate_training` yields after each step (``step`` counts from 1)."""

    step: int
    epoch: int
    end_of_epoch: bool
    stats: dict[str, float]
    fake: torch.Tensor


def iterate_training(
    gan: GAN,
    images: torch.Tensor,
    *,
    batch_size: int,
    epochs: int,
    max_steps: int | None = None,
    data_generator: torch.Generator | None = None,
    noise_generator: torch.Generator | None = None,
    shuffle: bool = True,
) -> Iterator[Iteration]:
    """Train over ``epochs`` passes of ``images`` (uint8 ``(N, C, H, W)``, on the models' device).

    Each epoch draws a fresh permutation from ``data_generator`` (or goes in order when
    ``shuffle`` is false) and drops the last incomplete batch. ``batch_size`` is the global
    batch; under torchrun each process trains on its slice of it.
    """
    step = 0
    for epoch in range(epochs):
        batches = list(shuffled_batches(images.shape[0], batch_size, data_generator, shuffle))
        if not batches:
            return
        # This process's slice of every batch, moved to the device in one copy per epoch (a
        # copy per step would make a GPU wait for the host every step).
        indices = torch.stack(batches)[:, gan.shard.local_slice(batch_size)].to(images.device)
        for i, index in enumerate(indices):
            real = preprocess_images(images[index])
            stats, fake = training_step(gan, real, noise_generator)
            step += 1
            yield Iteration(step, epoch, i == len(batches) - 1, stats, fake)
            if max_steps is not None and step >= max_steps:
                return


@dataclass
class RunSummary:
    run_dir: Path
    steps: int
    epochs_completed: int
    wall_time_s: float
    images_per_s: float
    last_stats: dict[str, float]

    def line(self) -> str:
        losses = ", ".join(f"{k} {v:.3f}" for k, v in self.last_stats.items())
        return (
            f"{self.run_dir}: {self.steps} iterations in {self.wall_time_s:.0f} s "
            f"({self.images_per_s:.0f} images/s); last {losses}"
        )


def _training_reference(config: TrainConfig, quiet: bool) -> ReferenceSet | None:
    """The test set embedded by the dataset's evaluator, for ``eval_every`` and the final
    evaluation; ``None`` when both are off or no evaluator fits the dataset (said once, unless
    quiet)."""
    if not (config.eval_every or config.final_eval_num):
        return None
    from ganforge.evaluator import load_evaluator

    try:
        evaluator = load_evaluator(config.dataset)
    except GanforgeError as exc:
        if not quiet:
            print(f"ganforge: evaluation is off: {exc}", file=sys.stderr)
        return None
    test = load_dataset(config.dataset, "test", data_root=config.data_root)
    return ReferenceSet(evaluator, test.images, train=None)


def _summary_writer_class():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise GanforgeError(
            "--tensorboard needs the tensorboard package: pip install tensorboard"
        ) from None
    return SummaryWriter


def _remove_unused_run_folder(run_dir: Path | None) -> None:
    """Delete a run folder this run created (it was absent or empty) before any result."""
    if run_dir is not None:
        shutil.rmtree(run_dir, ignore_errors=True)


def _make_run_dir(config: TrainConfig) -> Path:
    if config.out:
        run_dir = Path(config.out)
    else:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path("runs") / f"{config.preset}-{stamp}"
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise GanforgeError(
            f"run folder {run_dir} already exists and is not empty; choose another --out"
        )
    try:
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    except OSError as exc:
        raise GanforgeError(
            f"cannot write the run folder {run_dir}: {exc.strerror or exc}"
        ) from None
    return run_dir


def build_gan(config: TrainConfig, device: torch.device, shard: Shard = SINGLE_PROCESS) -> GAN:
    """The networks, optimizers and objective a config describes, ready to train on ``device``.

    Weights come from torch's global generator: seed it first for a reproducible run.
    """
    generator, discriminator = build_models(config.architecture, config.noise_dim, config.init)
    if config.sync_bn:
        generator = use_sync_batchnorm(generator, device)
        discriminator = use_sync_batchnorm(discriminator, device)
    generator = prepare_for_speed(generator, device)
    discriminator = prepare_for_speed(discriminator, device)
    betas, fused = (config.beta1, config.beta2), fused_adam_supported(device)
    return GAN(
        generator,
        discriminator,
        make_optimizer(generator, config.lr, betas, fused),
        make_optimizer(discriminator, config.lr, betas, fused),
        OBJECTIVES[config.loss],
        config.noise_dim,
        precision=config.precision,
        compile=config.compile,
        shard=shard,
    )


def train(config: TrainConfig, quiet: bool = False) -> RunSummary | None:
    """Run a whole training job as ``ganforge train`` does; return where it went and how fast.

    Under torchrun every process calls this; rank 0 writes the run folder and returns its
    summary, the other ranks train and return ``None``. Checks data and device before the run
    folder is created, so a bad input writes nothing.
    """
    shard = shard_from_environment()
    device = process_device(shard, resolve_device(config.device))
    check_precision(config.precision, device)
    if config.sync_bn:
        check_sync_batchnorm(device)
    if config.batch_size % shard.world_size:
        raise GanforgeError(
            f"batch size {config.batch_size} does not split evenly over {shard.world_size} "
            "processes; the batch size is the global batch"
        )
    created_group = init_process_group(shard, device)
    try:
        return _train(config, quiet or not shard.is_main, shard, device)
    finally:
        if created_group:
            close_process_group()


def _prepare_run_folder(config: TrainConfig):
    """Rank 0's last checks, then its run folder: ``(run_dir, tensorboard writer class)``."""
    writer_class = _summary_writer_class() if config.tensorboard else None
    return _make_run_dir(config), writer_class


def _train(config: TrainConfig, quiet: bool, shard: Shard, device: torch.device):
    main = shard.is_main
    # Before any seeding: building the evaluator must not shift the training RNG streams.
    reference = _training_reference(config, quiet) if main else None
    # Weights: rank 0's initialisation is the run's (DDP copies it to every rank).
    torch.manual_seed(config.seed + shard.rank)
    data_generator = torch.Generator().manual_seed(config.seed)
    noise_generator = torch.Generator(device).manual_seed(config.seed + 1)
    fixed_noise = sample_noise(
        config.grid_size, config.noise_dim, generator=torch.Generator().manual_seed(config.seed + 2)
    ).to(device)

    if shard.local_rank != 0:
        barrier(shard)  # local rank 0 fetches or unpacks the data first
    data = load_dataset(
        config.dataset,
        "train",
        data_root=config.data_root,
        download=config.download,
        train_size=config.train_size,
    )
    if shard.local_rank == 0:
        barrier(shard)
    if len(data) < config.batch_size:
        raise GanforgeError(
            f"batch size {config.batch_size} is larger than the {len(data)} training images"
        )
    images = data.images.to(device)
    run_dir, writer_class, error = None, None, None
    if main:
        try:
            run_dir, writer_class = _prepare_run_folder(config)
        except GanforgeError as exc:
            error = str(exc)
    share_main_outcome(shard, error)
    try:
        gan = build_gan(config, device, shard)
    except BaseException:
        _remove_unused_run_folder(run_dir)
        raise
    generator, discriminator = gan.generator, gan.discriminator
    steps_per_epoch = len(data) // config.batch_size
    total = steps_per_epoch * config.epochs
    total = min(total, config.max_steps) if config.max_steps else total
    batches = iterate_training(
        gan,
        images,
        batch_size=config.batch_size,
        epochs=config.epochs,
        max_steps=config.max_steps,
        data_generator=data_generator,
        noise_generator=noise_generator,
    )
    if not main:
        for _ in batches:
            pass
        return None

    log = MetricsLog(run_dir / "metrics.jsonl")
    board = writer_class(log_dir=str(run_dir / "tensorboard")) if writer_class else None

    def sample_grid(name: str, step: int) -> None:
        generator.eval()
        with torch.inference_mode():
            images = generator(fixed_noise)
        generator.train()
        save_grid(images, run_dir / "samples" / name)
        if board:
            board.add_images("samples", (images.cpu() + 1) / 2, step)

    def evaluate_now(step: int) -> dict[str, float]:
        generator.eval()
        fake = generate(
            generator, config.eval_num, config.noise_dim, seed=config.seed + 3, device=device
        )
        generator.train()
        scores = quick_scores(reference, to_uint8(fake))
        log.write({"step": step, **scores, "evaluator": reference.evaluator.name})
        if board:
            for key, value in scores.items():
                board.add_scalar(f"eval/{key}", value, step)
        return scores

    def checkpoint(step: int, epoch: int) -> None:
        rng = {
            "torch": torch.get_rng_state(),
            "data": data_generator.get_state(),
            "noise": noise_generator.get_state(),
        }
        state = make_checkpoint(
            config=config.to_dict(),
            step=step,
            epoch=epoch,
            generator=generator,
            discriminator=discriminator,
            g_optimizer=gan.g_optimizer,
            d_optimizer=gan.d_optimizer,
            rng_states=rng,
        )
        save_run_checkpoint(run_dir, state, config.keep_checkpoints)

    progress = tqdm(total=total, disable=quiet, unit="it", dynamic_ncols=True)
    start = time.perf_counter()
    side_work = 0.0  # seconds spent on grids, evaluation and checkpoints, not on training
    last_fid = None
    it = None
    try:
        for it in batches:
            now = time.perf_counter()
            log.write({"step": it.step, "epoch": it.epoch, **it.stats, "time": now - start})
            if board:
                for key, value in it.stats.items():
                    board.add_scalar(f"train/{key}", value, it.step)
            progress.update(1)
            if it.step % 10 == 0 or it.step == total:
                speed = it.step * config.batch_size / (now - start - side_work)
                postfix = {
                    "epoch": it.epoch + 1,
                    "D": f"{it.stats['d_loss']:.3f}",
                    "G": f"{it.stats['g_loss']:.3f}",
                    "img/s": f"{speed:.0f}",
                }
                if last_fid is not None:
                    postfix["FID"] = f"{last_fid:.1f}"
                progress.set_postfix(postfix)
            if it.step % config.sample_every == 0:
                sample_grid(f"step_{it.step:07d}.png", it.step)
            if reference is not None and config.eval_every and it.step % config.eval_every == 0:
                last_fid = evaluate_now(it.step)["fid"]
            if it.end_of_epoch:
                checkpoint(it.step, it.epoch + 1)
            side_work += time.perf_counter() - now
    except BaseException as exc:
        if it is None:  # the first step failed: nothing of this run is worth keeping
            log.close()
            _remove_unused_run_folder(run_dir)
            if config.compile and not isinstance(exc, (GanforgeError, KeyboardInterrupt)):
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise GanforgeError(f"torch.compile failed: {reason}") from exc
        raise
    finally:
        progress.close()
        log.close()
    wall = time.perf_counter() - start
    if it is None:
        raise GanforgeError("training ran no iteration")
    if not it.end_of_epoch:
        checkpoint(it.step, it.epoch)
    sample_grid("final.png", it.step)
    plot_losses(
        read_metrics(run_dir / "metrics.jsonl"),
        run_dir / "loss_curve.png",
        title=f"{config.preset} ({config.loss}, {config.architecture})",
    )
    summary = RunSummary(
        run_dir,
        it.step,
        it.epoch + int(it.end_of_epoch),
        wall,
        it.step * config.batch_size / (wall - side_work),
        it.stats,
    )
    atomic_write_text(
        run_dir / "summary.json",
        json.dumps(
            {
                "steps": summary.steps,
                "epochs_completed": summary.epochs_completed,
                "wall_time_s": round(wall, 2),
                "images_per_s": round(summary.images_per_s, 1),
                "device": str(device),
                "processes": shard.world_size,
                "precision": config.precision,
                "compile": config.compile,
                "peak_memory_mb": round(peak_memory_mb(device), 1),
                "last": it.stats,
            },
            indent=2,
        )
        + "\n",
    )
    if board:
        board.close()
    if reference is not None and config.final_eval_num:
        from ganforge.evaluation import evaluate_run

        evaluate_run(run_dir, num=config.final_eval_num, seed=config.seed)  # writes the report
    else:
        build_report(run_dir)
    return summary
