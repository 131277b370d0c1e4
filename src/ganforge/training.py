"""The training loop: the assignment's alternating D and G updates, on data held in memory.

:func:`training_step` is one iteration; :func:`iterate_training` repeats it over shuffled
epochs and yields after every step; :func:`train` is what ``ganforge train`` runs: it adds the
run folder, logs, sample grids and checkpoints around that loop.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ganforge.checkpoint import make_checkpoint, save_run_checkpoint
from ganforge.config import TrainConfig
from ganforge.data import load_dataset, preprocess_images, shuffled_batches, to_uint8
from ganforge.errors import GanforgeError
from ganforge.files import atomic_write_text
from ganforge.losses import OBJECTIVES, Objective
from ganforge.metrics import ReferenceSet, quick_scores
from ganforge.models import build_models, sample_noise
from ganforge.report import build_report
from ganforge.reporting import MetricsLog, plot_losses, read_metrics, save_grid
from ganforge.sampling import generate


@dataclass
class GAN:
    """A generator and a discriminator with their optimizers and the objective they play."""

    generator: nn.Module
    discriminator: nn.Module
    g_optimizer: torch.optim.Optimizer
    d_optimizer: torch.optim.Optimizer
    objective: Objective
    noise_dim: int


def make_optimizer(model: nn.Module, lr: float = 1e-3, betas=(0.5, 0.999)) -> torch.optim.Adam:
    """The assignment's optimizer: Adam, lr 1e-3, betas (0.5, 0.999)."""
    return torch.optim.Adam(model.parameters(), lr=lr, betas=betas)


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


def training_step(
    gan: GAN, real: torch.Tensor, noise_generator: torch.Generator | None = None
) -> tuple[dict[str, float], torch.Tensor]:
    """One iteration: a discriminator update on real and fresh fake images, then a generator
    update on another fresh noise batch, as the assignment alternates them.

    ``real``: images ``(N, C, H, W)`` in ``[-1, 1]``. Returns the logged numbers (losses, and D's
    outputs on real and fake read through the objective) and the generator's images of the
    G step, ``(N, C, H, W)``, detached.
    """
    G, D, objective = gan.generator, gan.discriminator, gan.objective
    batch_size = real.shape[0]

    def noise() -> torch.Tensor:
        return sample_noise(
            batch_size, gan.noise_dim, generator=noise_generator, device=real.device
        )

    gan.d_optimizer.zero_grad()
    scores_real = D(real)
    scores_fake = D(G(noise()).detach())
    d_loss = objective.discriminator_loss(scores_real, scores_fake)
    d_loss.backward()
    gan.d_optimizer.step()

    gan.g_optimizer.zero_grad()
    fake = G(noise())
    g_loss = objective.generator_loss(D(fake))
    g_loss.backward()
    gan.g_optimizer.step()

    stats = {
        "d_loss": d_loss.item(),
        "g_loss": g_loss.item(),
        "d_real": objective.score_summary(scores_real.detach()).item(),
        "d_fake": objective.score_summary(scores_fake.detach()).item(),
    }
    return stats, fake.detach()


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
    ``shuffle`` is false) and drops the last incomplete batch.
    """
    step = 0
    for epoch in range(epochs):
        batches = list(shuffled_batches(images.shape[0], batch_size, data_generator, shuffle))
        for i, index in enumerate(batches):
            real = preprocess_images(images[index.to(images.device)])
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


def train(config: TrainConfig, quiet: bool = False) -> RunSummary:
    """Run a whole training job as ``ganforge train`` does; return where it went and how fast.

    Checks data and device before it creates the run folder, so a bad input writes nothing.
    """
    device = resolve_device(config.device)
    # Before any seeding: building the evaluator must not shift the training RNG streams.
    reference = _training_reference(config, quiet)
    torch.manual_seed(config.seed)  # weight initialisation
    data_generator = torch.Generator().manual_seed(config.seed)
    noise_generator = torch.Generator(device).manual_seed(config.seed + 1)
    fixed_noise = sample_noise(
        config.grid_size, config.noise_dim, generator=torch.Generator().manual_seed(config.seed + 2)
    ).to(device)

    data = load_dataset(
        config.dataset,
        "train",
        data_root=config.data_root,
        download=config.download,
        train_size=config.train_size,
    )
    if len(data) < config.batch_size:
        raise GanforgeError(
            f"batch size {config.batch_size} is larger than the {len(data)} training images"
        )
    images = data.images.to(device)
    generator, discriminator = build_models(config.architecture, config.noise_dim, config.init)
    generator, discriminator = generator.to(device), discriminator.to(device)
    betas = (config.beta1, config.beta2)
    gan = GAN(
        generator,
        discriminator,
        make_optimizer(generator, config.lr, betas),
        make_optimizer(discriminator, config.lr, betas),
        OBJECTIVES[config.loss],
        config.noise_dim,
    )

    writer_class = _summary_writer_class() if config.tensorboard else None
    run_dir = _make_run_dir(config)
    log = MetricsLog(run_dir / "metrics.jsonl")
    board = writer_class(log_dir=str(run_dir / "tensorboard")) if writer_class else None
    steps_per_epoch = len(data) // config.batch_size
    total = steps_per_epoch * config.epochs
    total = min(total, config.max_steps) if config.max_steps else total

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
        for it in iterate_training(
            gan,
            images,
            batch_size=config.batch_size,
            epochs=config.epochs,
            max_steps=config.max_steps,
            data_generator=data_generator,
            noise_generator=noise_generator,
        ):
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
