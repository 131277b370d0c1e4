"""One training iteration: the assignment's alternating D and G updates, or a VAE's update.

:func:`build_step` builds, once per run, the step of the run's model family (:class:`GanStep`
or :class:`VaeStep`) from the parts its settings switch on (:mod:`ganforge.training.parts`):
what D sees, D's targets, the regularisers, and one updater. A step is then called once per
iteration with this process's real images ``(n, C, H, W)`` in ``[-1, 1]`` and returns the logged
numbers (averaged over processes) and the images the generator made in the step.

The GAN step skips the work whose result it never uses: the generator's forward of the D step
runs without autograd, D's weight gradients are not computed during the G step, and when D has
no BatchNorm it scores real and fake images in one pass (the same numbers, one larger matmul).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from ganforge.errors import GanforgeError
from ganforge.nets import generate_images, sample_noise
from ganforge.objectives import OBJECTIVES, Objective, elbo, reparameterise
from ganforge.training.distributed import (
    SINGLE_PROCESS,
    Shard,
    mean_over_ranks,
    wrap_for_data_parallel,
)
from ganforge.training.parts import (
    REGULARISERS,
    VIEWS,
    Draws,
    Player,
    Regulariser,
    Scored,
    Targets,
    Updater,
    View,
    XFlip,
    full_precision,
    parts_of,
)
from ganforge.training.performance import autocast, maybe_compile
from ganforge.training.state import TrainedModels, has_batchnorm

STAT_NAMES = ("d_loss", "g_loss", "d_real", "d_fake", "d_penalty", "ada_r")
VAE_STAT_NAMES = ("loss", "reconstruction", "kl")
#: What a step returns: the logged numbers and the generator's images ``(n, C, H, W)``.
StepResult = tuple[dict[str, float], torch.Tensor]


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


def _players(models: TrainedModels, shard: Shard) -> tuple[Player, Player]:
    """The generator and its partner as a step runs them (:class:`Player`)."""
    compile_ = models.config.compile

    def player(module, optimizer, scaler) -> Player:
        local = maybe_compile(module, compile_)
        synced = local
        if shard.is_distributed:
            wrapped = wrap_for_data_parallel(module, shard, models.device)
            synced = maybe_compile(wrapped, compile_)
        return Player(module, synced, local, optimizer, scaler)

    return (
        player(models.generator, models.generator_optimizer, models.generator_scaler),
        player(models.partner, models.partner_optimizer, models.partner_scaler),
    )


def _batches(
    batches: torch.Tensor | Sequence[torch.Tensor] | None,
) -> list[torch.Tensor] | None:
    """One batch or a sequence of them → a list (``None`` stays ``None``)."""
    if batches is None:
        return None
    return [batches] if isinstance(batches, torch.Tensor) else list(batches)


def _discriminate(
    discriminator: nn.Module, images: torch.Tensor, labels: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(scores, class logits)``: the logits of an AC-GAN discriminator, ``None`` otherwise
    (the discriminator's side of the conditional fork; the generator's is
    :func:`~ganforge.nets.generate_images`)."""
    out = discriminator(images) if labels is None else discriminator(images, labels)
    return out if isinstance(out, tuple) else (out, None)


class GanStep:
    """A GAN iteration: ``n_critic`` discriminator updates, each on its own real batch and fresh
    fake images, then a generator update on another fresh noise batch (the assignment
    alternates one of each). Build it with :func:`build_step`."""

    def __init__(
        self,
        models: TrainedModels,
        objective: Objective,
        draws: Draws,
        *,
        xflip: XFlip | None,
        views: Sequence[View],
        targets: Targets | None,
        regularisers: Sequence[Regulariser],
        updater: Updater,
        shard: Shard,
    ) -> None:
        config = models.config
        self.models, self.objective, self.draws = models, objective, draws
        self.xflip, self.views, self.targets = xflip, list(views), targets
        self.regularisers, self.update, self.shard = list(regularisers), updater, shard
        self.n_critic, self.num_classes = config.n_critic, models.num_classes
        self.noise_dim, self.noise = config.noise_dim, config.noise
        self.ada = models.ada
        self.autocast = lambda: autocast(models.device, config.precision)
        self.g, self.d = _players(models, shard)
        # With BatchNorm in D, one pass over real and fake would mix their batch statistics.
        self.joint_d_pass = not has_batchnorm(models.partner)
        if shard.is_distributed and not self.joint_d_pass:
            raise GanforgeError(
                "distributed training needs a discriminator without BatchNorm (DDP allows one "
                "forward per backward)"
            )

    def __call__(
        self,
        real: torch.Tensor | Sequence[torch.Tensor],
        labels: torch.Tensor | Sequence[torch.Tensor] | None = None,
        progress: float = 0.0,
    ) -> StepResult:
        """One iteration on ``real``: this process's images ``(n, C, H, W)`` in ``[-1, 1]``,
        one batch per discriminator update (a tensor when there is one); ``labels``: their
        classes ``(n,)`` alike, for a conditional GAN; ``progress``: the part of the planned
        run done before it, in ``[0, 1]``.

        Returns the logged numbers, averaged over processes (the losses, D's outputs on real and
        fake read through the objective, of the last D update; the penalty when one is on;
        ADA's r_t and p; with ``--on-nan skip-step`` how many updates were dropped) and G's
        images of the G step, detached."""
        reals, label_batches = _batches(real), _batches(labels)
        if len(reals) != self.n_critic:
            raise ValueError(f"{len(reals)} real batches for {self.n_critic} discriminator updates")
        if self.num_classes and label_batches is None:
            raise ValueError("a conditional GAN trains on labelled images: pass labels")
        skipped, ada_r = 0, []
        for batch, batch_labels in zip(reals, label_batches or [None] * len(reals), strict=True):
            if self.xflip is not None:
                batch = self.xflip(batch, self.draws)
            logged, updated = self.discriminator_update(batch, batch_labels, progress)
            skipped += not updated
            if self.ada is not None:
                ada_r.append(logged.pop("ada_r"))
        logged["g_loss"], updated, fake = self.generator_update(reals[-1], progress)
        skipped += not updated

        if self.ada is not None:
            logged["ada_r"] = torch.stack(ada_r).mean()
        names = [name for name in STAT_NAMES if name in logged]
        values = mean_over_ranks(torch.stack([logged[name] for name in names]), self.shard)
        stats = dict(zip(names, values.tolist(), strict=True))  # one device sync per step
        if self.ada is not None:
            stats["ada_p"] = self.ada.p  # the p this step augmented with
            self.ada.observe(stats["ada_r"], self.draws.global_batch(reals[-1].shape[0]))
        if self.update.skip_nonfinite:
            stats["skipped_updates"] = skipped
        return stats, full_precision(fake.detach())

    def fake_inputs(
        self, like: torch.Tensor, draws: Draws
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This process's share of a fresh batch of noise and, for a conditional GAN, of labels
        drawn uniformly over the classes (``None`` otherwise); ``like``: its real images."""
        device, dtype = like.device, like.dtype
        noise = draws(
            like.shape[0],
            lambda n, g: sample_noise(
                n, self.noise_dim, distribution=self.noise, generator=g, device=device, dtype=dtype
            ),
        )
        if not self.num_classes:
            return noise, None
        classes = self.num_classes
        labels = draws(
            like.shape[0], lambda n, g: torch.randint(classes, (n,), generator=g, device=device)
        )
        return noise, labels

    def as_d_sees(self, images: torch.Tensor, draws: Draws, progress: float) -> torch.Tensor:
        for view in self.views:
            images = view(images, draws, progress)
        return images

    def discriminator_update(
        self, real: torch.Tensor, real_labels: torch.Tensor | None, progress: float
    ) -> tuple[dict[str, torch.Tensor], bool]:
        """One discriminator (critic) update on ``real`` and fresh fake images, with the run's
        regularisers; returns its logged tensors and whether it was applied."""
        self.d.optimizer.zero_grad(set_to_none=True)
        logged, updated = self.update.accumulated(
            self.draws,
            [real, real_labels],
            lambda draws, real, labels: self._discriminator_loss(draws, real, labels, progress),
            [self.d.optimizer],
            self.d.scaler,
            [self.d.synced],
        )
        for regulariser in self.regularisers:
            regulariser.after_d_update(self.d.plain)
        return logged, updated

    def _discriminator_loss(
        self, draws: Draws, real: torch.Tensor, real_labels: torch.Tensor | None, progress: float
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """D's loss on ``real`` and as many fresh fake images, and its logged tensors."""
        noise, fake_labels = self.fake_inputs(real, draws)
        with torch.no_grad(), self.autocast():
            fake = generate_images(self.g.local, noise, fake_labels)
        real = self.as_d_sees(real, draws, progress)
        fake = self.as_d_sees(fake.to(real.dtype), draws, progress)
        scores_real, scores_fake, logits_real = self._score(real, fake, real_labels, fake_labels)
        if self.targets is None:
            loss = self.objective.discriminator_loss(scores_real, scores_fake)
        else:
            real_target, fake_target = self.targets(real, draws)
            loss = self.objective.labelled_discriminator_loss(
                scores_real, scores_fake, real_target, fake_target
            )

        def critic(images: torch.Tensor) -> torch.Tensor:
            return _discriminate(self.d.plain, images, real_labels)[0]

        # Penalties are taken at the images D saw, as augmented: the gradient D is kept smooth
        # at is the one its inputs meet.
        scored = Scored(real, fake, real_labels, logits_real, critic)
        penalties = []
        for regulariser in self.regularisers:
            term = regulariser.d_term(scored, draws)
            if term is not None and regulariser.penalty:
                penalties.append(term)
            elif term is not None:
                loss = loss + term
        logged = {
            "d_loss": loss.detach(),
            "d_real": self.objective.score_summary(scores_real.detach()),
            "d_fake": self.objective.score_summary(scores_fake.detach()),
        }
        if self.ada is not None:  # ADA's overfitting heuristic, r_t = E[sign(D(x_real))]
            logged["ada_r"] = torch.sign(scores_real.detach() - self.objective.real_side).mean()
        if penalties:
            penalty = sum(penalties[1:], start=penalties[0])
            logged["d_penalty"] = penalty.detach()
            loss = loss + penalty
        return loss, logged

    def _score(
        self,
        real: torch.Tensor,
        fake: torch.Tensor,
        real_labels: torch.Tensor | None,
        fake_labels: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """D's full-precision scores of ``real`` and ``fake`` and its class logits of
        ``real`` (``None`` unless AC-GAN), in one pass when D has no BatchNorm."""
        with self.autocast():
            if self.joint_d_pass:
                n = real.shape[0]
                labels = None if real_labels is None else torch.cat([real_labels, fake_labels])
                scores, logits = _discriminate(self.d.synced, torch.cat([real, fake]), labels)
                scores_real, scores_fake = scores[:n], scores[n:]
                logits_real = None if logits is None else logits[:n]
            else:
                scores_real, logits_real = _discriminate(self.d.synced, real, real_labels)
                scores_fake, _ = _discriminate(self.d.synced, fake, fake_labels)
        return full_precision(scores_real), full_precision(scores_fake), logits_real

    def generator_update(
        self, like: torch.Tensor, progress: float
    ) -> tuple[torch.Tensor, bool, torch.Tensor]:
        """G's update against the frozen D on a fresh batch the size of ``like``: returns G's
        loss (detached), whether the update was applied, and G's images."""

        def loss_of(draws: Draws, like: torch.Tensor) -> tuple[torch.Tensor, dict]:
            noise, fake_labels = self.fake_inputs(like, draws)
            with self.autocast():
                fake = generate_images(self.g.synced, noise, fake_labels)
                seen = self.as_d_sees(fake, draws, progress)
                scores, logits = _discriminate(self.d.local, seen, fake_labels)
            loss = self.objective.generator_loss(full_precision(scores))
            for regulariser in self.regularisers:
                term = regulariser.g_term(logits, fake_labels)
                if term is not None:
                    loss = loss + term
            # Detached: a micro-batch's images must not hold its graph past its backward.
            return loss, {"g_loss": loss.detach(), "fake": fake.detach()}

        self.g.optimizer.zero_grad(set_to_none=True)
        with _frozen(self.d.plain):  # D's weight gradients would go unused
            logged, updated = self.update.accumulated(
                self.draws, [like], loss_of, [self.g.optimizer], self.g.scaler, [self.g.synced]
            )
        return logged["g_loss"], updated, logged["fake"]


class VaeStep:
    """A VAE iteration: encode the real images, decode one reparameterised draw of each
    posterior, and step the encoder and decoder together on ``−ELBO``
    (:func:`ganforge.objectives.elbo`). Build it with :func:`build_step`."""

    def __init__(
        self,
        models: TrainedModels,
        draws: Draws,
        *,
        xflip: XFlip | None,
        updater: Updater,
        shard: Shard,
    ) -> None:
        config = models.config
        self.models, self.draws, self.xflip, self.update = models, draws, xflip, updater
        self.shard, self.noise_dim, self.likelihood = shard, config.noise_dim, config.likelihood
        self.autocast = lambda: autocast(models.device, config.precision)
        self.decoder, self.encoder = _players(models, shard)

    def __call__(
        self,
        real: torch.Tensor | Sequence[torch.Tensor],
        labels: None = None,
        progress: float = 0.0,
    ) -> StepResult:
        """One update on ``real`` ``(n, C, H, W)`` in ``[-1, 1]`` (this process's share).

        Returns the batch means, over processes, of ``loss`` (``−ELBO``), ``reconstruction``
        (``−log p(x | z)``) and ``kl``, in nats per image (and ``skipped_updates`` with
        ``--on-nan skip-step``); and the reconstructions ``(n, C, H, W)``, detached."""
        (real,) = _batches(real)
        if self.xflip is not None:
            real = self.xflip(real, self.draws)
        optimizers = [self.decoder.optimizer, self.encoder.optimizer]
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        logged, updated = self.update.accumulated(
            self.draws,
            [real],
            self._loss,
            optimizers,
            self.decoder.scaler,
            [self.decoder.synced, self.encoder.synced],
        )
        loss, decoded = logged["loss"], logged["decoded"]
        reconstruction, kl = logged["reconstruction"], logged["kl"]
        stats = torch.stack([loss, reconstruction, kl])
        stats = dict(zip(VAE_STAT_NAMES, mean_over_ranks(stats, self.shard).tolist(), strict=True))
        if self.update.skip_nonfinite:
            stats["skipped_updates"] = int(not updated)
        return stats, full_precision(decoded.detach())

    def _loss(self, draws: Draws, real: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """``−ELBO`` of ``real``, averaged over its images, and the logged tensors."""
        device = real.device
        standard_normal = draws(
            real.shape[0],
            lambda n, g: sample_noise(
                n, self.noise_dim, distribution="normal", generator=g, device=device
            ),
        )
        with self.autocast():
            mean, log_var = self.encoder.synced(real)
            code = reparameterise(full_precision(mean), full_precision(log_var), standard_normal)
            decoded = self.decoder.synced(code)
        elbo_per_image, reconstruction, kl = elbo(
            real,
            full_precision(decoded),
            full_precision(mean),
            full_precision(log_var),
            self.likelihood,
            self.models.encoder.log_sigma,
        )
        loss = -elbo_per_image.mean()
        logged = {
            "loss": loss.detach(),
            "reconstruction": reconstruction.detach().mean(),
            "kl": kl.detach().mean(),
            "decoded": decoded.detach(),
        }
        return loss, logged


def build_step(
    models: TrainedModels,
    noise_generator: torch.Generator | None = None,
    shard: Shard = SINGLE_PROCESS,
    objective: Objective | None = None,
) -> GanStep | VaeStep:
    """The step ``models`` train by, with the parts their config switches on.

    ``noise_generator``: where every random number of the step comes from (the run's noise
    stream, which checkpoints keep; ``None``: torch's global one); ``shard``: this process's
    place under torchrun; ``objective``: the GAN's losses, by default the config's
    (:data:`~ganforge.objectives.OBJECTIVES`)."""
    config = models.config
    draws = Draws(noise_generator, shard)
    xflip = XFlip.from_config(config, models)
    updater = Updater.from_config(config, models)
    if models.is_vae:
        return VaeStep(models, draws, xflip=xflip, updater=updater, shard=shard)
    return GanStep(
        models,
        objective or OBJECTIVES[config.loss],
        draws,
        xflip=xflip,
        views=parts_of(VIEWS, config, models),
        targets=Targets.from_config(config, models),
        regularisers=parts_of(REGULARISERS, config, models),
        updater=updater,
        shard=shard,
    )
