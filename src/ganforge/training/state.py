"""What a run trains, in one object: the two networks, their optimizers, loss scalers and the
exponential moving average (EMA) of the generator.

:class:`TrainedModels` is the owner of that state: :meth:`~TrainedModels.state_dict` and
:meth:`~TrainedModels.load_state_dict` are what a checkpoint holds of it (the rest of a run's
state, its random streams and bookkeeping, is :class:`ganforge.training.checkpoints.RunState`'s).

A GAN trains a generator G against a discriminator D. A VAE trains a decoder, which is its
generator (sampling decodes draws from the prior), beside an encoder. The network trained with G
is the *partner*: ``models.discriminator`` for a GAN, ``models.encoder`` for a VAE.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from ganforge.augment import AdaptiveProbability
from ganforge.checkpoint_file import load_weights
from ganforge.config import TrainConfig, build_networks
from ganforge.errors import GanforgeError, first_line
from ganforge.nets import (
    VAEEncoder,
    apply_spectral_norm,
    check_networks,
    freeze_first_blocks,
)
from ganforge.objectives import VAE_LOSS
from ganforge.sampling import estimate_batchnorm_statistics
from ganforge.training.distributed import (
    use_sync_batchnorm,
    without_sync_batchnorm,
)
from ganforge.training.performance import (
    fused_adam_supported,
    grad_scaler,
    prepare_for_speed,
)


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


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` holds a BatchNorm layer (of any dimension, synchronised or not)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@dataclass
class TrainedModels:
    """What a checkpoint holds of a run's training: the generator and its partner (D, or a
    VAE's encoder) as plain modules, their optimizers and loss scalers, the EMA of the
    generator and ADA's augmentation probability; ``config``: the run's settings, which say
    which of those the run has.

    How a step runs them (DDP, ``torch.compile``, autocast) is the step's business
    (:func:`ganforge.training.step.build_step`).
    """

    config: TrainConfig
    generator: nn.Module
    partner: nn.Module
    generator_optimizer: torch.optim.Optimizer
    partner_optimizer: torch.optim.Optimizer
    ema: AveragedModel | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        config = self.config
        self.device = next(self.generator.parameters()).device
        #: ADA's augmentation probability (``None`` unless ``augment`` is ``ada``).
        self.ada = None
        if config.augment == "ada":
            self.ada = AdaptiveProbability(config.ada_target, speed_images=config.ada_images)
        # The EMA copy averages G's weights and only samples; see update_ema.
        self.ema = None
        if config.ema:
            average = _ema_average(config.ema, config.ema_every)
            self.ema = AveragedModel(self.generator, multi_avg_fn=average, use_buffers=False)
            self.ema.module = without_sync_batchnorm(self.ema.module)  # see averaged_generator
            self.ema.eval()
        self._ema_statistics_fit = False  # see averaged_generator
        self._standing_generator: nn.Module | None = None  # see standing_generator
        self.generator_scaler = grad_scaler(self.device, config.precision)
        self.partner_scaler = grad_scaler(self.device, config.precision)

    @property
    def is_vae(self) -> bool:
        return self.config.loss == VAE_LOSS

    @property
    def discriminator(self) -> nn.Module:
        """D (a GAN's partner)."""
        if self.is_vae:
            raise AttributeError("a VAE has an encoder, not a discriminator")
        return self.partner

    @property
    def encoder(self) -> VAEEncoder:
        """The encoder ``q(z | x)`` (a VAE's partner)."""
        if not self.is_vae:
            raise AttributeError("a GAN has a discriminator, not an encoder")
        return self.partner

    @property
    def num_classes(self) -> int:
        """A conditional GAN's label count (0: unconditional)."""
        config = self.config
        return config.num_classes if config.conditioning != "none" else 0

    def before_step(self, progress: float) -> None:
        """Set the learning rates of the iteration that begins with ``progress``, the part
        of the planned run done, in ``[0, 1]``: with ``lr_decay`` linear, each network's
        rate times ``1 - progress``; else left as they are. A function of the step alone,
        so that a resumed run's rates are the uninterrupted run's."""
        if self.config.lr_decay != "linear":
            return
        config = self.config
        for optimizer, lr in (
            (self.generator_optimizer, config.lr_g),
            (self.partner_optimizer, config.lr_d),
        ):
            for group in optimizer.param_groups:
                group["lr"] = network_rate(config, lr) * (1.0 - progress)

    # -- the generator's average ---------------------------------------------------------

    def after_step(self, step: int) -> None:
        """What follows G's update of iteration ``step`` (counted from 1): the EMA takes G
        after its first iteration, then averages it every ``ema_every``-th, counted from the
        run's start so that a resumed run averages the same ones (a run's last iterations
        after a multiple of ``ema_every`` are left out); standing statistics no longer fit."""
        self._standing_generator = None
        if self.ema is not None and (step % self.config.ema_every == 0 or not self.ema.n_averaged):
            self.update_ema()

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
                self.ema.module, self.config.noise_dim, noise=self.config.noise, device=self.device
            )
            self._ema_statistics_fit = True
        return self.ema

    @property
    def sampler(self) -> nn.Module:
        """The generator that draws samples and is scored: the EMA one when there is one; with
        ``standing_stats``, a copy of G whose BatchNorm statistics were re-estimated for its
        final weights (:meth:`standing_generator`); else G itself."""
        averaged = self.averaged_generator()
        if averaged is not None:
            return averaged.module
        return self.standing_generator() or self.generator

    def standing_generator(self) -> nn.Module | None:
        """With ``standing_stats`` and a BatchNorm generator (no EMA): a copy of G with
        standing statistics (``None`` otherwise).

        G's running statistics average batches drawn while its weights kept changing, and do
        not fit its weights of now; ``estimate_batchnorm_statistics`` replaces them with the
        statistics of these weights, on fixed noise (so a resumed run gets the same ones). The
        copy is made once after each step that needs it; G itself trains on untouched."""
        if not (self.config.standing_stats and self.ema is None and has_batchnorm(self.generator)):
            return None
        if self._standing_generator is None:
            standing = without_sync_batchnorm(copy.deepcopy(self.generator))
            estimate_batchnorm_statistics(
                standing, self.config.noise_dim, noise=self.config.noise, device=self.device
            )
            self._standing_generator = standing
        return self._standing_generator

    # -- checkpoints ---------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The trained state, under the checkpoint format's keys (a VAE's encoder is stored as
        ``discriminator``, the partner's slot, so that both kinds share one format)."""
        ema, standing = self.averaged_generator(), self.standing_generator()
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.partner.state_dict(),
            "g_optimizer": self.generator_optimizer.state_dict(),
            "d_optimizer": self.partner_optimizer.state_dict(),
            "g_scaler": self.generator_scaler.state_dict(),
            "d_scaler": self.partner_scaler.state_dict(),
            **({} if ema is None else {"generator_ema": ema.state_dict()}),
            **({} if standing is None else {"generator_standing": standing.state_dict()}),
            **({} if self.ada is None else {"ada": self.ada.state_dict()}),
        }

    def load_state_dict(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        """Put the networks, optimizers, loss scalers and EMA where ``state`` (a checkpoint,
        from ``source``) left them; one :class:`GanforgeError` line when they do not fit."""
        load_weights(self.generator, state["generator"], "generator", source)
        load_weights(self.partner, state["discriminator"], "discriminator", source)
        try:
            self.generator_optimizer.load_state_dict(state["g_optimizer"])
            self.partner_optimizer.load_state_dict(state["d_optimizer"])
            self.generator_scaler.load_state_dict(state.get("g_scaler", {}))
            self.partner_scaler.load_state_dict(state.get("d_scaler", {}))
            if self.ema is not None:
                self.ema.load_state_dict(state["generator_ema"])
            if self.ada is not None:
                self.ada.load_state_dict(state["ada"])
        except (ValueError, KeyError, RuntimeError, TypeError) as exc:
            raise GanforgeError(
                f"{source}: its training state cannot be restored ({first_line(exc)})"
            ) from None


def network_rate(config: TrainConfig, own: float | None) -> float:
    """A network's learning rate: its ``own`` (``lr_g``, ``lr_d``) where given, else ``lr``."""
    return config.lr if own is None else own


def make_optimizer(
    model: nn.Module,
    config: TrainConfig | None = None,
    device: torch.device | None = None,
    lr: float | None = None,
) -> torch.optim.Optimizer:
    """The config's optimizer for ``model``: Adam(lr, betas) by default (the assignment's is
    lr 1e-3, betas (0.5, 0.999), :class:`TrainConfig`'s defaults), or RMSprop(lr); ``lr``, when
    given, instead of the config's (one network's own rate: ``lr_g``, ``lr_d``).

    Adam is fused where the device supports it: all parameters updated in one kernel, the same
    update rule rounded differently, faster than PyTorch's per-parameter loop on the CPU.
    """
    config = config or TrainConfig()
    lr = network_rate(config, lr)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(model.parameters(), lr=lr)
    fused = device is not None and fused_adam_supported(device)
    betas = (config.beta1, config.beta2)
    return torch.optim.Adam(model.parameters(), lr=lr, betas=betas, fused=fused or None)


def build_trained_models(
    config: TrainConfig,
    device: torch.device,
    networks: tuple[nn.Module, nn.Module] | None = None,
) -> TrainedModels:
    """The networks and optimizers a config describes, ready to train on ``device``;
    ``networks``: a script's own ``(generator, discriminator)`` to train instead.

    Weights come from torch's global generator: seed it first for a reproducible run. A user's
    networks (``module:callable``) are imported here: the caller has trusted them already (a
    new run names them itself; a resumed one passed ``--trust-code``).
    """
    vae = config.loss == VAE_LOSS
    try:
        if networks is not None:  # the script's own pair: what any GAN step needs of it
            check_networks(*networks, source="the networks handed to train()")
        generator, partner = networks or build_networks(config, trust_code=True, vae=vae)
    except ValueError as exc:  # networks that do not keep the contract
        raise GanforgeError(str(exc)) from None
    if vae:  # the discriminator's layers, read out as the posterior, are the encoder
        partner = VAEEncoder(partner, config.noise_dim, config.likelihood == "gaussian")
    if config.spectral_norm:
        partner = apply_spectral_norm(partner)
    if config.freeze_d:  # before DDP wraps D, so that it leaves the frozen weights alone
        try:
            freeze_first_blocks(partner, config.freeze_d)
        except ValueError as exc:
            raise GanforgeError(str(exc)) from None
    if config.sync_bn:
        generator = use_sync_batchnorm(generator, device)
        partner = use_sync_batchnorm(partner, device)
    generator = prepare_for_speed(generator, device)
    partner = prepare_for_speed(partner, device)
    return TrainedModels(
        config,
        generator,
        partner,
        make_optimizer(generator, config, device, config.lr_g),
        make_optimizer(partner, config, device, config.lr_d),
    )
