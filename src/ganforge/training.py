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
import dataclasses
import json
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ganforge.checkpoint import (
    load_latest_checkpoint,
    load_weights,
    make_checkpoint,
    remove_partial_writes,
    save_best_checkpoint,
    save_run_checkpoint,
)
from ganforge.config import TrainConfig, config_from_checkpoint, resume_config
from ganforge.data import load_dataset, preprocess_images, shuffled_batches, to_uint8
from ganforge.distributed import (
    SINGLE_PROCESS,
    Shard,
    any_rank,
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
from ganforge.errors import GanforgeError, TrainingStopped
from ganforge.files import atomic_write_text
from ganforge.interrupts import StopRequests, signal_name
from ganforge.losses import OBJECTIVES, Objective
from ganforge.metrics import ReferenceSet, quick_scores
from ganforge.models import build_models, sample_noise
from ganforge.monitoring import (
    GRAD_NORM_EVERY,
    Diverged,
    TrainingMonitor,
    gradient_norm,
    non_finite_tensors,
)
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
from ganforge.reporting import MetricsLog, plot_losses, read_metrics, save_grid, truncate_metrics
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
    skip_nonfinite: bool = False  # --on-nan skip-step: drop an update whose gradient is not finite
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


def _backward_and_update(
    gan: GAN, loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler
) -> bool:
    """Backpropagate ``loss`` and step ``optimizer``; False when the update was skipped.

    With ``gan.skip_nonfinite`` an update whose gradient holds a NaN or an infinity is dropped
    (this costs a gradient norm and a device sync). Under fp16 the GradScaler already drops
    those, as loss scaling makes them routine, and it is left to do so.
    """
    scaler.scale(loss).backward()
    if gan.skip_nonfinite and not scaler.is_enabled():
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]]
        grads = [g for g in grads if g is not None]
        # DDP has averaged the gradients already: every rank takes the same decision.
        if grads and not torch.isfinite(torch.nn.utils.get_total_norm(grads)):
            optimizer.zero_grad(set_to_none=True)
            return False
    scaler.step(optimizer)
    scaler.update()
    return True


def training_step(
    gan: GAN, real: torch.Tensor, noise_generator: torch.Generator | None = None
) -> tuple[dict[str, float], torch.Tensor]:
    """One iteration: a discriminator update on real and fresh fake images, then a generator
    update on another fresh noise batch, as the assignment alternates them.

    ``real``: this process's images ``(n, C, H, W)`` in ``[-1, 1]`` (the whole batch on one
    process, its shard under torchrun). Returns the logged numbers (losses, and D's outputs on
    real and fake read through the objective, averaged over processes; with
    ``gan.skip_nonfinite`` also how many of the two updates were dropped) and the generator's
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
    d_updated = _backward_and_update(gan, d_loss, gan.d_optimizer, gan.d_scaler)

    gan.g_optimizer.zero_grad(set_to_none=True)
    with _frozen(gan.discriminator):  # D's weight gradients would go unused
        with gan.autocast():
            fake = gan.g_synced(noise())
            scores_g = gan.d_local(fake)
        g_loss = objective.generator_loss(_full_precision(scores_g))
        g_updated = _backward_and_update(gan, g_loss, gan.g_optimizer, gan.g_scaler)

    stats = torch.stack(
        [
            d_loss.detach(),
            g_loss.detach(),
            objective.score_summary(_full_precision(scores_real.detach())),
            objective.score_summary(_full_precision(scores_fake.detach())),
        ]
    )
    stats = mean_over_ranks(stats, gan.shard).tolist()  # one device sync per step
    stats = dict(zip(STAT_NAMES, stats, strict=True))
    if gan.skip_nonfinite:
        stats["skipped_updates"] = (not d_updated) + (not g_updated)
    return stats, _full_precision(fake.detach())


@dataclass
class Iteration:
    """What :func:`iterate_training` yields after each step (``step`` counts from 1).

    ``resume_data_state`` is the data generator's state to continue after this step with: its
    state when the next step's epoch began (``None`` without shuffling).
    """

    step: int
    epoch: int
    end_of_epoch: bool
    stats: dict[str, float]
    fake: torch.Tensor
    resume_data_state: torch.Tensor | None = None


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
    start_step: int = 0,
) -> Iterator[Iteration]:
    """Train over ``epochs`` passes of ``images`` (uint8 ``(N, C, H, W)``, on the models' device).

    Each epoch draws a fresh permutation from ``data_generator`` (or goes in order when
    ``shuffle`` is false) and drops the last incomplete batch. ``batch_size`` is the global
    batch; under torchrun each process trains on its slice of it. ``max_steps`` counts from
    the run's start.

    ``start_step`` continues a run after that many steps; ``data_generator`` must then hold
    the :attr:`Iteration.resume_data_state` of that step, and the networks, optimizers and
    ``noise_generator`` their states after it: the steps that follow are the uninterrupted
    run's, bit for bit.
    """
    steps_per_epoch = images.shape[0] // batch_size
    step = start_step
    for epoch in range(start_step // max(steps_per_epoch, 1), epochs):
        if steps_per_epoch == 0 or (max_steps is not None and step >= max_steps):
            return
        epoch_data_state = data_generator.get_state() if data_generator is not None else None
        batches = list(shuffled_batches(images.shape[0], batch_size, data_generator, shuffle))
        # This process's slice of every batch, moved to the device in one copy per epoch (a
        # copy per step would make a GPU wait for the host every step).
        indices = torch.stack(batches)[:, gan.shard.local_slice(batch_size)].to(images.device)
        for i in range(step - epoch * steps_per_epoch, steps_per_epoch):
            if max_steps is not None and step >= max_steps:
                return
            real = preprocess_images(images[indices[i]])
            stats, fake = training_step(gan, real, noise_generator)
            step += 1
            end_of_epoch = i == steps_per_epoch - 1
            if end_of_epoch and data_generator is not None:
                epoch_data_state = data_generator.get_state()  # the next epoch begins here
            yield Iteration(step, epoch, end_of_epoch, stats, fake, epoch_data_state)


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


def _training_reference(config: TrainConfig) -> tuple[ReferenceSet | None, str | None]:
    """The test set embedded by the dataset's evaluator, for ``eval_every`` and the final
    evaluation: ``(reference, None)``; ``(None, why)`` when no evaluator fits the dataset, and
    ``(None, None)`` when both evaluations are off."""
    if not (config.eval_every or config.final_eval_num):
        return None, None
    from ganforge.evaluator import load_evaluator

    try:
        evaluator = load_evaluator(config.dataset)
    except GanforgeError as exc:
        return None, f"ganforge: evaluation is off: {exc}"
    test = load_dataset(config.dataset, "test", data_root=config.data_root)
    return ReferenceSet(evaluator, test.images, train=None), None


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


def _check_run_folder_is_free(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise GanforgeError(f"--out {run_dir} is a file, not a folder; choose another --out")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise GanforgeError(
            f"run folder {run_dir} already exists and is not empty; choose another --out, "
            f"or continue it with --resume {run_dir}"
        )


def _make_run_dir(config: TrainConfig) -> Path:
    if config.out:
        run_dir = Path(config.out)
    else:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path("runs") / f"{config.preset}-{stamp}"
    _check_run_folder_is_free(run_dir)
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
        skip_nonfinite=config.on_nan == "skip-step",
    )


def train(config: TrainConfig, quiet: bool = False, resume: bool = False) -> RunSummary | None:
    """Run a whole training job as ``ganforge train`` does; return where it went and how fast.

    ``resume``: continue the run in ``config.out`` from its newest checkpoint, exactly as if it
    had never stopped (build ``config`` with :func:`resume_config_for`).

    Under torchrun every process calls this; rank 0 writes the run folder and returns its
    summary, the other ranks train and return ``None``. Checks the inputs before any work, so
    a bad input writes nothing. SIGINT and SIGTERM stop it after the current step with a
    checkpoint (:class:`~ganforge.errors.TrainingStopped`).
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
    if not resume and config.out:  # every rank, so that all stop alike (a shared disk)
        _check_run_folder_is_free(Path(config.out))
    created_group = init_process_group(shard, device)
    try:
        return _train(config, quiet or not shard.is_main, shard, device, resume)
    finally:
        if created_group:
            close_process_group()


def resume_config_for(run_dir: str | Path, overrides: dict | None = None) -> TrainConfig:
    """The config of the run in ``run_dir`` (from its newest checkpoint), with the changes that
    ``--resume`` allows (:data:`~ganforge.config.RESUMABLE_CHANGES`) from ``overrides``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GanforgeError(f"--resume {run_dir}: no such run folder")
    if not (run_dir / "config.json").is_file():
        raise GanforgeError(f"--resume {run_dir}: not a ganforge run folder (no config.json)")
    checkpoint, _ = load_latest_checkpoint(run_dir)
    saved = config_from_checkpoint(
        checkpoint["config"], checkpoint["path"], checkpoint.get("ganforge_version", "unknown")
    )
    return dataclasses.replace(resume_config(saved, overrides or {}), out=str(run_dir))


def _prepare_run_folder(config: TrainConfig, resume_step: int | None):
    """Rank 0's last checks, then its run folder: ``(run_dir, tensorboard writer class)``.

    A resumed run's folder loses what came after its checkpoint: later log records, half
    written temporary files, and the summary and scores of a shorter finish.
    """
    writer_class = _summary_writer_class() if config.tensorboard else None
    if resume_step is None:
        return _make_run_dir(config), writer_class
    run_dir = Path(config.out)
    try:
        remove_partial_writes(run_dir)
        truncate_metrics(run_dir / "metrics.jsonl", resume_step)
        for stale in ("summary.json", "eval.json"):
            (run_dir / stale).unlink(missing_ok=True)
        (run_dir / "samples").mkdir(exist_ok=True)
        atomic_write_text(run_dir / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    except OSError as exc:
        raise GanforgeError(
            f"cannot write the run folder {run_dir}: {exc.strerror or exc}"
        ) from None
    return run_dir, writer_class


def _load_resume_checkpoint(run_dir: Path, device: torch.device, announce: bool) -> dict:
    checkpoint, skipped = load_latest_checkpoint(run_dir)
    for line in skipped if announce else ():
        print(f"ganforge: warning: skipped a checkpoint: {line}", file=sys.stderr)
    trained_on = checkpoint["progress"]["device_type"]
    if trained_on != device.type:
        raise GanforgeError(
            f"{checkpoint['path']} was trained on {trained_on}, and this run would continue "
            f"on {device.type}: its noise stream cannot move between device types; resume "
            f"with --device {trained_on}"
        )
    return checkpoint


def _restore(
    gan: GAN,
    checkpoint: dict,
    data_generator: torch.Generator,
    noise_generator: torch.Generator,
    shard: Shard,
) -> None:
    """Put the networks, optimizers, loss scalers and random streams where ``checkpoint``
    left them."""
    path = checkpoint["path"]
    load_weights(gan.generator, checkpoint["generator"], "generator", path)
    load_weights(gan.discriminator, checkpoint["discriminator"], "discriminator", path)
    try:
        gan.g_optimizer.load_state_dict(checkpoint["g_optimizer"])
        gan.d_optimizer.load_state_dict(checkpoint["d_optimizer"])
        gan.g_scaler.load_state_dict(checkpoint.get("g_scaler", {}))
        gan.d_scaler.load_state_dict(checkpoint.get("d_scaler", {}))
        rng = checkpoint["rng_states"]
        noise_generator.set_state(rng["noise"])
        if rng["data"] is not None:
            data_generator.set_state(rng["data"])
        if shard.is_main:  # the other ranks' global streams are seed + rank, as at the start
            torch.set_rng_state(rng["torch"])
            if rng.get("cuda") is not None:
                torch.cuda.set_rng_state(rng["cuda"], gan.device)
    except (ValueError, KeyError, RuntimeError, TypeError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GanforgeError(f"{path}: its training state cannot be restored ({detail})") from None


def _train(config: TrainConfig, quiet: bool, shard: Shard, device: torch.device, resume: bool):
    main = shard.is_main
    # Before any seeding: building the evaluator must not shift the training RNG streams.
    reference, no_evaluation = _training_reference(config) if main else (None, None)
    # Weights: rank 0's initialisation is the run's (DDP copies it to every rank).
    torch.manual_seed(config.seed + shard.rank)
    data_generator = torch.Generator().manual_seed(config.seed)
    noise_generator = torch.Generator(device).manual_seed(config.seed + 1)
    fixed_noise = sample_noise(
        config.grid_size, config.noise_dim, generator=torch.Generator().manual_seed(config.seed + 2)
    ).to(device)
    checkpoint = _load_resume_checkpoint(Path(config.out), device, main) if resume else None

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
    if no_evaluation and not quiet:  # said once the data is known to be good
        print(no_evaluation, file=sys.stderr)
    steps_per_epoch = len(data) // config.batch_size
    total = steps_per_epoch * config.epochs
    total = min(total, config.max_steps) if config.max_steps else total
    start_step = checkpoint["step"] if checkpoint else 0
    if checkpoint:
        _check_resumable(Path(config.out), start_step, total)
    images = data.images.to(device)
    gan = build_gan(config, device, shard)
    if checkpoint:
        _restore(gan, checkpoint, data_generator, noise_generator, shard)
    run_dir, writer_class, error = None, None, None
    if main:
        try:
            run_dir, writer_class = _prepare_run_folder(config, start_step if checkpoint else None)
        except GanforgeError as exc:
            error = str(exc)
    share_main_outcome(shard, error)
    generator, discriminator = gan.generator, gan.discriminator
    monitor = TrainingMonitor()
    past = checkpoint["progress"] if checkpoint else {}
    if checkpoint:
        monitor.load_state_dict(past["monitor"])
    batches = iterate_training(
        gan,
        images,
        batch_size=config.batch_size,
        epochs=config.epochs,
        max_steps=config.max_steps,
        data_generator=data_generator,
        noise_generator=noise_generator,
        start_step=start_step,
    )
    if not main:
        with StopRequests() as stop:
            for it in batches:
                monitor.check_step(it.step, it.stats, generator, discriminator)
                if any_rank(stop.requested, shard, device):
                    raise TrainingStopped("stopped with rank 0", stop.signum or signal.SIGTERM)
        return None

    log = MetricsLog(run_dir / "metrics.jsonl")
    purge = {"purge_step": start_step + 1} if checkpoint else {}  # TensorBoard drops later steps
    board = writer_class(log_dir=str(run_dir / "tensorboard"), **purge) if writer_class else None
    elapsed_before = past.get("elapsed_s", 0.0)
    side_work_before = past.get("side_work_s", 0.0)
    best_fid, last_fid = past.get("best_fid"), past.get("last_fid")

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

    def snapshot(step: int, data_state: torch.Tensor | None, stats) -> dict:
        """The checkpoint of the run as it is after ``step``; refuses non-finite weights, so
        that no checkpoint ever holds a diverged network."""
        for name, model in (("generator", generator), ("discriminator", discriminator)):
            bad = non_finite_tensors(model)
            if bad:
                raise Diverged(f"step {step}: the {name}'s weights hold NaN or Inf ({bad[0]})")
        rng = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "data": data_state,
            "noise": noise_generator.get_state(),
        }
        progress = {
            "device_type": device.type,
            "elapsed_s": elapsed_before + time.perf_counter() - start,
            "side_work_s": side_work_before + side_work,
            "best_fid": best_fid,
            "last_fid": last_fid,
            "last_stats": stats,
            "monitor": monitor.state_dict(),
        }
        return make_checkpoint(
            config=config.to_dict(),
            step=step,
            epoch=step // steps_per_epoch,
            generator=generator,
            discriminator=discriminator,
            g_optimizer=gan.g_optimizer,
            d_optimizer=gan.d_optimizer,
            g_scaler=gan.g_scaler,
            d_scaler=gan.d_scaler,
            rng_states=rng,
            progress=progress,
        )

    def warn(step: int, message: str) -> None:
        log.write({"step": step, "warning": message})
        tqdm.write(f"ganforge: warning: {message}", file=sys.stderr)

    progress_bar = tqdm(
        total=total, initial=start_step, disable=quiet, unit="it", dynamic_ncols=True
    )
    start = time.perf_counter()
    side_work = 0.0  # seconds spent on grids, evaluation and checkpoints, not on training
    last_saved = checkpoint["path"] if checkpoint else None
    saved_step = start_step if checkpoint else None
    it = None
    try:
        with StopRequests() as stop:
            if checkpoint is None:  # from the first moment on, a kill leaves a checkpoint
                step_zero = snapshot(0, data_generator.get_state(), None)
                last_saved = save_run_checkpoint(run_dir, step_zero, config.keep_checkpoints)
                saved_step = 0
            for it in batches:
                now = time.perf_counter()
                record = {"step": it.step, "epoch": it.epoch, **it.stats}
                grad_norms = {}
                if it.step % GRAD_NORM_EVERY == 0:
                    grad_norms = {"d": gradient_norm(discriminator), "g": gradient_norm(generator)}
                    record.update({f"{k}_grad_norm": v for k, v in grad_norms.items() if v})
                log.write({**record, "time": elapsed_before + now - start})
                if board:
                    for key, value in it.stats.items():
                        board.add_scalar(f"train/{key}", value, it.step)
                monitor.check_step(it.step, it.stats, generator, discriminator)
                warnings = monitor.observe_step(it.step, it.stats, grad_norms)
                progress_bar.update(1)
                if it.step % config.sample_every == 0:
                    sample_grid(f"step_{it.step:07d}.png", it.step)
                if reference is not None and config.eval_every and it.step % config.eval_every == 0:
                    scores = evaluate_now(it.step)
                    last_fid = scores["fid"]
                    classes = len(reference.evaluator.classes)
                    warnings += monitor.observe_evaluation(
                        it.step, scores["classes_covered"], classes
                    )
                    if best_fid is None or last_fid < best_fid:
                        best_fid = last_fid
                        best = snapshot(it.step, it.resume_data_state, it.stats)
                        save_best_checkpoint(run_dir, {**best, "fid": best_fid})
                for message in warnings:
                    warn(it.step, message)
                if it.step % 10 == 0 or it.step == total:
                    speed = (it.step - start_step) * config.batch_size / (now - start - side_work)
                    postfix = {
                        "epoch": it.epoch + 1,
                        "D": f"{it.stats['d_loss']:.3f}",
                        "G": f"{it.stats['g_loss']:.3f}",
                        "img/s": f"{speed:.0f}",
                    }
                    if last_fid is not None:
                        postfix["FID"] = f"{last_fid:.1f}"
                    if monitor.warned:
                        postfix["warning"] = ",".join(sorted(monitor.warned))
                    progress_bar.set_postfix(postfix)
                stopping = any_rank(stop.requested, shard, device)
                periodic = config.checkpoint_every and it.step % config.checkpoint_every == 0
                if it.end_of_epoch or periodic or stopping:
                    state = snapshot(it.step, it.resume_data_state, it.stats)
                    last_saved = save_run_checkpoint(run_dir, state, config.keep_checkpoints)
                    saved_step = it.step
                side_work += time.perf_counter() - now
                if stopping:
                    raise TrainingStopped(
                        f"stopped by {signal_name(stop.signum or signal.SIGTERM)} at step "
                        f"{it.step} of {total}; checkpoint {last_saved}; continue with: "
                        f"ganforge train --resume {run_dir}",
                        stop.signum or signal.SIGTERM,
                    )
    except Diverged as exc:
        raise Diverged(
            f"{exc}. Training stopped; the last good checkpoint is {last_saved} (continue from "
            f"it with --resume {run_dir} --on-nan skip-step, or train again with a lower --lr)"
        ) from None
    except OSError as exc:
        raise GanforgeError(
            f"cannot write to the run folder {run_dir}: {exc.strerror or exc}; the last "
            f"checkpoint, {last_saved}, is intact: make room, then continue with "
            f"--resume {run_dir}"
        ) from None
    except BaseException as exc:
        if it is None and checkpoint is None:  # the first step failed: nothing worth keeping
            log.close()
            _remove_unused_run_folder(run_dir)
            if config.compile and not isinstance(exc, (GanforgeError, KeyboardInterrupt)):
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise GanforgeError(f"torch.compile failed: {reason}") from exc
        raise
    finally:
        progress_bar.close()
        log.close()
    step = it.step if it is not None else start_step
    try:
        if saved_step != step:
            state = snapshot(step, it.resume_data_state, it.stats)
            last_saved = save_run_checkpoint(run_dir, state, config.keep_checkpoints)
        wall = elapsed_before + time.perf_counter() - start
        side_work += side_work_before
        summary = RunSummary(
            run_dir,
            step,
            step // steps_per_epoch,
            wall,
            step * config.batch_size / max(wall - side_work, 1e-9),
            it.stats if it is not None else past.get("last_stats") or {},
        )
        sample_grid("final.png", step)
        plot_losses(
            read_metrics(run_dir / "metrics.jsonl"),
            run_dir / "loss_curve.png",
            title=f"{config.preset} ({config.loss}, {config.architecture})",
        )
        facts = {
            "steps": summary.steps,
            "epochs_completed": summary.epochs_completed,
            "wall_time_s": round(wall, 2),
            "images_per_s": round(summary.images_per_s, 1),
            "device": str(device),
            "processes": shard.world_size,
            "precision": config.precision,
            "compile": config.compile,
            "peak_memory_mb": round(peak_memory_mb(device), 1),
            "best_fid_during_training": best_fid,
            "last": summary.last_stats,
        }
        if gan.skip_nonfinite:
            facts["skipped_updates"] = monitor.skipped_total
        atomic_write_text(run_dir / "summary.json", json.dumps(facts, indent=2) + "\n")
    except OSError as exc:
        raise GanforgeError(
            f"cannot write to the run folder {run_dir}: {exc.strerror or exc}; the last "
            f"checkpoint, {last_saved}, is intact: make room, then finish with --resume {run_dir}"
        ) from None
    if board:
        board.close()
    if reference is not None and config.final_eval_num:
        from ganforge.evaluation import evaluate_run

        evaluate_run(run_dir, num=config.final_eval_num, seed=config.seed)  # writes the report
    else:
        build_report(run_dir)
    return summary


def _check_resumable(run_dir: Path, step: int, total: int) -> None:
    """Refuse to resume a run that has nothing left to do, or that is already past the end."""
    if step > total:
        raise GanforgeError(
            f"{run_dir} is at step {step}, past the {total} steps that --epochs and --max-steps "
            "now allow; give larger ones to train on"
        )
    if step == total and (run_dir / "summary.json").is_file():
        raise GanforgeError(
            f"{run_dir} has finished all its {total} steps; give a larger --epochs or "
            "--max-steps to train on"
        )
