"""The parts a training step is built from, each switched on by one setting.

A step (:mod:`ganforge.training.step`) holds only the parts its run turned on:

* :class:`Draws`: every random number of the step, drawn for the global batch from the run's
  noise generator and sliced to this process's share, so that N processes and a resumed run
  draw what one uninterrupted process does.
* **What D sees** (:data:`VIEWS`): the transforms of every image D scores, real or generated,
  each differentiable so that G's gradient flows through it: DiffAugment/ADA
  (:class:`Augment`) and instance noise (:class:`InstanceNoise`). :class:`XFlip` mirrors the
  training images themselves.
* **D's targets** (:class:`Targets`): one-sided label smoothing and label flips.
* **Regularisers** (:data:`REGULARISERS`): terms added to D's loss (the gradient penalty, R1,
  AC-GAN's class loss, which also joins G's) or a constraint after D's update (weight
  clipping).
* **The networks and their update** (:class:`Player`, :class:`Updater`): each network's plain,
  synchronised and local views with its optimizer and loss scaler; one optimizer step from
  one backward pass or from ``--accumulate`` micro-batches (:meth:`Updater.accumulated`), with
  loss scaling and, with ``--on-nan skip-step``, non-finite updates dropped.

A new hack or penalty is one small class here and one entry in its table. Each part's
``from_config(config, models)`` returns it, or ``None`` when the run leaves it off; the order
of a table is the order its parts draw their random numbers in, which checkpoints rely on.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.augment import AdaptiveProbability, Augmentation, parse_policy
from ganforge.config import TrainConfig
from ganforge.objectives import gradient_penalty, r1_penalty
from ganforge.training.distributed import SINGLE_PROCESS, Shard
from ganforge.training.state import TrainedModels

#: ``make(global_n, generator)``: a draw of random numbers for a whole global batch.
Make = Callable[[int, torch.Generator | None], torch.Tensor]


def full_precision(tensor: torch.Tensor) -> torch.Tensor:
    """Autocast's half-precision outputs → fp32, so that losses are computed in fp32."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


@dataclass(frozen=True)
class Draws:
    """The step's random numbers: ``draws(n, make)`` is this process's share, ``n`` rows, of
    ``make(global_n, generator)`` drawn for the whole global batch (:meth:`global_batch`)."""

    generator: torch.Generator | None
    shard: Shard = SINGLE_PROCESS
    #: ``(index, count)``: the micro-batch of this process's share that the draws are for
    #: (``--accumulate``); ``(0, 1)``: the whole share.
    micro: tuple[int, int] = (0, 1)

    def global_batch(self, local_n: int) -> int:
        """The images of the whole batch of which this process (this micro-batch) holds
        ``local_n``."""
        return local_n * self.micro[1] * self.shard.world_size

    def __call__(self, local_n: int, make: Make) -> torch.Tensor:
        global_n = self.global_batch(local_n)
        share = make(global_n, self.generator)[self.shard.local_slice(global_n)]
        index, count = self.micro
        return share if count == 1 else share[index * local_n : (index + 1) * local_n]

    def for_micro_batch(self, index: int, count: int) -> Draws:
        """These draws for micro-batch ``index`` of ``count`` of this process's share."""
        return dataclasses.replace(self, micro=(index, count))

    def rewinder(self) -> Callable[[], None]:
        """A function that puts the random stream back where it is now, so that each
        micro-batch draws from the same numbers as the whole batch (and takes its rows)."""
        if self.generator is not None:
            state = self.generator.get_state()
            return lambda: self.generator.set_state(state)
        cpu = torch.get_rng_state()
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

        def rewind() -> None:
            torch.set_rng_state(cpu)
            if cuda is not None:
                torch.cuda.set_rng_state_all(cuda)

        return rewind

    def uniform(self, like: torch.Tensor, *shape: int) -> torch.Tensor:
        """``U[0, 1)`` numbers ``(n, *shape)`` for ``like``'s ``n`` images, on its device."""
        device = like.device
        return self(like.shape[0], lambda n, g: torch.rand(n, *shape, generator=g, device=device))

    def for_images(self, local_n: int) -> Callable[[Make], torch.Tensor]:
        """``draw(make)`` for a batch of ``local_n`` images (what :class:`Augmentation` takes)."""
        return lambda make: self(local_n, make)


# -- what D sees -------------------------------------------------------------------------------


class View:
    """A differentiable transform of every image D scores, real or generated."""

    def __call__(self, images: torch.Tensor, draws: Draws, progress: float) -> torch.Tensor:
        """``images`` ``(n, C, H, W)`` as D sees them; ``progress``: the part of the planned
        run done, in ``[0, 1]``."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: TrainConfig, models: TrainedModels) -> View | None:
        raise NotImplementedError


@dataclass
class Augment(View):
    """``--augment diffaugment`` (every transform of the policy on every image) or ``ada`` (each
    with ADA's adaptive probability ``p``, which the trained models hold and checkpoint)."""

    policy: tuple[str, ...]
    ada: AdaptiveProbability | None

    def __call__(self, images: torch.Tensor, draws: Draws, progress: float) -> torch.Tensor:
        probability = 1.0 if self.ada is None else self.ada.p
        augmentation = Augmentation(self.policy, probability)
        return augmentation(images, draws.for_images(images.shape[0]))

    @classmethod
    def from_config(cls, config: TrainConfig, models: TrainedModels) -> Augment | None:
        if config.augment == "none":
            return None
        return cls(parse_policy(config.augment_policy), models.ada)


@dataclass
class InstanceNoise(View):
    """``--instance-noise σ``: Gaussian noise on D's inputs, σ annealed linearly to 0 over the
    planned run."""

    sigma: float

    def sigma_at(self, progress: float) -> float:
        return self.sigma * max(0.0, 1.0 - progress)

    def __call__(self, images: torch.Tensor, draws: Draws, progress: float) -> torch.Tensor:
        sigma = self.sigma_at(progress)
        if not sigma:
            return images
        shape, device, dtype = images.shape[1:], images.device, images.dtype
        noise = draws(
            images.shape[0],
            lambda n, g: torch.randn(n, *shape, generator=g, device=device, dtype=dtype),
        )
        return images + sigma * noise

    @classmethod
    def from_config(cls, config: TrainConfig, models: TrainedModels) -> InstanceNoise | None:
        return cls(config.instance_noise) if config.instance_noise else None


#: What D sees, applied in this order.
VIEWS: tuple[type[View], ...] = (Augment, InstanceNoise)


@dataclass
class XFlip:
    """``--xflip``: each training image mirrored left to right with probability 1/2."""

    def __call__(self, images: torch.Tensor, draws: Draws) -> torch.Tensor:
        flip = draws.uniform(images) < 0.5
        return torch.where(flip[:, None, None, None], images.flip(3), images)

    @classmethod
    def from_config(cls, config: TrainConfig, models: TrainedModels) -> XFlip | None:
        return cls() if config.xflip else None


# -- D's targets -------------------------------------------------------------------------------

Target = float | torch.Tensor


@dataclass
class Targets:
    """D's labels for real and fake images when the run changes them: ``real_label`` for real
    images (one-sided smoothing), and with ``flip_labels`` each image's label swapped with
    that probability."""

    real_label: float
    flip_labels: float

    def __call__(self, real: torch.Tensor, draws: Draws) -> tuple[Target, Target]:
        """``(real target, fake target)`` for a batch of ``real``'s size and device."""
        if not self.flip_labels:
            return self.real_label, 0.0
        real_flipped = draws.uniform(real) < self.flip_labels
        fake_flipped = draws.uniform(real) < self.flip_labels
        zero = torch.zeros((), device=real.device)
        label = torch.full((), self.real_label, device=real.device)
        return torch.where(real_flipped, zero, label), torch.where(fake_flipped, label, zero)

    @classmethod
    def from_config(cls, config: TrainConfig, models: TrainedModels) -> Targets | None:
        if config.real_label == 1.0 and not config.flip_labels:
            return None
        return cls(config.real_label, config.flip_labels)


# -- regularisers ------------------------------------------------------------------------------


@dataclass
class Scored:
    """What D's update scored: the real and fake images as D saw them, the real images' labels
    and AC-GAN class logits (``None`` elsewhere), and ``critic``: D's scores of any images,
    through the plain module in full precision (a penalty's double backward takes neither DDP
    nor ``torch.compile``)."""

    real: torch.Tensor
    fake: torch.Tensor
    real_labels: torch.Tensor | None
    real_logits: torch.Tensor | None
    critic: Callable[[torch.Tensor], torch.Tensor]


class Regulariser:
    """A term of D's loss beyond the objective's, a term of G's, or a constraint on D after its
    update. ``penalty`` terms are logged together as ``d_penalty``; the others join the loss
    they belong to (``d_loss``, ``g_loss``)."""

    penalty: ClassVar[bool] = True

    def d_term(self, scored: Scored, draws: Draws) -> torch.Tensor | None:
        return None

    def g_term(self, logits: torch.Tensor | None, labels: torch.Tensor | None):
        return None

    def after_d_update(self, discriminator: nn.Module) -> None:
        return None

    @classmethod
    def from_config(cls, config: TrainConfig, models: TrainedModels) -> Regulariser | None:
        raise NotImplementedError


@dataclass
class ClassLoss(Regulariser):
    """AC-GAN's auxiliary classifier: cross-entropy of D's class logits on real images in D's
    loss, and on G's images (for the class G was asked for) in G's.

    Odena et al. also train D's classifier on fakes, but then G and D agree on whatever fakes
    D finds easy to classify: on MNIST that gave one image per class (conditional accuracy
    0.10)."""

    penalty: ClassVar[bool] = False

    def d_term(self, scored: Scored, draws: Draws) -> torch.Tensor:
        return F.cross_entropy(full_precision(scored.real_logits), scored.real_labels)

    def g_term(self, logits: torch.Tensor | None, labels: torch.Tensor | None) -> torch.Tensor:
        return F.cross_entropy(full_precision(logits), labels)

    @classmethod
    def from_config(cls, config: TrainConfig, models: TrainedModels) -> ClassLoss | None:
        return cls() if config.conditioning == "acgan" else None


@dataclass
class GradientPenalty(Regulariser):
    """WGAN-GP's ``λ · E[(‖∇D(x̂)‖ − 1)²]`` on random mixes of real and fake images."""

    weight: float

    def d_term(self, scored: Scored, draws: Draws) -> torch.Tensor:
        real = scored.real
        mix = draws(
            real.shape[0],
            lambda n, g: torch.rand(n, generator=g, device=real.device, dtype=real.dtype),
        )
        return self.weight * gradient_penalty(scored.critic, real, scored.fake, mix)

    @classmethod
    def from_config(cls, config: TrainConfig, models: TrainedModels) -> GradientPenalty | None:
        return cls(config.gp_weight) if config.gp_weight else None


@dataclass
class R1Penalty(Regulariser):
    """R1's ``γ/2 · E[‖∇D(x)‖²]`` on real images."""

    gamma: float

    def d_term(self, scored: Scored, draws: Draws) -> torch.Tensor:
        return self.gamma / 2 * r1_penalty(scored.critic, scored.real)

    @classmethod
    def from_config(cls, config: TrainConfig, models: TrainedModels) -> R1Penalty | None:
        return cls(config.r1_gamma) if config.r1_gamma else None


@dataclass
class WeightClip(Regulariser):
    """The WGAN paper's constraint: D's weights clipped to ``[-c, c]`` after each update."""

    clip: float

    def after_d_update(self, discriminator: nn.Module) -> None:
        with torch.no_grad():
            for parameter in discriminator.parameters():
                if parameter.requires_grad:  # the blocks --freeze-d froze stay as they were
                    parameter.clamp_(-self.clip, self.clip)

    @classmethod
    def from_config(cls, config: TrainConfig, models: TrainedModels) -> WeightClip | None:
        return cls(config.weight_clip) if config.weight_clip else None


#: The regularisers, in the order their terms are added (and their random numbers drawn).
REGULARISERS: tuple[type[Regulariser], ...] = (ClassLoss, GradientPenalty, R1Penalty, WeightClip)


def parts_of(table: Sequence[type], config: TrainConfig, models: TrainedModels) -> list[Any]:
    """The parts of ``table`` that the run switches on, in the table's order."""
    return [part for cls in table if (part := cls.from_config(config, models)) is not None]


# -- the networks and their update -------------------------------------------------------------


@dataclass
class Player:
    """One trained network as a step runs it: ``plain`` (its weights; what penalties
    differentiate twice), ``synced`` where its weight gradients feed its optimizer (DDP under
    torchrun, compiled when asked) and ``local`` where they are not needed (compiled when
    asked, never synchronised); with its optimizer and loss scaler."""

    plain: nn.Module
    synced: nn.Module
    local: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler


#: ``loss_of(draws, *inputs)``: one update's loss on its inputs (each ``(n, ...)`` or ``None``)
#: and its logged tensors: numbers (0-d) or per-image tensors ``(n, ...)``.
LossOf = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass
class Updater:
    """One optimizer step, from one backward pass or, with ``accumulate`` K (``--accumulate``),
    from the gradients of K micro-batches summed. With ``skip_nonfinite``
    (``--on-nan skip-step``) an update whose gradient holds a NaN or an infinity is dropped
    (this costs a gradient norm and a device sync); under fp16 the GradScaler already drops
    those, as loss scaling makes them routine, and it is left to do so."""

    skip_nonfinite: bool
    accumulate: int = 1

    def __call__(
        self,
        loss: torch.Tensor,
        optimizers: Sequence[torch.optim.Optimizer],
        scaler: torch.amp.GradScaler,
    ) -> bool:
        """Backpropagate ``loss``, step ``optimizers``; False when the update was dropped."""
        scaler.scale(loss).backward()
        return self.step(optimizers, scaler)

    def accumulated(
        self,
        draws: Draws,
        inputs: Sequence[torch.Tensor | None],
        loss_of: LossOf,
        optimizers: Sequence[torch.optim.Optimizer],
        scaler: torch.amp.GradScaler,
        synced: Sequence[nn.Module] = (),
    ) -> tuple[dict[str, torch.Tensor], bool]:
        """One update on ``inputs`` (this process's share of the batch): ``loss_of`` on the
        whole share, or on each of ``accumulate`` micro-batches of it with the gradients of
        ``loss / K`` summed, then one optimizer step. Returns the logged tensors (numbers
        averaged over the micro-batches, per-image tensors concatenated) and whether the
        update was applied.

        Every micro-batch draws the whole batch's random numbers from the same point of the
        stream and keeps its own rows (:meth:`Draws.for_micro_batch`), so the stream ends
        where the whole batch leaves it, and a loss that is a batch mean gets the whole
        batch's gradient up to rounding where no BatchNorm sees the micro-batches. ``synced``:
        the DDP modules, whose gradients are all-reduced once, after the last micro-batch."""
        count = self.accumulate
        if count == 1:
            loss, logged = loss_of(draws, *inputs)
            return logged, self(loss, optimizers, scaler)
        rewind, parts = draws.rewinder(), []
        for index in range(count):
            if index:
                rewind()
            micro = [None if x is None else x.chunk(count)[index] for x in inputs]
            last = index == count - 1
            with contextlib.nullcontext() if last else _no_sync(synced):
                loss, logged = loss_of(draws.for_micro_batch(index, count), *micro)
                scaler.scale(loss / count).backward()
            parts.append(logged)
        logged = {
            key: torch.stack([p[key] for p in parts]).mean(0)
            if parts[0][key].dim() == 0
            else torch.cat([p[key] for p in parts])
            for key in parts[0]
        }
        return logged, self.step(optimizers, scaler)

    def step(
        self, optimizers: Sequence[torch.optim.Optimizer], scaler: torch.amp.GradScaler
    ) -> bool:
        """Step ``optimizers`` on the gradients they hold; False when the update was dropped."""
        if self.skip_nonfinite and scaler.is_enabled():
            scale = scaler.get_scale()
            for optimizer in optimizers:
                scaler.step(optimizer)
            scaler.update()
            return scaler.get_scale() >= scale  # the scaler backs off when it drops an update
        if self.skip_nonfinite and not _finite_gradients(optimizers):
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            return False
        for optimizer in optimizers:
            scaler.step(optimizer)
        scaler.update()
        return True

    @classmethod
    def from_config(cls, config: TrainConfig, models: TrainedModels) -> Updater:
        return cls(skip_nonfinite=config.on_nan == "skip-step", accumulate=config.accumulate)


@contextlib.contextmanager
def _no_sync(modules: Sequence[nn.Module]):
    """No DDP all-reduce in the backward passes inside (the micro-batches before the last)."""
    with contextlib.ExitStack() as stack:
        for module in modules:
            ddp = getattr(module, "_orig_mod", module)  # under torch.compile
            if hasattr(ddp, "no_sync"):
                stack.enter_context(ddp.no_sync())
        yield


def _finite_gradients(optimizers: Sequence[torch.optim.Optimizer]) -> bool:
    params = [p for opt in optimizers for group in opt.param_groups for p in group["params"]]
    grads = [p.grad for p in params if p.grad is not None]
    # DDP has averaged the gradients already: every rank takes the same decision.
    return not grads or bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)))
