"""One training iteration: the assignment's alternating D and G updates, or a VAE's update.

The GAN step computes the assignment's losses and updates without the work whose result it never
uses: the generator's forward of the D step runs without autograd, D's weight gradients are not
computed during the G step, and when D has no BatchNorm it scores real and fake images in one
pass (the same numbers, one larger matmul).

Both steps take this process's real images ``(n, C, H, W)`` in ``[-1, 1]`` and return the logged
numbers (averaged over processes) and the images the generator made in the step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.nets import sample_noise
from ganforge.objectives import elbo, gradient_penalty, r1_penalty, reparameterise
from ganforge.training.distributed import mean_over_ranks
from ganforge.training.state import TrainedModels

STAT_NAMES = ("d_loss", "g_loss", "d_real", "d_fake", "d_penalty", "ada_r")
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
    models: TrainedModels,
    loss: torch.Tensor,
    optimizers: Sequence[torch.optim.Optimizer],
    scaler: torch.amp.GradScaler,
) -> bool:
    """Backpropagate ``loss`` and step ``optimizers``; False when the update was skipped.

    With ``models.skip_nonfinite`` an update whose gradient holds a NaN or an infinity is dropped
    (this costs a gradient norm and a device sync). Under fp16 the GradScaler already drops
    those, as loss scaling makes them routine, and it is left to do so.
    """
    scaler.scale(loss).backward()
    if models.skip_nonfinite and scaler.is_enabled():
        scale = scaler.get_scale()
        for optimizer in optimizers:
            scaler.step(optimizer)
        scaler.update()
        return scaler.get_scale() >= scale  # the scaler backs off when it drops an update
    if models.skip_nonfinite:
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
    models: TrainedModels, draw, global_batch: int, noise_generator: torch.Generator | None
) -> torch.Tensor:
    """``draw(global_batch, generator)`` sliced to this process's part: every process draws the
    whole batch's numbers and keeps its slice, so N processes use a single process's numbers."""
    return draw(global_batch, noise_generator)[models.shard.local_slice(global_batch)]


def _fake_inputs(
    models: TrainedModels, like: torch.Tensor, noise_generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """This process's share of a fresh batch of noise and, for a conditional GAN, of labels
    drawn uniformly over the classes (``None`` otherwise); ``like``: its real images."""
    global_batch = like.shape[0] * models.shard.world_size
    noise = _global_draw(
        models,
        lambda n, g: sample_noise(
            n,
            models.config.noise_dim,
            distribution=models.config.noise,
            generator=g,
            device=like.device,
            dtype=like.dtype,
        ),
        global_batch,
        noise_generator,
    )
    if not models.num_classes:
        return noise, None
    labels = _global_draw(
        models,
        lambda n, g: torch.randint(models.num_classes, (n,), generator=g, device=like.device),
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


def _drawer(models: TrainedModels, local_n: int, noise_generator: torch.Generator | None):
    """``draw(make)``: this process's part of ``make(global_n, generator)``, a draw for the
    whole global batch of which this process holds ``local_n`` images."""
    global_n = local_n * models.shard.world_size
    return lambda make: _global_draw(models, make, global_n, noise_generator)


def _as_d_sees(
    models: TrainedModels, images: torch.Tensor, noise_generator: torch.Generator | None
) -> torch.Tensor:
    """``images`` as D sees them: augmented (``--augment``) and with instance noise
    (``--instance-noise``), both differentiable, so that G's gradient flows through them."""
    augmentation, sigma = models.augmentation, models.instance_noise
    if augmentation is None and not sigma:
        return images
    draw = _drawer(models, images.shape[0], noise_generator)
    if augmentation is not None:
        images = augmentation(images, draw)
    if sigma:
        shape, device, dtype = images.shape[1:], images.device, images.dtype
        noise = draw(lambda n, g: torch.randn(n, *shape, generator=g, device=device, dtype=dtype))
        images = images + sigma * noise
    return images


def _mirrored(
    models: TrainedModels, images: torch.Tensor, noise_generator: torch.Generator | None
) -> torch.Tensor:
    """``--xflip``: each training image mirrored left to right with probability 1/2."""
    if not models.config.xflip:
        return images
    draw = _drawer(models, images.shape[0], noise_generator)
    flip = draw(lambda n, g: torch.rand(n, generator=g, device=images.device) < 0.5)
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def _d_targets(
    models: TrainedModels, local_n: int, device: torch.device, g: torch.Generator | None
) -> tuple[float | torch.Tensor, float | torch.Tensor] | None:
    """D's labels for real and fake images when the config changes them (``None`` otherwise):
    ``real_label`` for real (one-sided smoothing), and with ``flip_labels`` each image's label
    swapped with that probability."""
    config = models.config
    if config.real_label == 1.0 and not config.flip_labels:
        return None
    real_target: float | torch.Tensor = config.real_label
    fake_target: float | torch.Tensor = 0.0
    if config.flip_labels:
        draw = _drawer(models, local_n, g)

        def flips() -> torch.Tensor:
            return draw(lambda n, gen: torch.rand(n, generator=gen, device=device)) < (
                config.flip_labels
            )

        real_flipped, fake_flipped = flips(), flips()
        zero = torch.zeros((), device=device)
        label = torch.full((), config.real_label, device=device)
        real_target = torch.where(real_flipped, zero, label)
        fake_target = torch.where(fake_flipped, label, zero)
    return real_target, fake_target


def _discriminator_update(
    models: TrainedModels,
    real: torch.Tensor,
    real_labels: torch.Tensor | None,
    noise_generator: torch.Generator | None,
) -> tuple[dict[str, torch.Tensor], bool]:
    """One discriminator (critic) update on ``real`` and fresh fake images, with the
    regularisers the GAN asks for; returns its logged tensors and whether it was applied."""
    local_batch = real.shape[0]
    noise, fake_labels = _fake_inputs(models, real, noise_generator)
    models.partner_optimizer.zero_grad(set_to_none=True)
    with torch.no_grad(), models.autocast():
        fake = _generate(models.g_local, noise, fake_labels)
    real = _as_d_sees(models, real, noise_generator)
    fake = _as_d_sees(models, fake.to(real.dtype), noise_generator)
    with models.autocast():
        if models.joint_d_pass:
            labels = None if real_labels is None else torch.cat([real_labels, fake_labels])
            scores, logits = _discriminate(models.partner_synced, torch.cat([real, fake]), labels)
            scores_real, scores_fake = scores[:local_batch], scores[local_batch:]
            logits_real = None if logits is None else logits[:local_batch]
        else:
            scores_real, logits_real = _discriminate(models.partner_synced, real, real_labels)
            scores_fake, _ = _discriminate(models.partner_synced, fake, fake_labels)
    scores_real, scores_fake = _full_precision(scores_real), _full_precision(scores_fake)
    targets = _d_targets(models, local_batch, real.device, noise_generator)
    if targets is None:
        loss = models.objective.discriminator_loss(scores_real, scores_fake)
    else:
        loss = models.objective.labelled_discriminator_loss(scores_real, scores_fake, *targets)
    # AC-GAN's classifier learns from real images only. Odena et al. also train it to name the
    # class G was asked for on fakes, but then G and D agree on whatever fakes D finds easy to
    # classify: on MNIST that gave one image per class (conditional accuracy 0.10).
    loss = loss + _class_loss(logits_real, real_labels)
    logged = {
        "d_loss": loss.detach(),
        "d_real": models.objective.score_summary(scores_real.detach()),
        "d_fake": models.objective.score_summary(scores_fake.detach()),
    }
    if models.ada is not None:  # ADA's overfitting heuristic, r_t = E[sign(D(x_real))]
        logged["ada_r"] = torch.sign(scores_real.detach() - models.objective.real_side).mean()

    # Penalties differentiate D's input gradient: the plain module, in full precision (neither
    # torch.compile nor DDP takes a double backward). They are taken at the images D saw, as
    # augmented: the gradient D is kept smooth at is the one its inputs meet.
    def critic(images: torch.Tensor) -> torch.Tensor:
        return _discriminate(models.partner, images, real_labels)[0]

    penalty = torch.zeros((), device=real.device, dtype=loss.dtype)
    if models.config.gp_weight:
        mix = _global_draw(
            models,
            lambda n, g: torch.rand(n, generator=g, device=real.device, dtype=real.dtype),
            local_batch * models.shard.world_size,
            noise_generator,
        )
        penalty = penalty + models.config.gp_weight * gradient_penalty(critic, real, fake, mix)
    if models.config.r1_gamma:
        penalty = penalty + models.config.r1_gamma / 2 * r1_penalty(critic, real)
    if models.config.gp_weight or models.config.r1_gamma:
        logged["d_penalty"] = penalty.detach()
    updated = _backward_and_update(
        models, loss + penalty, [models.partner_optimizer], models.partner_scaler
    )
    if models.config.weight_clip:
        with torch.no_grad():
            for parameter in models.partner.parameters():
                parameter.clamp_(-models.config.weight_clip, models.config.weight_clip)
    return logged, updated


def gan_step(
    models: TrainedModels,
    real: torch.Tensor | Sequence[torch.Tensor],
    noise_generator: torch.Generator | None = None,
    labels: torch.Tensor | Sequence[torch.Tensor] | None = None,
) -> tuple[dict[str, float], torch.Tensor]:
    """One GAN iteration: ``n_critic`` discriminator updates, each on its own real batch and
    fresh fake images, then a generator update on another fresh noise batch (the assignment
    alternates one of each). The loop (:mod:`ganforge.training.loop`) updates the generator's EMA.

    ``real``: this process's images ``(n, C, H, W)`` in ``[-1, 1]`` (the whole batch on one
    process, its shard under torchrun), one batch per discriminator update (a single tensor
    when there is one); ``labels``: their classes ``(n,)`` alike, for a conditional GAN. Returns
    the logged numbers, averaged over processes: the losses, D's outputs on real and fake read
    through the objective (of the last D update), the penalty when one is on, and with
    ``models.skip_nonfinite`` how many updates were dropped; and the generator's images of the G
    step, ``(n, C, H, W)``, detached.
    """
    reals = [real] if isinstance(real, torch.Tensor) else list(real)
    if len(reals) != models.config.n_critic:
        raise ValueError(
            f"{len(reals)} real batches for {models.config.n_critic} discriminator updates"
        )
    if models.num_classes and labels is None:
        raise ValueError("a conditional GAN trains on labelled images: pass labels")
    if labels is None:
        label_batches = [None] * len(reals)
    else:
        label_batches = [labels] if isinstance(labels, torch.Tensor) else list(labels)
    skipped, ada_r = 0, []
    for batch, batch_labels in zip(reals, label_batches, strict=True):
        batch = _mirrored(models, batch, noise_generator)
        logged, updated = _discriminator_update(models, batch, batch_labels, noise_generator)
        skipped += not updated
        if models.ada is not None:
            ada_r.append(logged.pop("ada_r"))

    noise, fake_labels = _fake_inputs(models, reals[-1], noise_generator)
    models.generator_optimizer.zero_grad(set_to_none=True)
    with _frozen(models.partner):  # D's weight gradients would go unused
        with models.autocast():
            fake = _generate(models.g_synced, noise, fake_labels)
            seen = _as_d_sees(models, fake, noise_generator)
            scores_g, logits_g = _discriminate(models.partner_local, seen, fake_labels)
        g_loss = models.objective.generator_loss(_full_precision(scores_g))
        g_loss = g_loss + _class_loss(logits_g, fake_labels)
        skipped += not _backward_and_update(
            models, g_loss, [models.generator_optimizer], models.generator_scaler
        )

    logged["g_loss"] = g_loss.detach()
    if models.ada is not None:
        logged["ada_r"] = torch.stack(ada_r).mean()
    names = [name for name in STAT_NAMES if name in logged]
    stats = torch.stack([logged[name] for name in names])
    stats = mean_over_ranks(stats, models.shard).tolist()  # one device sync per step
    stats = dict(zip(names, stats, strict=True))
    if models.ada is not None:
        stats["ada_p"] = models.ada.p  # the p this step augmented with
        models.ada.observe(stats["ada_r"], reals[-1].shape[0] * models.shard.world_size)
    if models.skip_nonfinite:
        stats["skipped_updates"] = skipped
    return stats, _full_precision(fake.detach())


def vae_step(
    models: TrainedModels,
    real: torch.Tensor | Sequence[torch.Tensor],
    noise_generator: torch.Generator | None = None,
    labels: None = None,
) -> tuple[dict[str, float], torch.Tensor]:
    """One VAE update: encode ``real`` ``(n, C, H, W)`` in ``[-1, 1]`` (this process's share of
    the batch), decode one reparameterised draw of each posterior, and step the encoder and
    decoder together on ``−ELBO`` (:func:`ganforge.objectives.elbo`).

    Returns the batch means, over processes, of ``loss`` (``−ELBO``), ``reconstruction``
    (``−log p(x | z)``) and ``kl``, in nats per image (and ``skipped_updates`` with
    ``models.skip_nonfinite``); and the reconstructions ``(n, C, H, W)``, detached.
    """
    (real,) = [real] if isinstance(real, torch.Tensor) else list(real)
    real = _mirrored(models, real, noise_generator)
    encoder = models.encoder
    standard_normal = _global_draw(
        models,
        lambda n, g: sample_noise(
            n, models.config.noise_dim, distribution="normal", generator=g, device=real.device
        ),
        real.shape[0] * models.shard.world_size,
        noise_generator,
    )
    models.generator_optimizer.zero_grad(set_to_none=True)
    models.partner_optimizer.zero_grad(set_to_none=True)
    with models.autocast():
        mean, log_var = models.partner_synced(real)
        code = reparameterise(_full_precision(mean), _full_precision(log_var), standard_normal)
        decoded = models.g_synced(code)
    elbo_per_image, reconstruction, kl = elbo(
        real,
        _full_precision(decoded),
        _full_precision(mean),
        _full_precision(log_var),
        models.config.likelihood,
        encoder.log_sigma,
    )
    loss = -elbo_per_image.mean()
    updated = _backward_and_update(
        models,
        loss,
        [models.generator_optimizer, models.partner_optimizer],
        models.generator_scaler,
    )
    stats = torch.stack([loss.detach(), reconstruction.detach().mean(), kl.detach().mean()])
    stats = dict(zip(VAE_STAT_NAMES, mean_over_ranks(stats, models.shard).tolist(), strict=True))
    if models.skip_nonfinite:
        stats["skipped_updates"] = int(not updated)
    return stats, _full_precision(decoded.detach())


def step_function(models: TrainedModels):
    """The iteration ``models`` train by: :func:`vae_step` for a VAE, :func:`gan_step` else."""
    return vae_step if models.is_vae else gan_step
