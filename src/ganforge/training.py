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
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel

from ganforge.checkpoint import load_latest_checkpoint, load_weights
from ganforge.config import TrainConfig, config_from_checkpoint, image_shape, resume_config
from ganforge.data import load_dataset, preprocess_images, shuffled_batches
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
    without_sync_batchnorm,
    wrap_for_data_parallel,
)
from ganforge.errors import GanforgeError, TrainingStopped, first_line
from ganforge.interrupts import StopRequests, signal_name
from ganforge.losses import OBJECTIVES, Objective, gradient_penalty, r1_penalty
from ganforge.metrics import ReferenceSet
from ganforge.models import apply_spectral_norm, build_models, sample_noise
from ganforge.monitoring import TrainingMonitor
from ganforge.performance import (
    autocast,
    check_precision,
    fused_adam_supported,
    grad_scaler,
    maybe_compile,
    prepare_for_speed,
)
from ganforge.runs import (
    RECONSTRUCTED,
    RunFolder,
    RunSummary,
    check_run_folder_is_free,
    prepare_run_folder,
    summary_writer_class,
)
from ganforge.sampling import estimate_batchnorm_statistics
from ganforge.vae import VAE_LOSS, VAEEncoder, elbo, reparameterise


def _ema_average(decay: float, every: int = 1):
    """``AveragedModel``'s ``multi_avg_fn`` for an exponential moving average with TensorFlow's
    warm-up (``ExponentialMovingAverage`` with ``num_updates``): the rate per iteration is
    ``min(decay, (1 + s) / (10 + s))`` after ``s`` iterations, so that the average forgets
    the random initial weights within tens of iterations rather than ``1 / (1 − decay)``.
    Averaging once every ``every`` iterations applies that rate ``every`` times
    (``s = every · n`` after ``n`` updates), so ``decay`` keeps its meaning.

    One fused lerp over all the weights (as ``swa_utils.get_ema_multi_avg_fn``, which has no
    warm-up): a per-tensor ``avg_fn`` cost the dcgan generator 47 ms an update on this CPU,
    this 3 ms."""

    def average(averaged: list[torch.Tensor], current: list[torch.Tensor], updates: torch.Tensor):
        seen = updates * every
        rate = ((1 + seen) / (10 + seen)).clamp(max=decay) ** every
        torch._foreach_lerp_(averaged, current, 1 - rate.to(averaged[0].dtype))

    return average


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@dataclass
class GAN:
    """A generator and a discriminator with their optimizers and the objective they play.

    A VAE (``likelihood`` set, ``objective`` ``None``) is held alike: its decoder is the
    generator and its encoder (:class:`~ganforge.vae.VAEEncoder`) the discriminator, so that
    one loop, one checkpoint format and one set of sampling tools serve both.

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
    objective: Objective | None
    noise_dim: int
    precision: str = "fp32"
    compile: bool = False
    shard: Shard = SINGLE_PROCESS
    skip_nonfinite: bool = False  # --on-nan skip-step: drop an update whose gradient is not finite
    n_critic: int = 1  # discriminator updates per generator update
    gp_weight: float = 0.0  # WGAN-GP's λ
    r1_gamma: float = 0.0  # R1's γ
    weight_clip: float = 0.0  # WGAN's clipping of D's weights to [-c, c]
    ema_decay: float = 0.0  # an exponential moving average of G's weights (0: none)
    ema_every: int = 1  # iterations between EMA updates (see iterate_training)
    num_classes: int = 0  # a conditional GAN's label count (0: unconditional)
    likelihood: str | None = None  # a VAE's p(x | z) (None: a GAN)
    noise: str = "uniform"  # the distribution G's noise is drawn from
    g_synced: nn.Module = field(init=False, repr=False)
    d_synced: nn.Module = field(init=False, repr=False)
    g_local: nn.Module = field(init=False, repr=False)
    d_local: nn.Module = field(init=False, repr=False)
    ema: AveragedModel | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.device = next(self.generator.parameters()).device
        # The EMA copy averages G's weights and only samples; see update_ema.
        self.ema = None
        if self.ema_decay:
            average = _ema_average(self.ema_decay, self.ema_every)
            self.ema = AveragedModel(self.generator, multi_avg_fn=average, use_buffers=False)
            self.ema.module = without_sync_batchnorm(self.ema.module)  # see averaged_generator
            self.ema.eval()
        self._ema_statistics_fit = False  # see averaged_generator
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

    def update_ema(self) -> None:
        """Average G's weights into the EMA copy, for ``ema_every`` iterations
        (``AveragedModel`` also copies G's BatchNorm statistics into it;
        :meth:`averaged_generator` replaces them before any use)."""
        self.ema.update_parameters(self.generator)
        self._ema_statistics_fit = False

    def averaged_generator(self) -> AveragedModel | None:
        """The EMA of G (``None`` without one), ready to sample and to checkpoint.

        G's running BatchNorm statistics were gathered under its own, changing weights, and
        do not fit the averaged ones (on the README's three dcgan-ema runs they cost 0.2 to 0.8
        FID). The first call after an update re-estimates them for the averaged weights
        (:func:`~ganforge.sampling.estimate_batchnorm_statistics`, from fixed noise, so a
        resumed run gets the same ones)."""
        if self.ema is not None and not self._ema_statistics_fit:
            estimate_batchnorm_statistics(
                self.ema.module, self.noise_dim, noise=self.noise, device=self.device
            )
            self._ema_statistics_fit = True
        return self.ema

    @property
    def sampler(self) -> nn.Module:
        """The generator that draws samples and is scored: the EMA one when there is one."""
        averaged = self.averaged_generator()
        return averaged.module if averaged is not None else self.generator


def make_optimizer(
    model: nn.Module, config: TrainConfig | None = None, device: torch.device | None = None
) -> torch.optim.Optimizer:
    """The config's optimizer for ``model``: Adam(lr, betas) by default (the assignment's is
    lr 1e-3, betas (0.5, 0.999), :class:`TrainConfig`'s defaults), or RMSprop(lr).

    Adam is fused where the device supports it: all parameters updated in one kernel, the same
    update rule rounded differently, faster than PyTorch's per-parameter loop on the CPU.
    """
    config = config or TrainConfig()
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(model.parameters(), lr=config.lr)
    fused = device is not None and fused_adam_supported(device)
    betas = (config.beta1, config.beta2)
    return torch.optim.Adam(model.parameters(), lr=config.lr, betas=betas, fused=fused or None)


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


STAT_NAMES = ("d_loss", "g_loss", "d_real", "d_fake", "d_penalty")
VAE_STAT_NAMES = ("loss", "reconstruction", "kl")


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
    gan: GAN,
    loss: torch.Tensor,
    optimizers: Sequence[torch.optim.Optimizer],
    scaler: torch.amp.GradScaler,
) -> bool:
    """Backpropagate ``loss`` and step ``optimizers``; False when the update was skipped.

    With ``gan.skip_nonfinite`` an update whose gradient holds a NaN or an infinity is dropped
    (this costs a gradient norm and a device sync). Under fp16 the GradScaler already drops
    those, as loss scaling makes them routine, and it is left to do so.
    """
    scaler.scale(loss).backward()
    if gan.skip_nonfinite and scaler.is_enabled():
        scale = scaler.get_scale()
        for optimizer in optimizers:
            scaler.step(optimizer)
        scaler.update()
        return scaler.get_scale() >= scale  # the scaler backs off when it drops an update
    if gan.skip_nonfinite:
        params = [p for opt in optimizers for group in opt.param_groups for p in group["params"]]
        grads = [p.grad for p in params if p.grad is not None]
        # DDP has averaged the gradients already: every rank takes the same decision.
        if grads and not torch.isfinite(torch.nn.utils.get_total_norm(grads)):
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            return False
    for optimizer in optimizers:
        scaler.step(optimizer)
    scaler.update()
    return True


def _global_draw(
    gan: GAN, draw, global_batch: int, noise_generator: torch.Generator | None
) -> torch.Tensor:
    """``draw(global_batch, generator)`` sliced to this process's part: every process draws the
    whole batch's numbers and keeps its slice, so N processes use a single process's numbers."""
    return draw(global_batch, noise_generator)[gan.shard.local_slice(global_batch)]


def _fake_inputs(
    gan: GAN, like: torch.Tensor, noise_generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """This process's share of a fresh batch of noise and, for a conditional GAN, of labels
    drawn uniformly over the classes (``None`` otherwise); ``like``: its real images."""
    global_batch = like.shape[0] * gan.shard.world_size
    noise = _global_draw(
        gan,
        lambda n, g: sample_noise(
            n,
            gan.noise_dim,
            distribution=gan.noise,
            generator=g,
            device=like.device,
            dtype=like.dtype,
        ),
        global_batch,
        noise_generator,
    )
    if not gan.num_classes:
        return noise, None
    labels = _global_draw(
        gan,
        lambda n, g: torch.randint(gan.num_classes, (n,), generator=g, device=like.device),
        global_batch,
        noise_generator,
    )
    return noise, labels


def _generate(generator: nn.Module, noise: torch.Tensor, labels: torch.Tensor | None):
    return generator(noise) if labels is None else generator(noise, labels)


def _discriminate(
    discriminator: nn.Module, images: torch.Tensor, labels: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(scores, class logits)``: the logits of an AC-GAN discriminator, ``None`` otherwise."""
    out = discriminator(images) if labels is None else discriminator(images, labels)
    return out if isinstance(out, tuple) else (out, None)


def _class_loss(logits: torch.Tensor | None, labels: torch.Tensor | None) -> torch.Tensor | float:
    """AC-GAN's auxiliary cross-entropy (0 for the other discriminators)."""
    return 0.0 if logits is None else F.cross_entropy(_full_precision(logits), labels)


def _discriminator_update(
    gan: GAN,
    real: torch.Tensor,
    real_labels: torch.Tensor | None,
    noise_generator: torch.Generator | None,
) -> tuple[dict[str, torch.Tensor], bool]:
    """One discriminator (critic) update on ``real`` and fresh fake images, with the
    regularisers the GAN asks for; returns its logged tensors and whether it was applied."""
    local_batch = real.shape[0]
    noise, fake_labels = _fake_inputs(gan, real, noise_generator)
    gan.d_optimizer.zero_grad(set_to_none=True)
    with torch.no_grad(), gan.autocast():
        fake = _generate(gan.g_local, noise, fake_labels)
    with gan.autocast():
        if gan.joint_d_pass:
            labels = None if real_labels is None else torch.cat([real_labels, fake_labels])
            scores, logits = _discriminate(
                gan.d_synced, torch.cat([real, fake.to(real.dtype)]), labels
            )
            scores_real, scores_fake = scores[:local_batch], scores[local_batch:]
            logits_real = None if logits is None else logits[:local_batch]
        else:
            scores_real, logits_real = _discriminate(gan.d_synced, real, real_labels)
            scores_fake, _ = _discriminate(gan.d_synced, fake, fake_labels)
    scores_real, scores_fake = _full_precision(scores_real), _full_precision(scores_fake)
    loss = gan.objective.discriminator_loss(scores_real, scores_fake)
    # AC-GAN's classifier learns from real images only. Odena et al. also train it to name the
    # class G was asked for on fakes, but then G and D agree on whatever fakes D finds easy to
    # classify: on MNIST that gave one image per class (conditional accuracy 0.10).
    loss = loss + _class_loss(logits_real, real_labels)
    logged = {
        "d_loss": loss.detach(),
        "d_real": gan.objective.score_summary(scores_real.detach()),
        "d_fake": gan.objective.score_summary(scores_fake.detach()),
    }

    # Penalties differentiate D's input gradient: the plain module, in full precision (neither
    # torch.compile nor DDP takes a double backward).
    def critic(images: torch.Tensor) -> torch.Tensor:
        return _discriminate(gan.discriminator, images, real_labels)[0]

    penalty = torch.zeros((), device=real.device, dtype=loss.dtype)
    if gan.gp_weight:
        mix = _global_draw(
            gan,
            lambda n, g: torch.rand(n, generator=g, device=real.device, dtype=real.dtype),
            local_batch * gan.shard.world_size,
            noise_generator,
        )
        penalty = penalty + gan.gp_weight * gradient_penalty(critic, real, fake.to(real.dtype), mix)
    if gan.r1_gamma:
        penalty = penalty + gan.r1_gamma / 2 * r1_penalty(critic, real)
    if gan.gp_weight or gan.r1_gamma:
        logged["d_penalty"] = penalty.detach()
    updated = _backward_and_update(gan, loss + penalty, [gan.d_optimizer], gan.d_scaler)
    if gan.weight_clip:
        with torch.no_grad():
            for parameter in gan.discriminator.parameters():
                parameter.clamp_(-gan.weight_clip, gan.weight_clip)
    return logged, updated


def training_step(
    gan: GAN,
    real: torch.Tensor | Sequence[torch.Tensor],
    noise_generator: torch.Generator | None = None,
    labels: torch.Tensor | Sequence[torch.Tensor] | None = None,
) -> tuple[dict[str, float], torch.Tensor]:
    """One iteration: ``gan.n_critic`` discriminator updates, each on its own real batch and
    fresh fake images, then a generator update on another fresh noise batch (the assignment
    alternates one of each). :func:`iterate_training` updates the generator's EMA.

    ``real``: this process's images ``(n, C, H, W)`` in ``[-1, 1]`` (the whole batch on one
    process, its shard under torchrun), one batch per discriminator update (a single tensor
    when there is one); ``labels``: their classes ``(n,)`` alike, for a conditional GAN. Returns
    the logged numbers, averaged over processes: the losses, D's outputs on real and fake read
    through the objective (of the last D update), the penalty when one is on, and with
    ``gan.skip_nonfinite`` how many updates were dropped; and the generator's images of the G
    step, ``(n, C, H, W)``, detached.
    """
    reals = [real] if isinstance(real, torch.Tensor) else list(real)
    if len(reals) != gan.n_critic:
        raise ValueError(f"{len(reals)} real batches for {gan.n_critic} discriminator updates")
    if gan.num_classes and labels is None:
        raise ValueError("a conditional GAN trains on labelled images: pass labels")
    if labels is None:
        label_batches = [None] * len(reals)
    else:
        label_batches = [labels] if isinstance(labels, torch.Tensor) else list(labels)
    skipped = 0
    for batch, batch_labels in zip(reals, label_batches, strict=True):
        logged, updated = _discriminator_update(gan, batch, batch_labels, noise_generator)
        skipped += not updated

    noise, fake_labels = _fake_inputs(gan, reals[-1], noise_generator)
    gan.g_optimizer.zero_grad(set_to_none=True)
    with _frozen(gan.discriminator):  # D's weight gradients would go unused
        with gan.autocast():
            fake = _generate(gan.g_synced, noise, fake_labels)
            scores_g, logits_g = _discriminate(gan.d_local, fake, fake_labels)
        g_loss = gan.objective.generator_loss(_full_precision(scores_g))
        g_loss = g_loss + _class_loss(logits_g, fake_labels)
        skipped += not _backward_and_update(gan, g_loss, [gan.g_optimizer], gan.g_scaler)

    logged["g_loss"] = g_loss.detach()
    names = [name for name in STAT_NAMES if name in logged]
    stats = torch.stack([logged[name] for name in names])
    stats = mean_over_ranks(stats, gan.shard).tolist()  # one device sync per step
    stats = dict(zip(names, stats, strict=True))
    if gan.skip_nonfinite:
        stats["skipped_updates"] = skipped
    return stats, _full_precision(fake.detach())


def vae_training_step(
    gan: GAN,
    real: torch.Tensor | Sequence[torch.Tensor],
    noise_generator: torch.Generator | None = None,
    labels: None = None,
) -> tuple[dict[str, float], torch.Tensor]:
    """One VAE update (``gan.likelihood`` set): encode ``real`` ``(n, C, H, W)`` in ``[-1, 1]``
    (this process's share of the batch), decode one reparameterised draw of each posterior,
    and step the encoder and decoder together on ``−ELBO`` (:func:`ganforge.vae.elbo`).

    Returns the batch means, over processes, of ``loss`` (``−ELBO``), ``reconstruction``
    (``−log p(x | z)``) and ``kl``, in nats per image (and ``skipped_updates`` with
    ``gan.skip_nonfinite``); and the reconstructions ``(n, C, H, W)``, detached.
    """
    (real,) = [real] if isinstance(real, torch.Tensor) else list(real)
    encoder = gan.discriminator
    standard_normal = _global_draw(
        gan,
        lambda n, g: sample_noise(
            n, gan.noise_dim, distribution="normal", generator=g, device=real.device
        ),
        real.shape[0] * gan.shard.world_size,
        noise_generator,
    )
    gan.g_optimizer.zero_grad(set_to_none=True)
    gan.d_optimizer.zero_grad(set_to_none=True)
    with gan.autocast():
        mean, log_var = gan.d_synced(real)
        code = reparameterise(_full_precision(mean), _full_precision(log_var), standard_normal)
        decoded = gan.g_synced(code)
    elbo_per_image, reconstruction, kl = elbo(
        real,
        _full_precision(decoded),
        _full_precision(mean),
        _full_precision(log_var),
        gan.likelihood,
        encoder.log_sigma,
    )
    loss = -elbo_per_image.mean()
    updated = _backward_and_update(gan, loss, [gan.g_optimizer, gan.d_optimizer], gan.g_scaler)
    stats = torch.stack([loss.detach(), reconstruction.detach().mean(), kl.detach().mean()])
    stats = dict(zip(VAE_STAT_NAMES, mean_over_ranks(stats, gan.shard).tolist(), strict=True))
    if gan.skip_nonfinite:
        stats["skipped_updates"] = int(not updated)
    return stats, _full_precision(decoded.detach())


def steps_per_epoch(num_images: int, batch_size: int, n_critic: int = 1) -> int:
    """Iterations in one pass over ``num_images``: each takes ``n_critic`` full batches (the
    last incomplete ones are dropped)."""
    return num_images // (batch_size * n_critic)


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
    labels: torch.Tensor | None = None,
) -> Iterator[Iteration]:
    """Train over ``epochs`` passes of ``images`` (uint8 ``(N, C, H, W)``, on the models' device).

    Each epoch draws a fresh permutation from ``data_generator`` (or goes in order when
    ``shuffle`` is false) and drops the last incomplete batch. ``batch_size`` is the global
    batch; under torchrun each process trains on its slice of it. ``max_steps`` counts from
    the run's start. ``labels`` ``(N,)``, on the same device: the images' classes, which a
    conditional GAN trains on.

    ``start_step`` continues a run after that many steps; ``data_generator`` must then hold
    the :attr:`Iteration.resume_data_state` of that step, and the networks, optimizers and
    ``noise_generator`` their states after it: the steps that follow are the uninterrupted
    run's, bit for bit.
    """
    per_epoch = steps_per_epoch(images.shape[0], batch_size, gan.n_critic)
    step_fn = vae_training_step if gan.likelihood else training_step
    step = start_step
    for epoch in range(start_step // max(per_epoch, 1), epochs):
        if per_epoch == 0 or (max_steps is not None and step >= max_steps):
            return
        epoch_data_state = data_generator.get_state() if data_generator is not None else None
        batches = list(shuffled_batches(images.shape[0], batch_size, data_generator, shuffle))
        # This process's slice of every batch, grouped by step (n_critic batches each) and
        # moved to the device in one copy per epoch (a copy per step would make a GPU wait).
        indices = torch.stack(batches[: per_epoch * gan.n_critic])[
            :, gan.shard.local_slice(batch_size)
        ]
        indices = indices.reshape(per_epoch, gan.n_critic, -1).to(images.device)
        for i in range(step - epoch * per_epoch, per_epoch):
            if max_steps is not None and step >= max_steps:
                return
            reals = [preprocess_images(images[index]) for index in indices[i]]
            classes = None if labels is None else [labels[index] for index in indices[i]]
            stats, fake = step_fn(gan, reals, noise_generator, classes)
            step += 1
            # The EMA takes G after its first iteration, then averages it every ema_every-th,
            # counted from the run's start so that a resumed run averages the same ones (a
            # run's last iterations after a multiple of ema_every are left out).
            if gan.ema is not None and (step % gan.ema_every == 0 or not gan.ema.n_averaged):
                gan.update_ema()
            end_of_epoch = i == per_epoch - 1
            if end_of_epoch and data_generator is not None:
                epoch_data_state = data_generator.get_state()  # the next epoch begins here
            yield Iteration(step, epoch, end_of_epoch, stats, fake, epoch_data_state)


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


def build_gan(config: TrainConfig, device: torch.device, shard: Shard = SINGLE_PROCESS) -> GAN:
    """The networks, optimizers and objective a config describes, ready to train on ``device``.

    Weights come from torch's global generator: seed it first for a reproducible run.
    """
    generator, discriminator = build_models(
        config.architecture,
        config.noise_dim,
        config.init,
        config.conditioning,
        config.num_classes,
        image_shape(config),
    )
    vae = config.loss == VAE_LOSS
    if vae:  # the discriminator's layers, read out as the posterior, are the encoder
        discriminator = VAEEncoder(discriminator, config.noise_dim, config.likelihood)
    if config.spectral_norm:
        discriminator = apply_spectral_norm(discriminator)
    if config.sync_bn:
        generator = use_sync_batchnorm(generator, device)
        discriminator = use_sync_batchnorm(discriminator, device)
    generator = prepare_for_speed(generator, device)
    discriminator = prepare_for_speed(discriminator, device)
    return GAN(
        generator,
        discriminator,
        make_optimizer(generator, config, device),
        make_optimizer(discriminator, config, device),
        None if vae else OBJECTIVES[config.loss],
        config.noise_dim,
        precision=config.precision,
        compile=config.compile,
        shard=shard,
        skip_nonfinite=config.on_nan == "skip-step",
        n_critic=config.n_critic,
        gp_weight=config.gp_weight,
        r1_gamma=config.r1_gamma,
        weight_clip=config.weight_clip,
        ema_decay=config.ema,
        ema_every=config.ema_every,
        num_classes=config.num_classes if config.conditioning != "none" else 0,
        likelihood=config.likelihood if vae else None,
        noise=config.noise,
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
    if shard.is_distributed and (config.gp_weight or config.r1_gamma):
        raise GanforgeError(
            "gradient penalties (gp_weight, r1_gamma) need a double backward, which DDP does "
            "not support: train them in one process"
        )
    if config.batch_size % shard.world_size:
        raise GanforgeError(
            f"batch size {config.batch_size} does not split evenly over {shard.world_size} "
            "processes; the batch size is the global batch"
        )
    if not resume and config.out:  # every rank, so that all stop alike (a shared disk)
        check_run_folder_is_free(Path(config.out))
    if config.tensorboard:
        summary_writer_class()  # tensorboard is installed, or say so before any work
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


def _load_resume_checkpoint(run_dir: Path, device: torch.device, main: bool) -> dict:
    """The checkpoint to resume from. Rank 0 renames the newer ones that did not load to
    ``*.broken``, so that the rotation of the checkpoints to come never keeps them instead."""
    checkpoint, skipped = load_latest_checkpoint(run_dir)
    for path, why in skipped if main else ():
        print(f"ganforge: warning: skipped a checkpoint: {why}", file=sys.stderr)
        with contextlib.suppress(OSError):
            path.rename(path.with_name(path.name + ".broken"))
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
        if gan.ema is not None:
            gan.ema.load_state_dict(checkpoint["generator_ema"])
        rng = checkpoint["rng_states"]
        noise_generator.set_state(rng["noise"])
        if rng["data"] is not None:
            data_generator.set_state(rng["data"])
        if shard.is_main:  # the other ranks' global streams are seed + rank, as at the start
            torch.set_rng_state(rng["torch"])
            if rng.get("cuda") is not None:
                torch.cuda.set_rng_state(rng["cuda"], gan.device)
    except (ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise GanforgeError(
            f"{path}: its training state cannot be restored ({first_line(exc)})"
        ) from None


def _train(config: TrainConfig, quiet: bool, shard: Shard, device: torch.device, resume: bool):
    main = shard.is_main
    # Before any seeding: building the evaluator must not shift the training RNG streams.
    reference, no_evaluation = _training_reference(config) if main else (None, None)
    # Weights: rank 0's initialisation is the run's (DDP copies it to every rank).
    torch.manual_seed(config.seed + shard.rank)
    data_generator = torch.Generator().manual_seed(config.seed)
    noise_generator = torch.Generator(device).manual_seed(config.seed + 1)
    checkpoint = _load_resume_checkpoint(Path(config.out), device, main) if resume else None

    # The networks' image shape, fixed in the run's config (and so in its checkpoints).
    channels, size, _ = image_shape(config)
    config = dataclasses.replace(config, channels=channels, image_size=size)
    if shard.local_rank != 0:
        barrier(shard)  # local rank 0 fetches or unpacks the data first
    data = load_dataset(
        config.dataset,
        "train",
        data_root=config.data_root,
        download=config.download,
        train_size=config.train_size,
        image_shape=(channels, size, size),
    )
    if shard.local_rank == 0:
        barrier(shard)
    if len(data) < config.batch_size:
        raise GanforgeError(
            f"batch size {config.batch_size} is larger than the {len(data)} training images"
        )
    if no_evaluation and not quiet:  # said once the data is known to be good
        print(no_evaluation, file=sys.stderr)
    per_epoch = steps_per_epoch(len(data), config.batch_size, config.n_critic)
    if per_epoch == 0:
        raise GanforgeError(
            f"{config.n_critic} discriminator updates of batch {config.batch_size} need "
            f"{config.n_critic * config.batch_size} images per iteration; there are {len(data)}"
        )
    if config.conditioning != "none":
        if len(data.classes) < 2:
            raise GanforgeError(
                f"conditioning {config.conditioning} needs labelled images; {config.dataset} has "
                "one class (a folder: dataset takes its classes from sub-folders)"
            )
        config = dataclasses.replace(config, num_classes=config.num_classes or len(data.classes))
    total = per_epoch * config.epochs
    total = min(total, config.max_steps) if config.max_steps else total
    start_step = checkpoint["step"] if checkpoint else 0
    if checkpoint:
        _check_resumable(config, start_step, total)
    images = data.images.to(device)
    gan = build_gan(config, device, shard)
    if checkpoint:
        _restore(gan, checkpoint, data_generator, noise_generator, shard)
    monitor = TrainingMonitor(d_wins_below=gan.objective.d_wins_below if gan.objective else None)
    if checkpoint:
        monitor.load_state_dict(checkpoint["progress"]["monitor"])

    folder, error = None, None
    if main:
        try:
            run_dir = prepare_run_folder(config, start_step if checkpoint else None)
            folder = RunFolder(
                config,
                run_dir,
                gan,
                monitor,
                reference=reference,
                examples=data.images[:RECONSTRUCTED],
                noise_generator=noise_generator,
                per_epoch=per_epoch,
                total=total,
                start_step=start_step,
                resumed_from=checkpoint["path"] if checkpoint else None,
                past=checkpoint["progress"] if checkpoint else {},
                quiet=quiet,
            )
        except GanforgeError as exc:
            error = str(exc)
    share_main_outcome(shard, error)
    batches = iterate_training(
        gan,
        images,
        batch_size=config.batch_size,
        epochs=config.epochs,
        max_steps=config.max_steps,
        data_generator=data_generator,
        noise_generator=noise_generator,
        start_step=start_step,
        labels=data.labels.to(device) if gan.num_classes else None,
    )
    last = _run_loop(gan, batches, monitor, folder, shard, data_generator.get_state())
    return folder.finish(last, shard.world_size) if folder is not None else None


def _run_loop(
    gan: GAN,
    batches: Iterator[Iteration],
    monitor: TrainingMonitor,
    folder: RunFolder | None,
    shard: Shard,
    start_data_state: torch.Tensor,
) -> Iteration | None:
    """Every rank's loop over the iterations: rank 0 (``folder``) records them, every rank
    checks them for NaNs and stops with the others on SIGINT or SIGTERM. Returns the last
    iteration (``None`` when there was none left to train)."""
    it = None
    guard = folder.guard() if folder is not None else contextlib.nullcontext()
    with StopRequests() as stop, guard:
        if folder is not None:
            folder.begin(start_data_state)
        for it in batches:
            if folder is not None:
                folder.log_step(it)  # logged before the check, so that the log shows a NaN
            monitor.check_step(it.step, it.stats, gan.generator, gan.discriminator)
            stopping = any_rank(stop.requested, shard, gan.device)
            if folder is not None:
                folder.after_step(it, stopping)
            if stopping:
                signum = stop.signum or signal.SIGTERM
                message = folder.stop_message(signal_name(signum), it.step) if folder else ""
                raise TrainingStopped(message, signum)
    return it


def _check_resumable(config: TrainConfig, step: int, total: int) -> None:
    """Refuse to resume a run that has nothing left to do, or that is already past the end,
    naming the limit that ends it."""
    run_dir = Path(config.out)
    limit = "--max-steps" if config.max_steps and config.max_steps <= total else "--epochs"
    if step > total:
        raise GanforgeError(
            f"{run_dir} is at step {step}, past the {total} steps that {limit} now allows; "
            f"give a larger {limit} to train on"
        )
    if step == total and (run_dir / "summary.json").is_file():
        raise GanforgeError(
            f"{run_dir} has finished all its {total} steps; give a larger {limit} to train on"
        )
