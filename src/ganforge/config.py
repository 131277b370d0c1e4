"""The training configuration: one flat dataclass whose fields each declare, once, everything
about a setting: its default, help text, group, allowed values, and whether ``train --resume``
may change it (:func:`setting`, read back as :data:`SETTINGS`).

From those declarations come the ``ganforge train`` flags and their grouped help
(:mod:`ganforge.cli`), the single-field checks of :func:`validate` (only rules that span fields
are written out here), :data:`RESUMABLE_CHANGES`, the options a VAE refuses and the reference
table of the documentation (:func:`settings_reference_markdown`).

Later sources override earlier ones: :data:`ganforge.presets.PRESETS` entry → ``--config`` file
(TOML or YAML, same keys as :class:`TrainConfig`) → command-line flags. A run's length the user
gives (``max_steps``, ``time_budget``) outranks the preset's epochs (see :func:`build_config`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from ganforge.augment import AUGMENTS, DEFAULT_POLICY, parse_policy
from ganforge.data import (
    TRAIN_SUBSETS,
    check_class_selection,
    check_dataset_name,
    dataset_names,
    native_image_shape,
)
from ganforge.data.images import DEFAULT_BACKGROUND, check_background
from ganforge.errors import GanforgeError
from ganforge.nets import (
    ARCHITECTURES,
    CONDITIONINGS,
    INITS,
    NOISE_DISTRIBUTIONS,
    build_generator,
    build_models,
    is_user_architecture,
    resolve_image_shape,
)
from ganforge.objectives import LABELLED_LOSSES, LIKELIHOODS, OBJECTIVES, VAE_LOSS
from ganforge.presets import PRESETS
from ganforge.version import __version__

DEVICES = ("auto", "cpu", "cuda", "mps")
#: Arithmetic precisions (see :mod:`ganforge.training.performance`).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
OPTIMIZERS = ("adam", "rmsprop")
#: How the learning rates change over a run (``lr_decay``).
LR_DECAYS = ("none", "linear")
MAX_SEED = 2**63 - 16  # torch seeds are signed 64-bit, and a run uses seed to seed + 3
MAX_SAMPLES = 1_000_000  # per evaluation or sampling command: about 0.8 GB of 28×28 images
MAX_NOISE_DIM = 65_536
MAX_GRID = 10_000
ON_NAN = ("stop", "skip-step")
#: The preset of a run that names none.
DEFAULT_PRESET = "gan"
#: The architecture of a run whose networks a Python script handed in (``ganforge.train(
#: generator=..., discriminator=...)``): only the same script can rebuild them.
GIVEN_NETWORKS = "given"

#: The groups of settings, in the order ``ganforge train --help`` and the reference show them:
#: name → what its settings decide.
SETTING_GROUPS: dict[str, str] = {
    "model": "the networks: their architecture, widths, initialisation, conditioning and noise",
    "objective": "what the networks are trained to do: the loss and its penalties",
    "optimisation": "how the weights move: batches, optimiser, learning rates, the EMA of G",
    "data": "the training images: which, where, how many and at what size",
    "schedule": "how long a run trains",
    "augmentation and hacks": "what D sees and is told: augmentation, mirroring, smoothed or "
    "flipped labels, instance noise",
    "output": "what a run writes while it trains: grids, checkpoints, evaluations, logs",
    "system": "where and how it computes: seed, device, precision, compilation, NaN handling",
}
#: A setting's kind (``path`` is text naming a file or folder) → the type its flag converts to.
KINDS: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool, "path": str}
#: A flag's placeholder in ``--help``, by kind.
METAVARS = {"int": "N", "float": "X", "str": "NAME", "path": "PATH"}


class _NotGanOnly:
    """The ``vae_neutral`` of a setting that a VAE uses too (``None`` is a neutral value)."""

    def __repr__(self) -> str:
        return "NOT_GAN_ONLY"


NOT_GAN_ONLY: Any = _NotGanOnly()


@dataclass(frozen=True)
class Setting:
    """One training setting, as its field of :class:`TrainConfig` declares it (:func:`setting`).

    ``kind`` and ``optional`` come from the field's annotation (``int | None``: an optional
    ``int``); the rest from the declaration.
    """

    name: str
    kind: str  # a key of KINDS
    default: Any
    #: A key of :data:`SETTING_GROUPS`; ``None`` for the fields no flag sets (the preset and
    #: its description, which the run records).
    group: str | None
    help: str
    optional: bool = False  # None is a value, meaning ``unset``
    unset: str = ""  # what None means, e.g. "no limit"
    #: The allowed values, or a function returning them (for registries that may grow).
    choices: tuple | Callable[[], tuple] | None = None
    #: Raises :class:`GanforgeError` for a text value it refuses; when given, it checks the
    #: value instead of ``choices`` (which then only document): for names such as
    #: ``folder:PATH`` or ``module:callable`` that no list can hold.
    check: Callable[[str], None] | None = None
    low: float | None = None
    high: float | None = None  # None: no upper bound (integers only)
    #: Whether a number's range holds its ends; an integer's range always holds both.
    low_inclusive: bool = True
    high_inclusive: bool = False
    zero: str = ""  # what 0 means; where 0 lies below ``low`` it is accepted besides the range
    metavar: str = ""
    resumable: bool = False  # ``train --resume`` may change it
    #: For a GAN-only setting, the value a VAE (loss elbo) must keep.
    vae_neutral: Any = NOT_GAN_ONLY
    notes: str = ""  # more than ``--help`` has room for: the reference table shows it

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. ``--lr-g``."""
        return "--" + self.name.replace("_", "-")

    @property
    def gan_only(self) -> bool:
        return self.vae_neutral is not NOT_GAN_ONLY

    def options(self) -> tuple:
        """The allowed values (empty where the setting has no list)."""
        choices = self.choices() if callable(self.choices) else self.choices
        return tuple(choices or ())

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this setting alone, in one line; ``None`` if
        nothing is. Booleans are not numbers, and NaN lies in no range."""
        key = self.name
        if value is None and self.optional:
            return None
        if self.kind == "bool":
            ok = isinstance(value, bool)
            return None if ok else f"{key} must be true or false, got {value!r}"
        if self.kind == "path":
            return None if isinstance(value, str) else f"{key} must be a path, got {value!r}"
        if self.kind == "str":
            return self._text_problem(value)
        is_number = _is_int(value) or (self.kind == "float" and isinstance(value, float))
        if self.choices is not None:
            ok = is_number and value in self.options()
            return None if ok else f"{key} must be {self.values_text()}, got {value!r}"
        extra_zero = self._extra_zero()
        ok = is_number and ((extra_zero and value == 0) or self._in_range(value))
        return None if ok else f"{key} must be {self.values_text()}, got {value!r}"

    def _text_problem(self, value: Any) -> str | None:
        options = self.options()
        if not isinstance(value, str):
            wanted = f"one of {', '.join(options)}" if options else "a string"
            return f"{self.name} must be {wanted}, got {value!r}"
        if self.check is not None:
            try:
                self.check(value)
            except GanforgeError as exc:
                return str(exc)
        elif options and value not in options:
            return f"{self.name} must be one of {', '.join(options)}, got {value!r}"
        return None

    def _extra_zero(self) -> bool:
        return bool(self.zero) and self.low is not None and self.low > 0

    def _in_range(self, value: float) -> bool:
        if self.kind == "int":
            return value >= self.low and (self.high is None or value <= self.high)
        above = value >= self.low if self.low_inclusive else value > self.low
        below = value <= self.high if self.high_inclusive else value < self.high
        return above and below

    def values_text(self, code: Callable[[str], str] = str) -> str:
        """The allowed values in words, e.g. ``an integer ≥ 1``, ``one of adam, rmsprop``,
        ``a number > 0 and < 10``; ``code`` formats a literal value (Markdown's backticks)."""
        if self.kind == "bool":
            return "on or off"
        if self.kind == "path":
            return "a path"
        options = self.options()
        if self.kind == "str":
            return f"one of {', '.join(map(code, options))}" if options else "text"
        if options:  # integers: 0 (what it means), 1 or 3
            names = [
                f"{code('0')} ({self.zero})" if option == 0 and self.zero else code(str(option))
                for option in options
            ]
            return f"{', '.join(names[:-1])} or {names[-1]}"
        zero = f"{code('0')} ({self.zero}) or " if self._extra_zero() else ""
        if self.kind == "int":
            bounds = (
                f"≥ {self.low:,}" if self.high is None else f"from {self.low:,} to {self.high:,}"
            )
            return f"{zero}an integer {bounds}"
        low = f"{'≥' if self.low_inclusive else '>'} {_number_text(self.low)}"
        high = f"{'≤' if self.high_inclusive else '<'} {_number_text(self.high)}"
        return f"{zero}a number {low} and {high}"

    def value_text(self, value: Any, code: Callable[[str], str] = str) -> str:
        """``value`` of this setting in words: on/off, what None or 0 means, else the value."""
        if self.kind == "bool":
            return "on" if value else "off"
        if value is None:
            return self.unset
        text = code(str(value))
        return f"{text} ({self.zero})" if value == 0 and self.zero else text

    def default_value(self) -> Any:
        """The value a run takes when nothing sets it: the default preset's, else the field's."""
        return PRESETS[DEFAULT_PRESET].get(self.name, self.default)

    def preset_values(self) -> dict[Any, list[str]]:
        """The other values presets give it → the presets that do, in preset order."""
        found: dict[Any, list[str]] = {}
        for preset, values in PRESETS.items():
            value = values.get(self.name, self.default)
            if value != self.default_value():
                found.setdefault(value, []).append(preset)
        return found

    def help_line(self) -> str:
        """The flag's ``--help`` text: the help, then the allowed values and the default."""
        default = f"default {self.value_text(self.default_value())}"
        others = self.preset_values()
        if others:
            default += f"; other presets: {', '.join(self.value_text(v) for v in others)}"
        if self.kind == "bool":
            return f"{self.help} [{default}]"
        return f"{self.help} [{self.values_text()}; {default}]"


def setting(
    default: Any,
    *,
    group: str | None,
    help: str,
    choices: tuple | Callable[[], tuple] | None = None,
    check: Callable[[str], None] | None = None,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = False,
    zero: str = "",
    unset: str = "",
    path: bool = False,
    metavar: str = "",
    resumable: bool = False,
    vae_neutral: Any = NOT_GAN_ONLY,
    notes: str = "",
) -> Any:
    """Declare a field of :class:`TrainConfig` as a setting (see :class:`Setting` for each
    argument; ``path``: the text names a file or folder). Returns the dataclass field."""
    declared = {
        "group": group,
        "help": help,
        "choices": choices,
        "check": check,
        "low": low,
        "high": high,
        "low_inclusive": low_inclusive,
        "high_inclusive": high_inclusive,
        "zero": zero,
        "unset": unset,
        "path": path,
        "metavar": metavar,
        "resumable": resumable,
        "vae_neutral": vae_neutral,
        "notes": notes,
    }
    return dataclasses.field(default=default, metadata={"setting": declared})


def _architecture_choices() -> tuple[str, ...]:
    return (*ARCHITECTURES, "module:callable")


def _is_own_networks(architecture: Any) -> bool:
    """A user's networks: ``module:callable``, or handed in by a Python script."""
    return isinstance(architecture, str) and (
        is_user_architecture(architecture) or architecture == GIVEN_NETWORKS
    )


def _check_architecture(name: str) -> None:
    if not _is_own_networks(name) and name not in ARCHITECTURES:
        choices = ", ".join(_architecture_choices())
        raise GanforgeError(f"architecture must be one of {choices}, got {name!r}")


def _losses() -> tuple[str, ...]:
    return (*OBJECTIVES, VAE_LOSS)


@dataclass
class TrainConfig:
    """Everything that defines a training run. Field names double as CLI flags and file keys;
    each field declares its setting once (:func:`setting`)."""

    preset: str = setting(DEFAULT_PRESET, group=None, help="the preset the run started from")
    description: str = setting("", group=None, help="the preset's one-line description")
    architecture: str = setting(
        "mlp",
        group="model",
        choices=_architecture_choices,
        check=_check_architecture,
        help="the network pair: mlp and dcgan are the assignment's (28×28 grayscale), radford "
        "is Radford et al.'s DCGAN and resnet the residual networks of Miyato et al. 2018 "
        "(both 32 or 64 px, grayscale or colour); module:callable names your own (see the "
        "README)",
    )
    loss: str = setting(
        "gan",
        group="objective",
        choices=_losses,
        help="the objective: gan (BCE, non-saturating G), lsgan (least squares), wgan (a "
        "Wasserstein critic), hinge, or elbo (train a VAE: G decodes, D's layers encode)",
        notes="gan: a BCE discriminator and the non-saturating generator loss; wgan: the critic "
        "minimises `mean D(G(z)) − mean D(x)`, G `−mean D(G(z))`; hinge: D minimises "
        "`mean relu(1 − D(x)) + mean relu(1 + D(G(z)))`, G `−mean D(G(z))`.",
    )
    likelihood: str = setting(
        "bernoulli",
        group="objective",
        choices=LIKELIHOODS,
        help="a VAE's p(x | z): bernoulli (grey levels as probabilities) or gaussian (one "
        "learned σ)",
    )
    init: str = setting(
        "default",
        group="model",
        choices=tuple(INITS),
        help="weight init: default (PyTorch's) or xavier (the assignment's initialize_weights: "
        "Xavier-uniform Linear and ConvTranspose2d weights)",
    )
    g_width: float = setting(
        1.0,
        group="model",
        low=0,
        low_inclusive=False,
        high=64,
        help="scale the built-in generator's hidden sizes (0.5: half the channels and units)",
    )
    d_width: float = setting(
        1.0,
        group="model",
        low=0,
        low_inclusive=False,
        high=64,
        help="scale the built-in discriminator's hidden sizes",
    )
    dataset: str = setting(
        "mnist",
        group="data",
        choices=dataset_names,
        check=check_dataset_name,
        help="the training images: a built-in data set (cifar10: torchvision's files under the "
        "data root), or folder:PATH, every PNG/JPEG under PATH, whose first-level sub-folders "
        "are classes",
    )
    data_root: str | None = setting(
        None,
        group="data",
        path=True,
        resumable=True,
        unset="$GANFORGE_DATA, else ~/.cache/ganforge",
        help="where datasets live",
    )
    download: bool = setting(
        False,
        group="data",
        resumable=True,
        help="allow downloads from the original dataset mirrors",
    )
    train_size: int | None = setting(
        None,
        group="data",
        low=1,
        unset="50,000 for mnist (the assignment's split), else all",
        help="train on at most this many images",
    )
    train_subset: str = setting(
        "first",
        group="data",
        choices=TRAIN_SUBSETS,
        help="which --train-size images: first (the first N, the assignment's cut), balanced "
        "(the first N/K of each of the K classes, for few-shot runs) or spread (N evenly spaced "
        "over the file order: every part of a folder sorted by name or kind)",
    )
    epochs: int = setting(
        10,
        group="schedule",
        low=1,
        resumable=True,
        help="passes over the training images; 0: no epoch limit, --max-steps or --time-budget "
        "ends the run (what either of them given without --epochs sets)",
    )
    max_steps: int | None = setting(
        None,
        group="schedule",
        low=1,
        resumable=True,
        unset="no limit",
        help="stop after this many iterations; given without --epochs, it is the run's length",
    )
    time_budget: float = setting(
        0.0,
        group="schedule",
        low=0,
        high=1e9,
        zero="no budget",
        resumable=True,
        help="stop once this many seconds of training steps are spent (grids, evaluations and "
        "checkpoints not counted), then finish as at the end of a run; given without --epochs, "
        "it is the run's length; with --epochs or --max-steps, whichever comes first ends it",
    )
    batch_size: int = setting(
        128,
        group="optimisation",
        low=1,
        help="images per iteration (the last incomplete batch of an epoch is dropped)",
    )
    optimizer: str = setting(
        "adam",
        group="optimisation",
        choices=OPTIMIZERS,
        help="adam, or rmsprop (the WGAN paper's), for both networks",
    )
    lr: float = setting(
        1e-3,
        group="optimisation",
        low=0,
        low_inclusive=False,
        high=10,
        help="learning rate of both networks",
    )
    lr_g: float | None = setting(
        None,
        group="optimisation",
        low=0,
        low_inclusive=False,
        high=10,
        unset="--lr",
        vae_neutral=None,
        help="the generator's own learning rate (two time-scale updates, TTUR, Heusel et al. 2017)",
    )
    lr_d: float | None = setting(
        None,
        group="optimisation",
        low=0,
        low_inclusive=False,
        high=10,
        unset="--lr",
        vae_neutral=None,
        help="the discriminator's own learning rate (TTUR)",
    )
    lr_decay: str = setting(
        "none",
        group="optimisation",
        choices=LR_DECAYS,
        help="none, or linear: both networks' rates fall linearly to 0 over the run's planned "
        "epochs (SNGAN's schedule, Miyato et al. 2018), so a run with it keeps its epochs when "
        "--max-steps or --time-budget is given",
    )
    beta1: float = setting(
        0.5, group="optimisation", low=0, high=1, help="Adam's β1 (RMSprop has none)"
    )
    beta2: float = setting(0.999, group="optimisation", low=0, high=1, help="Adam's β2")
    n_critic: int = setting(
        1,
        group="optimisation",
        low=1,
        vae_neutral=1,
        help="discriminator updates per generator update, each on its own real batch (WGAN: 5)",
        notes="An iteration is one G update and consumes N batches.",
    )
    gp_weight: float = setting(
        0.0,
        group="objective",
        low=0,
        high=1e6,
        zero="off",
        vae_neutral=0,
        help="WGAN-GP's λ: gradient penalty on random interpolates of real and fake images "
        "(one process only: DDP has no double backward)",
        notes="The penalty is `λ · mean((‖∇D(x̂)‖ − 1)²)`.",
    )
    r1_gamma: float = setting(
        0.0,
        group="objective",
        low=0,
        high=1e6,
        zero="off",
        vae_neutral=0,
        help="R1's γ: gradient penalty on real images (one process only)",
        notes="The penalty is `γ/2 · mean ‖∇D(x)‖²`.",
    )
    weight_clip: float = setting(
        0.0,
        group="objective",
        low=0,
        high=1e6,
        zero="off",
        vae_neutral=0,
        help="clip D's weights to [-c, c] after each update (WGAN: 0.01)",
    )
    spectral_norm: bool = setting(
        False,
        group="model",
        vae_neutral=False,
        help="spectral normalisation of D's linear and convolutional layers (PyTorch's "
        "parametrization, one power iteration per training forward)",
    )
    ema: float = setting(
        0.0,
        group="optimisation",
        low=0,
        high=1,
        zero="off",
        help="decay per iteration of an exponential moving average of G's weights, which "
        "grids, evaluations and ganforge sample use (e.g. 0.999)",
        notes="PyTorch's `AveragedModel` with one fused update of all weights, and TensorFlow's "
        "warm-up: the rate after s iterations is `min(DECAY, (1 + s) / (10 + s))`. Its "
        "BatchNorm statistics are re-estimated for the averaged weights (1,024 fixed noise "
        "draws) before each grid, evaluation and checkpoint.",
    )
    ema_every: int = setting(
        10,
        group="optimisation",
        low=1,
        help="average G into the EMA every N iterations, at the decay applied N times",
        notes="A run's last iterations after a multiple of N are left out. Runs from before "
        "this option averaged every iteration and resume that way.",
    )
    standing_stats: bool = setting(
        False,
        group="optimisation",
        help="sample and score G (without an EMA) with BatchNorm statistics re-estimated for "
        "its current weights, as an EMA's are; training is untouched",
    )
    augment: str = setting(
        "none",
        group="augmentation and hacks",
        choices=AUGMENTS,
        vae_neutral="none",
        help="augment every image D sees, real and fake, differentiably: diffaugment "
        "(DiffAugment, Zhao et al. 2020: every transform on every image) or ada (ADA, Karras "
        "et al. 2020: each transform with a probability p that tracks how sure D is of real "
        "images)",
    )
    augment_policy: str = setting(
        DEFAULT_POLICY,
        group="augmentation and hacks",
        help="the comma-separated transforms of diffaugment and ada: color (brightness, "
        "saturation, contrast), translation (shifts by up to 1/8 of the size), cutout (a "
        "blanked square of half the size)",
    )
    ada_target: float = setting(
        0.6,
        group="augmentation and hacks",
        low=0,
        low_inclusive=False,
        high=1,
        help="ADA's target for r_t = E[sign(D(x_real))]: p rises while r_t is above it",
    )
    ada_images: int = setting(
        100_000,
        group="augmentation and hacks",
        low=1,
        help="images over which ADA's p may move from 0 to 1 (adjusted every 4 iterations)",
    )
    xflip: bool = setting(
        False,
        group="augmentation and hacks",
        help="mirror each training image left to right with probability 1/2 (not for digits)",
    )
    real_label: float = setting(
        1.0,
        group="augmentation and hacks",
        low=0,
        low_inclusive=False,
        high=1,
        high_inclusive=True,
        vae_neutral=1.0,
        help="D's target for real images (0.9: one-sided label smoothing, Salimans et al. "
        "2016); for the losses whose D classifies",
    )
    flip_labels: float = setting(
        0.0,
        group="augmentation and hacks",
        low=0,
        high=0.5,
        zero="off",
        vae_neutral=0.0,
        help="probability that D is told the wrong label for an image; for the losses whose D "
        "classifies",
    )
    instance_noise: float = setting(
        0.0,
        group="augmentation and hacks",
        low=0,
        high=1e3,
        zero="off",
        vae_neutral=0.0,
        help="σ of Gaussian noise on every image D sees, falling linearly to 0 over the run's "
        "planned epochs (Sønderby et al. 2017), so a run with it keeps its epochs when "
        "--max-steps or --time-budget is given",
    )
    conditioning: str = setting(
        "none",
        group="model",
        choices=lambda: tuple(CONDITIONINGS),
        vae_neutral="none",
        help="class-conditional G and D: projection (G fed its noise times a label embedding, "
        "a projection D) or acgan (the same G, a D with a class-predicting head whose loss G "
        "adds to its own)",
        notes="projection: G is fed `z ⊙ e(y)` and D is `ψ(φ(x)) + ⟨e(y), φ(x)⟩` (Miyato & "
        "Koyama 2018); acgan: D's second head is trained on real images' labels (Odena et al. "
        "2017).",
    )
    num_classes: int = setting(
        0,
        group="model",
        low=0,
        zero="the dataset's class count",
        help="the labels a conditional run draws its fakes from",
    )
    noise_dim: int = setting(
        96,
        group="model",
        low=1,
        high=MAX_NOISE_DIM,
        help="dimension of G's noise (a VAE's latent code)",
    )
    noise: str = setting(
        "uniform",
        group="model",
        choices=NOISE_DISTRIBUTIONS,
        help="G's noise: uniform on [-1, 1) (the assignment's) or normal (a VAE's prior)",
    )
    image_size: int = setting(
        0,
        group="data",
        low=0,
        high=1024,
        zero="the architecture's: 28 for mlp and dcgan, 32 for radford and resnet",
        help="image height and width, to which datasets are resized (antialiased); radford "
        "and resnet draw 32 or 64",
    )
    channels: int = setting(
        0,
        group="data",
        choices=(0, 1, 3),
        zero="the architecture's or dataset's",
        help="1 or 3 (colour images are converted to grayscale for 1); mlp and dcgan draw 1, "
        "radford and resnet the dataset's",
    )
    seed: int = setting(
        0,
        group="system",
        low=0,
        high=MAX_SEED,
        help="seeds the weights, the data order and the noise: a CPU run repeats bit for bit",
    )
    device: str = setting(
        "auto",
        group="system",
        choices=DEVICES,
        resumable=True,
        help="where to train: auto takes CUDA, then MPS, then the CPU",
    )
    out: str | None = setting(
        None,
        group="output",
        path=True,
        unset="runs/<preset>-<timestamp>",
        help="the run folder; it must not exist or be empty",
    )
    sample_every: int = setting(
        250,
        group="output",
        low=1,
        resumable=True,
        help="save a grid from a fixed noise batch every N iterations",
    )
    grid_size: int = setting(
        64, group="output", low=1, high=MAX_GRID, help="images in each progress grid"
    )
    keep_checkpoints: int = setting(
        2,
        group="output",
        low=1,
        resumable=True,
        help="how many of the newest checkpoints to keep (plus best.pt, the lowest FID)",
    )
    checkpoint_every: int = setting(
        0,
        group="output",
        low=0,
        zero="at the ends of epochs only, at least 250 iterations apart",
        resumable=True,
        help="also checkpoint every N iterations",
    )
    on_nan: str = setting(
        "stop",
        group="system",
        choices=ON_NAN,
        resumable=True,
        help="what a NaN or Inf loss or weight does: stop (name the step and the network, keep "
        "the last good checkpoint, exit with status 2) or skip-step (drop any update whose "
        "gradient is not finite; stop after 50 such steps in a row)",
    )
    eval_every: int = setting(
        0,
        group="output",
        low=0,
        zero="off",
        resumable=True,
        help="log FID and class coverage every N iterations",
    )
    eval_num: int = setting(
        2000,
        group="output",
        low=4,
        high=MAX_SAMPLES,
        resumable=True,
        help="samples for each of those evaluations",
    )
    final_eval_num: int = setting(
        10_000,
        group="output",
        low=4,
        high=MAX_SAMPLES,
        zero="skip",
        resumable=True,
        help="samples for the full evaluation at the end of training",
    )
    tensorboard: bool = setting(
        False,
        group="output",
        resumable=True,
        help="also log scalars and grids to RUN/tensorboard (needs pip install tensorboard)",
    )
    wandb: bool = setting(
        False,
        group="output",
        resumable=True,
        help="also log scalars and grids as a Weights & Biases run, resumed with the run "
        "(needs pip install 'ganforge[wandb]'; WANDB_MODE=offline writes RUN/wandb for wandb sync)",
    )
    precision: str = setting(
        "auto",
        group="system",
        choices=PRECISIONS,
        help="arithmetic: auto (bf16 where the CPU or GPU has native bf16, else fp32; the "
        "run records which); fp32; bf16 (autocast: fast on GPUs and on CPUs with native bf16, "
        "emulated and slow elsewhere); fp16 (autocast with a gradient scaler, CUDA only)",
        notes="Losses, gradients and Adam's state stay fp32.",
    )
    compile: bool = setting(
        False,
        group="system",
        resumable=True,
        help="run both networks through torch.compile (the first iterations wait for the compiler)",
    )
    sync_bn: bool = setting(
        False,
        group="system",
        help="under torchrun on GPUs: BatchNorm statistics over the global batch",
    )
    background: str = setting(
        DEFAULT_BACKGROUND,
        group="data",
        choices=("white", "black", "#RRGGBB"),
        check=check_background,
        help="what transparent images (PNGs with alpha or a transparency table) are "
        "alpha-composited onto before training: white, black or a colour #RRGGBB",
    )
    classes: str | None = setting(
        None,
        group="data",
        check=check_class_selection,
        unset="every class",
        help="keep only these classes of a labelled dataset, by index or name, comma-separated "
        "(e.g. 5,6,7,8,9), for training and the evaluation's reference; a conditional run "
        "then has these classes, relabelled 0..k-1 in this order, their names kept",
    )
    init_from: str | None = setting(
        None,
        group="model",
        path=True,
        unset="fresh weights",
        help="start the networks from another run's newest checkpoint (its EMA generator where "
        "it has one, else its generator, and its discriminator or encoder), with fresh "
        "optimizers; the data set may differ (a run of user networks needs --trust-code)",
        notes="The source's path, step and checkpoint sha256 are recorded in `init_from.json`, "
        "`summary.json` and the report; a resumed run reads its own checkpoint, never the source.",
    )
    init_partial: bool = setting(
        False,
        group="model",
        help="with --init-from: layers whose shapes differ (another size, another class count) "
        "keep their fresh weights and the rest are carried, instead of a refusal",
    )
    freeze_d: int = setting(
        0,
        group="model",
        low=0,
        high=1000,
        zero="none",
        vae_neutral=0,
        help="freeze the discriminator's first K blocks (FreezeD, Mo et al. 2020), for "
        "fine-tuning with --init-from",
        notes="A block is a layer with weights and the weightless layers after it "
        "(`ganforge.nets.blocks`): mlp has 3, dcgan 4, radford 4 at 32 px and 5 at 64 px, "
        "resnet 5 at 32 px and 6 at 64 px, the last being the score layer (with a conditional "
        "D's class embedding or head), which must train: K is at most the count less one.",
    )
    accumulate: int = setting(
        1,
        group="optimisation",
        low=1,
        high=1024,
        help="gradient accumulation: each optimizer step (of D and of G) sums the gradients of "
        "K micro-batches of batch_size/K images, for less memory",
        notes="The random numbers are the whole batch's, so networks without BatchNorm get the "
        "whole batch's update up to rounding; BatchNorm layers normalise each micro-batch by "
        "its own statistics. batch_size must split into processes × K.",
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _read_settings() -> dict[str, Setting]:
    """The :class:`Setting` of each field, from its declaration and its annotation."""
    found = {}
    for field in fields(TrainConfig):
        declared = dict(field.metadata["setting"])
        parts = [part.strip() for part in str(field.type).split("|")]
        kind = "path" if declared.pop("path") else next(p for p in parts if p != "None")
        metavar = declared.pop("metavar") or METAVARS.get(kind, "")
        found[field.name] = Setting(
            name=field.name,
            kind=kind,
            default=field.default,
            optional="None" in parts,
            metavar=metavar,
            **declared,
        )
    return found


#: Every setting by name, in declaration order.
SETTINGS: dict[str, Setting] = _read_settings()
#: What ``train --resume`` may change: how long and how watched a run is, and where it finds
#: its data and device, never what it computes, so the continued run is the uninterrupted one.
RESUMABLE_CHANGES = tuple(name for name, declared in SETTINGS.items() if declared.resumable)


def settings(group: str | None = None) -> tuple[Setting, ...]:
    """The declared settings in declaration order; with ``group`` (a key of
    :data:`SETTING_GROUPS`), that group's only."""
    return tuple(s for s in SETTINGS.values() if group is None or s.group == group)


def _number_text(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else str(value)


def _closest(key: str) -> str:
    match = difflib.get_close_matches(key, SETTINGS, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file of config keys."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GanforgeError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise GanforgeError(f"config file {path} is not UTF-8 text") from None
    try:
        if path.suffix.lower() == ".toml":
            values = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            values = yaml.safe_load(text) or {}
        else:
            raise GanforgeError(f"config file {path} must end in .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        first_line = str(exc).splitlines()[0]
        raise GanforgeError(f"config file {path} is not valid: {first_line}") from None
    if not isinstance(values, dict):
        raise GanforgeError(f"config file {path} must hold a table of keys")
    for key, value in values.items():
        if not isinstance(key, str):
            raise GanforgeError(f"config file {path}: key {key!r} is not a setting name")
        if key not in SETTINGS:
            raise GanforgeError(f"config file {path}: unknown key {key!r}{_closest(key)}")
        if SETTINGS[key].kind == "float" and isinstance(value, str):
            # YAML 1.1 reads 2e-4 (no decimal point) as a string; take it as the number it is.
            with contextlib.suppress(ValueError):
                values[key] = float(value)
    return values


def _ends_by_length(max_steps: Any, time_budget: Any) -> bool:
    """Whether a ``max_steps`` or a non-zero ``time_budget`` bounds a run."""
    return max_steps is not None or time_budget not in (None, 0)


#: Settings whose schedules run over the planned epochs: a run with one of them on keeps its
#: epochs when a length is given, so that a run stopped early and resumed further anneals as
#: the uninterrupted longer run does.
EPOCH_SCHEDULES = ("instance_noise", "lr_decay")


def _length_given(given: dict[str, Any], merged: dict[str, Any]) -> bool:
    """Whether the user's ``given`` settings set the run's length without its epochs (and no
    setting of ``merged``, the preset's and the user's, runs a schedule over them). What a user
    says outranks what a preset assumed, so such a run has no epoch limit (epochs 0)."""
    scheduled = any(
        merged.get(key, SETTINGS[key].default) != SETTINGS[key].default for key in EPOCH_SCHEDULES
    )
    if "epochs" in given or scheduled:
        return False
    return _ends_by_length(given.get("max_steps"), given.get("time_budget"))


def build_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """Resolve preset → file → overrides into a validated :class:`TrainConfig`.

    ``overrides`` entries that are ``None`` are ignored (a flag that was not given). A
    ``max_steps`` or non-zero ``time_budget`` that the file or the overrides give without
    ``epochs`` sets epochs 0: the given length ends the run, not the preset's epochs (unless
    a setting of :data:`EPOCH_SCHEDULES` is on: its schedule runs over the epochs).
    """
    file_values = read_config_file(config_file) if config_file else {}
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    name = overrides.pop("preset", None) or preset or file_values.get("preset") or DEFAULT_PRESET
    if not isinstance(name, str) or name not in PRESETS:
        raise GanforgeError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    file_values.pop("preset", None)  # the chosen preset is the base the file's keys change
    given = {**file_values, **overrides}
    if _length_given(given, {**PRESETS[name], **given}):
        given["epochs"] = 0
    values = {**PRESETS[name], **given, "preset": name}
    unknown = [key for key in values if key not in SETTINGS]
    if unknown:
        raise GanforgeError(f"unknown config key {unknown[0]!r}{_closest(unknown[0])}")
    config = TrainConfig(**values)
    validate(config)
    return config


def config_from_checkpoint(values: Any, source: str, written_by: str) -> TrainConfig:
    """The validated :class:`TrainConfig` a checkpoint recorded.

    Keys this version does not know (a newer ganforge wrote it) are refused by name; keys it
    lacks (an older ganforge) take their defaults, which keep the older behaviour.
    """
    if not isinstance(values, dict):
        raise GanforgeError(f"{source} holds no config table")
    unknown = sorted(key for key in values if key not in SETTINGS)
    if unknown:
        raise GanforgeError(
            f"{source} was written by ganforge {written_by} with config keys this ganforge "
            f"({__version__}) does not know: {', '.join(unknown)}; use that version"
        )
    # Runs from before ema_every averaged their EMA every iteration.
    config = TrainConfig(**{"ema_every": 1, **values})
    try:
        validate(config, check_files=False)  # a reader may not have the run's data
    except GanforgeError as exc:
        raise GanforgeError(
            "\n".join(f"{source}: {line}" for line in str(exc).splitlines())
        ) from None
    return config


def resume_config(saved: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """``saved`` with the changes ``--resume`` allows (:data:`RESUMABLE_CHANGES`); any other
    change is refused, naming the run's value. ``overrides`` entries that are ``None`` were not
    given. A resumed run keeps the epochs it was planned with (its schedules run over them, so
    that the continued run is the uninterrupted one): ``--epochs`` lengthens it, and
    ``--max-steps`` or ``--time-budget`` end it within them."""
    given = {key: value for key, value in overrides.items() if value is not None}
    refused = [
        f"--{key.replace('_', '-')} cannot change when resuming (the run has "
        f"{getattr(saved, key)!r}); start a new run to change it"
        for key, value in given.items()
        if key not in RESUMABLE_CHANGES and value != getattr(saved, key)
    ]
    if refused:
        raise GanforgeError("\n".join(refused))
    config = dataclasses.replace(saved, **given)
    validate(config)
    return config


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(config: TrainConfig, check_files: bool = True) -> None:
    """Raise :class:`GanforgeError` naming every invalid field, one per line; with
    ``check_files``, also a dataset folder or data root that does not exist.

    Each setting's own checks come from its declaration (:class:`Setting`); the rules that
    span settings are written out in :func:`_cross_field_problems`."""
    found = {
        name: problem
        for name, declared in SETTINGS.items()
        if (problem := declared.problem(getattr(config, name))) is not None
    }
    if _is_int(config.epochs) and config.epochs == 0:
        # epochs 0 (no epoch limit) lies outside the declared range: only a given length may
        # end such a run.
        if _ends_by_length(config.max_steps, config.time_budget):
            del found["epochs"]
        else:
            found["epochs"] += "; 0 (no epoch limit) needs max_steps or time_budget to end the run"
    problems = [*found.values(), *_cross_field_problems(config, check_files)]
    if problems:
        raise GanforgeError("\n".join(problems))


def _cross_field_problems(config: TrainConfig, check_files: bool) -> list[str]:
    """The rules that span settings (or look at files): one line per broken rule."""
    problems: list[str] = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    architecture = config.architecture
    if architecture == GIVEN_NETWORKS:
        # A module:callable pair is held to the networks' contract when it is built
        # (ganforge.nets.check_networks); a script's own modules are trained as they are.
        need(
            config.loss != VAE_LOSS,
            "networks handed to train(): a VAE reads its encoder out of the discriminator's "
            "layers; build them with --architecture module:callable to train a VAE",
        )
        need(
            config.conditioning == "none",
            "networks handed to train(): conditioning wraps the networks as they are built; "
            "use --architecture module:callable, or build class-conditional networks yourself",
        )
    if _is_own_networks(architecture):
        need(
            config.g_width == 1 and config.d_width == 1,
            f"architecture {architecture}: g_width and d_width scale the built-in networks; "
            "your own networks set their own sizes",
        )
    if config.loss == VAE_LOSS:
        need(
            config.noise == "normal",
            "loss elbo (a VAE) samples its standard-normal prior: noise "
            f"must be normal, got {config.noise!r}",
        )
        # The options a VAE has no use for are refused rather than silently ignored.
        for key, declared in SETTINGS.items():
            neutral = declared.vae_neutral
            need(
                not declared.gan_only or getattr(config, key) == neutral,
                f"{key} is a GAN option; loss elbo (a VAE) takes {key} {neutral}",
            )
    if isinstance(config.dataset, str) and check_files:
        folder = config.dataset.removeprefix("folder:")
        if config.dataset.startswith("folder:") and folder:
            need(Path(folder).expanduser().is_dir(), f"image folder not found: {folder}")
    need(
        not (config.init_partial is True and config.init_from is None),
        "init_partial says what to do with the layers --init-from cannot carry; give init_from",
    )
    if config.architecture == "dcgan" and _is_int(config.batch_size):
        # BatchNorm needs two images to compute a batch statistic.
        need(config.batch_size >= 2, "batch_size must be at least 2 for the dcgan architecture")
    root = Path(config.data_root).expanduser() if isinstance(config.data_root, str) else None
    if check_files and root is not None and root.exists():
        need(root.is_dir(), f"data_root {config.data_root} is not a folder")
    for key in EPOCH_SCHEDULES if config.epochs == 0 else ():
        value = getattr(config, key)
        if SETTINGS[key].problem(value) is None:
            named = key if isinstance(value, float) else f"{key} {value}"  # lr_decay linear
            need(
                value == SETTINGS[key].default,
                f"{named} falls to 0 over the run's epochs, and a run ended by max_steps or "
                "time_budget alone has none; give epochs too",
            )
    return problems + _augmentation_problems(config)


def _augmentation_problems(config: TrainConfig) -> list[str]:
    """Augmentation and the GAN hacks, refused where they mean nothing."""
    problems = []
    if config.augment != "none" and isinstance(config.augment_policy, str):
        try:
            parse_policy(config.augment_policy)
        except ValueError as exc:
            problems.append(str(exc))
    if config.augment == "ada" and config.loss == "wgan":
        problems.append(
            "augment ada reads the sign of D's score on real images, which says nothing for a "
            "Wasserstein critic (its scores drift); use augment diffaugment"
        )
    if config.xflip is True and config.dataset == "mnist":
        problems.append(
            "xflip mirrors the training images, and a mirrored digit is not a digit; use it for "
            "data sets whose images may be mirrored (fashion-mnist, photos)"
        )
    labelled_loss = config.loss in LABELLED_LOSSES or config.loss == VAE_LOSS
    for key in ("real_label", "flip_labels"):
        if not labelled_loss and getattr(config, key) != SETTINGS[key].default:
            problems.append(
                f"{key} changes the labels of a classifying discriminator (loss "
                f"{' or '.join(LABELLED_LOSSES)}); loss {config.loss} has no labels"
            )
    return problems


#: How to rewrite docs/reference/train-settings.md after a setting changed.
REFERENCE_COMMAND = "python docs/reference/generate.py"


def _code(text: str) -> str:
    return f"`{text}`"


def _cell(text: str) -> str:
    """``text`` made safe for one cell of a Markdown table."""
    return text.replace("|", "\\|").replace("\n", " ")


def settings_reference_markdown() -> str:
    """The reference of every ``ganforge train`` setting as Markdown, generated from the
    declarations: per group, a table of flag, allowed values, default, the other presets'
    values, whether ``train --resume`` may change it, and what it does."""
    lines = [
        "# `ganforge train` settings",
        "",
        f"<!-- Generated from src/ganforge/config.py by `{REFERENCE_COMMAND}`; do not edit. -->",
        "",
        "Every setting of a training run, as `src/ganforge/config.py` declares it. A run takes "
        f"its settings from its preset (`--preset`, default `{DEFAULT_PRESET}`; "
        "`ganforge presets` lists them), then the `--config` file (TOML or YAML, keys named as "
        "in the first column without `--` and with `_` for `-`), then the flags. *Default* is "
        f"the value of a run that sets nothing (the `{DEFAULT_PRESET}` preset's); *other "
        "presets* lists the values other presets give it. A `--max-steps` or `--time-budget` "
        "given without `--epochs` sets epochs 0: the given length ends the run. *Resume*: "
        "whether `ganforge train --resume RUN` may change the setting; the others are the "
        "run's own and cannot change.",
    ]
    for group, about in SETTING_GROUPS.items():
        lines += [
            "",
            f"## {group}",
            "",
            f"{about[0].upper()}{about[1:]}.",
            "",
            "| flag | values | default | other presets | resume | meaning |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for declared in settings(group):
            if declared.kind == "bool":
                flag = f"{_code(declared.flag)}, {_code('--no-' + declared.flag[2:])}"
            else:
                flag = _code(f"{declared.flag} {declared.metavar}")
            others = "; ".join(
                f"{declared.value_text(value, _code)} ({', '.join(presets)})"
                for value, presets in declared.preset_values().items()
            )
            meaning = f"{declared.help[0].upper()}{declared.help[1:]}."
            cells = (
                flag,
                declared.values_text(_code),
                declared.value_text(declared.default_value(), _code),
                others,
                "yes" if declared.resumable else "",
                f"{meaning} {declared.notes}".strip(),
            )
            lines.append(f"| {' | '.join(_cell(cell) for cell in cells)} |")
    return "\n".join(lines) + "\n"


def check_trusted(config: TrainConfig, trust_code: bool, source: str | Path) -> None:
    """Refuse to read a run whose networks are a user's code unless ``trust_code``: rebuilding
    them imports that code (a checkpoint alone never runs code)."""
    if is_user_architecture(config.architecture) and not trust_code:
        module = config.architecture.partition(":")[0]
        raise GanforgeError(
            f"{source} was trained with user-defined networks ({config.architecture}): reading "
            f"it imports and runs the module {module}; add --trust-code if you trust that code"
        )
    if config.architecture == GIVEN_NETWORKS:
        raise GanforgeError(
            f"{source} was trained with networks that a Python script handed to "
            "ganforge.train(generator=..., discriminator=...); read it from Python with "
            "ganforge.load_run(RUN, generator=...)"
        )


def image_shape(config: TrainConfig) -> tuple[int, int, int]:
    """The ``(C, H, W)`` a run's networks draw and read: ``channels`` and ``image_size`` where
    set, else what the architecture's spec says (:func:`ganforge.nets.resolve_image_shape`:
    its fixed shape, colour folders then read as grayscale; for a flexible one such as
    ``radford`` the dataset's channels at its default size; for a user's networks the
    dataset's own shape). Checks that the built-in networks fit it."""
    try:
        return resolve_image_shape(
            config.architecture,
            config.channels,
            config.image_size,
            lambda: native_image_shape(config.dataset),
        )
    except ValueError as exc:
        raise GanforgeError(str(exc)) from None


def _network_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings both networks are built from, as keyword arguments of
    :func:`~ganforge.nets.build_models` and :func:`~ganforge.nets.build_generator`."""
    return {
        "architecture": config.architecture,
        "noise_dim": config.noise_dim,
        "conditioning": config.conditioning,
        "num_classes": config.num_classes,
        "image_shape": image_shape(config),
    }


def build_networks(
    config: TrainConfig, *, trust_code: bool, vae: bool = False
) -> tuple[nn.Module, nn.Module]:
    """The freshly initialised ``(generator, discriminator)`` pair that ``config`` describes:
    :func:`ganforge.nets.build_models` with the run's architecture, noise, initialisation,
    conditioning, widths and :func:`image_shape`. ``vae``: the discriminator's layers are to be
    read out as a VAE's encoder. A user's networks (``module:callable``) are imported only with
    ``trust_code``; ``ValueError`` when they do not keep :mod:`ganforge.nets.contract`."""
    return build_models(
        **_network_settings(config),
        init=config.init,
        trust_code=trust_code,
        g_width=config.g_width,
        d_width=config.d_width,
        needs=("vae",) if vae else (),
    )


def build_run_generator(config: TrainConfig, *, trust_code: bool) -> nn.Module:
    """The freshly initialised generator alone of the pair :func:`build_networks` builds (the
    same architecture, noise, conditioning, width and image shape), for a caller that only
    samples and reads its weights from a checkpoint."""
    return build_generator(**_network_settings(config), trust_code=trust_code, width=config.g_width)
