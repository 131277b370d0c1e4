"""The training configuration: one flat dataclass, built from a preset, a file and CLI flags.

Later sources override earlier ones: :data:`ganforge.presets.PRESETS` entry → ``--config`` file
(TOML or YAML, same keys as :class:`TrainConfig`) → command-line flags.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from ganforge.augment import AUGMENTS, parse_policy
from ganforge.data import TRAIN_SUBSETS, check_dataset_name, native_image_shape
from ganforge.errors import GanforgeError
from ganforge.nets import (
    ARCHITECTURES,
    CONDITIONINGS,
    INITS,
    NATIVE_IMAGE_SHAPE,
    NOISE_DISTRIBUTIONS,
    check_image_shape,
    is_user_architecture,
)
from ganforge.objectives import LABELLED_LOSSES, LIKELIHOODS, OBJECTIVES, VAE_LOSS
from ganforge.presets import PRESETS
from ganforge.version import __version__

DEVICES = ("auto", "cpu", "cuda", "mps")
#: Arithmetic precisions (see :mod:`ganforge.training.performance`).
PRECISIONS = ("fp32", "bf16", "fp16")
OPTIMIZERS = ("adam", "rmsprop")
MAX_SEED = 2**63 - 16  # torch seeds are signed 64-bit, and a run uses seed to seed + 3
MAX_SAMPLES = 1_000_000  # per evaluation or sampling command: about 0.8 GB of 28×28 images
MAX_NOISE_DIM = 65_536
MAX_GRID = 10_000
ON_NAN = ("stop", "skip-step")
#: The architecture of a run whose networks a Python script handed in (``ganforge.train(
#: generator=..., discriminator=...)``): only the same script can rebuild them.
GIVEN_NETWORKS = "given"
#: What ``train --resume`` may change: how long and how watched a run is, and where it finds
#: its data and device, never what it computes, so the continued run is the uninterrupted one.
RESUMABLE_CHANGES = (
    "device",
    "data_root",
    "download",
    "epochs",
    "max_steps",
    "time_budget",
    "sample_every",
    "keep_checkpoints",
    "checkpoint_every",
    "eval_every",
    "eval_num",
    "final_eval_num",
    "tensorboard",
    "compile",
    "on_nan",
)


@dataclass
class TrainConfig:
    """Everything that defines a training run. Field names double as CLI flags and file keys."""

    preset: str = "gan"
    description: str = ""
    architecture: str = "mlp"  # ganforge.nets.ARCHITECTURES, or your own: "module:callable"
    loss: str = "gan"  # ganforge.objectives.OBJECTIVES, or elbo: train a VAE
    likelihood: str = "bernoulli"  # the VAE's p(x | z): bernoulli | gaussian
    init: str = "default"  # default | xavier
    g_width: float = 1.0  # scales the built-in generator's hidden sizes (1: the architecture's)
    d_width: float = 1.0  # scales the built-in discriminator's hidden sizes
    dataset: str = "mnist"  # mnist | fashion-mnist | folder:PATH
    data_root: str | None = None
    download: bool = False  # allow downloads from the original dataset mirrors
    train_size: int | None = None  # None: 50,000 for mnist (the assignment's split), else all
    train_subset: str = "first"  # first: the first train_size images; balanced: even over classes
    epochs: int = 10
    max_steps: int | None = None  # stop after this many iterations, whatever the epochs say
    time_budget: float = 0.0  # stop after this many seconds of training steps (0: no budget)
    batch_size: int = 128
    optimizer: str = "adam"  # adam | rmsprop (the WGAN paper's), for both networks
    lr: float = 1e-3
    lr_g: float | None = None  # the generator's learning rate (None: lr)
    lr_d: float | None = None  # the discriminator's learning rate (None: lr); TTUR
    beta1: float = 0.5  # Adam's betas (RMSprop has none)
    beta2: float = 0.999
    n_critic: int = 1  # discriminator updates per generator update
    gp_weight: float = 0.0  # WGAN-GP's λ: gradient penalty on real/fake interpolates (0: off)
    r1_gamma: float = 0.0  # R1's γ: gradient penalty on real images (0: off)
    weight_clip: float = 0.0  # clip D's weights to [-c, c] after each update (0: off)
    spectral_norm: bool = False  # spectral normalisation of D's layers
    ema: float = 0.0  # decay per iteration of an EMA of G's weights, used for samples (0: off)
    ema_every: int = 10  # average G into the EMA every N iterations (at decay**N)
    standing_stats: bool = False  # sample G with BatchNorm statistics of its final weights
    augment: str = "none"  # none | diffaugment | ada: augment what D sees, real and fake
    augment_policy: str = "color,translation,cutout"  # the transforms of diffaugment and ada
    ada_target: float = 0.6  # ADA's target for r_t = E[sign(D(x_real))]
    ada_images: int = 100_000  # images over which ADA's p can move from 0 to 1
    xflip: bool = False  # mirror half of the training images (not for digits)
    real_label: float = 1.0  # D's target for real images (0.9: one-sided label smoothing)
    flip_labels: float = 0.0  # probability that D is told the wrong label for an image
    instance_noise: float = 0.0  # σ of noise on D's inputs, annealed to 0 over the epochs
    conditioning: str = "none"  # none | projection | acgan: class-conditional G and D
    num_classes: int = 0  # labels a conditional run draws from (0: the dataset's class count)
    noise_dim: int = 96  # the dimension of G's noise (a VAE's latent code)
    noise: str = "uniform"  # uniform on [-1, 1) | normal (a VAE's prior)
    image_size: int = 0  # 0: the architecture's (mlp, dcgan: 28; radford: 32); radford: 32 | 64
    channels: int = 0  # 0: the architecture's (mlp, dcgan: 1), radford: the dataset's (1 | 3)
    seed: int = 0
    device: str = "auto"
    out: str | None = None  # run folder; None: runs/<preset>-<timestamp>
    sample_every: int = 250
    grid_size: int = 64  # images in the fixed-noise progress grid
    keep_checkpoints: int = 2
    checkpoint_every: int = 0  # also checkpoint every N iterations (0: at epoch ends only)
    on_nan: str = "stop"  # stop | skip-step: what a NaN/Inf loss or gradient does
    eval_every: int = 0  # log FID and class coverage every N iterations (0: off)
    eval_num: int = 2000  # samples for each of those evaluations
    final_eval_num: int = 10_000  # samples for the full evaluation at the end (0: skip)
    tensorboard: bool = False  # also log to <run>/tensorboard
    precision: str = "fp32"  # see PRECISIONS
    compile: bool = False  # torch.compile the networks
    sync_bn: bool = False  # SyncBatchNorm under torchrun (CUDA only)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELD_TYPES = {f.name: f.type for f in fields(TrainConfig)}


def _closest(key: str) -> str:
    match = difflib.get_close_matches(key, FIELD_TYPES, n=1)
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
        if key not in FIELD_TYPES:
            raise GanforgeError(f"config file {path}: unknown key {key!r}{_closest(key)}")
        if "float" in FIELD_TYPES[key] and isinstance(value, str):
            # YAML 1.1 reads 2e-4 (no decimal point) as a string; take it as the number it is.
            with contextlib.suppress(ValueError):
                values[key] = float(value)
    return values


def build_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """Resolve preset → file → overrides into a validated :class:`TrainConfig`.

    ``overrides`` entries that are ``None`` are ignored (a flag that was not given).
    """
    file_values = read_config_file(config_file) if config_file else {}
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    name = overrides.pop("preset", None) or preset or file_values.get("preset") or "gan"
    if not isinstance(name, str) or name not in PRESETS:
        raise GanforgeError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    file_values.pop("preset", None)  # the chosen preset is the base the file's keys change
    values = {**PRESETS[name], **file_values, **overrides, "preset": name}
    unknown = [key for key in values if key not in FIELD_TYPES]
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
    unknown = sorted(key for key in values if key not in FIELD_TYPES)
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
    """``saved`` with the changes ``--resume`` allows; any other change is refused, naming the
    run's value. ``overrides`` entries that are ``None`` were not given."""
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
    ``check_files``, also a dataset folder or data root that does not exist."""
    problems: list[str] = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    def choice(key: str, options) -> None:
        value = getattr(config, key)
        need(value in options, f"{key} must be one of {', '.join(options)}, got {value!r}")

    def integer(key: str, minimum: int, optional: bool = False, maximum: int | None = None):
        value = getattr(config, key)
        if optional and value is None:
            return
        if maximum is None:
            ok, bounds = _is_int(value) and value >= minimum, f"≥ {minimum}"
        else:
            ok = _is_int(value) and minimum <= value <= maximum
            bounds = f"from {minimum} to {maximum:,}"
        need(ok, f"{key} must be an integer {bounds}, got {value!r}")

    def number(key: str, low: float, high: float, low_inclusive: bool = False) -> None:
        value = getattr(config, key)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and (value >= low if low_inclusive else value > low) and value < high
        bounds = f"{'≥' if low_inclusive else '>'} {low} and < {high}"
        need(ok, f"{key} must be a number {bounds}, got {value!r}")

    architecture = config.architecture
    own_networks = isinstance(architecture, str) and (
        is_user_architecture(architecture) or architecture == GIVEN_NETWORKS
    )
    if not own_networks:
        choice("architecture", (*ARCHITECTURES, "module:callable"))
    else:
        need(
            config.loss != VAE_LOSS,
            f"architecture {architecture}: a VAE reads its encoder out of a built-in "
            "discriminator's layers; your own networks train as GANs",
        )
        need(
            config.conditioning == "none",
            f"architecture {architecture}: conditioning wraps the built-in networks; build "
            "class-conditional networks of your own as plain GANs",
        )
        need(
            config.g_width == 1 and config.d_width == 1,
            f"architecture {architecture}: g_width and d_width scale the built-in networks; "
            "your own networks set their own sizes",
        )
    choice("loss", (*OBJECTIVES, VAE_LOSS))
    choice("likelihood", LIKELIHOODS)
    choice("noise", NOISE_DISTRIBUTIONS)
    if config.loss == VAE_LOSS:
        _check_vae(config, need)
    choice("init", tuple(INITS))
    choice("device", DEVICES)
    choice("precision", PRECISIONS)
    choice("optimizer", OPTIMIZERS)
    choice("conditioning", tuple(CONDITIONINGS))
    choice("train_subset", TRAIN_SUBSETS)
    integer("num_classes", 0)
    if isinstance(config.dataset, str):
        try:
            check_dataset_name(config.dataset)
        except GanforgeError as exc:
            problems.append(str(exc))
        folder = config.dataset.removeprefix("folder:")
        is_folder = config.dataset.startswith("folder:") and folder
        if check_files and is_folder and not Path(folder).expanduser().is_dir():
            problems.append(f"image folder not found: {folder}")
    else:
        problems.append(f"dataset must be a string, got {config.dataset!r}")
    integer("epochs", 1)
    integer("max_steps", 1, optional=True)
    integer("batch_size", 1)
    integer("train_size", 1, optional=True)
    integer("noise_dim", 1, maximum=MAX_NOISE_DIM)
    integer("image_size", 0, maximum=1024)
    need(
        _is_int(config.channels) and config.channels in (0, 1, 3),
        f"channels must be 0 (the architecture's or dataset's), 1 or 3, got {config.channels!r}",
    )
    integer("seed", 0, maximum=MAX_SEED)
    integer("sample_every", 1)
    integer("grid_size", 1, maximum=MAX_GRID)
    integer("keep_checkpoints", 1)
    integer("n_critic", 1)
    integer("ema_every", 1)
    integer("checkpoint_every", 0)
    choice("on_nan", ON_NAN)
    integer("eval_every", 0)
    final_eval_num = config.final_eval_num
    need(
        _is_int(final_eval_num) and (final_eval_num == 0 or 4 <= final_eval_num <= MAX_SAMPLES),
        f"final_eval_num must be 0 (skip) or an integer from 4 to {MAX_SAMPLES:,}, got "
        f"{final_eval_num!r}",
    )
    integer("eval_num", 4, maximum=MAX_SAMPLES)
    if config.architecture == "dcgan" and _is_int(config.batch_size):
        # BatchNorm needs two images to compute a batch statistic.
        need(config.batch_size >= 2, "batch_size must be at least 2 for the dcgan architecture")
    number("lr", 0, 10)
    for key in ("gp_weight", "r1_gamma", "weight_clip"):
        number(key, 0, 1e6, low_inclusive=True)
    number("ema", 0, 1, low_inclusive=True)
    for key in ("lr_g", "lr_d"):
        if getattr(config, key) is not None:
            number(key, 0, 10)
    _check_small_data_options(config, need, choice, number, integer)
    number("g_width", 0, 64)
    number("d_width", 0, 64)
    number("time_budget", 0, 1e9, low_inclusive=True)
    number("beta1", 0, 1, low_inclusive=True)
    number("beta2", 0, 1, low_inclusive=True)
    for key in ("data_root", "out"):
        value = getattr(config, key)
        need(value is None or isinstance(value, str), f"{key} must be a path, got {value!r}")
    root = Path(config.data_root).expanduser() if isinstance(config.data_root, str) else None
    if check_files and root is not None and root.exists():
        need(root.is_dir(), f"data_root {config.data_root} is not a folder")
    for key in ("download", "tensorboard", "compile", "sync_bn", "spectral_norm", "standing_stats"):
        value = getattr(config, key)
        need(isinstance(value, bool), f"{key} must be true or false, got {value!r}")
    if problems:
        raise GanforgeError("\n".join(problems))


def _check_small_data_options(config: TrainConfig, need, choice, number, integer) -> None:
    """Augmentation and the GAN hacks, refused where they mean nothing."""
    choice("augment", AUGMENTS)
    if config.augment != "none" and isinstance(config.augment_policy, str):
        try:
            parse_policy(config.augment_policy)
        except ValueError as exc:
            need(False, str(exc))
    elif config.augment != "none":
        need(False, f"augment_policy must be a string, got {config.augment_policy!r}")
    number("ada_target", 0, 1)
    integer("ada_images", 1)
    if config.augment == "ada" and config.loss == "wgan":
        need(
            False,
            "augment ada reads the sign of D's score on real images, which says nothing for a "
            "Wasserstein critic (its scores drift); use augment diffaugment",
        )
    need(isinstance(config.xflip, bool), f"xflip must be true or false, got {config.xflip!r}")
    if config.xflip is True and config.dataset == "mnist":
        need(
            False,
            "xflip mirrors the training images, and a mirrored digit is not a digit; use it for "
            "data sets whose images may be mirrored (fashion-mnist, photos)",
        )
    number("real_label", 0, 1.000001)
    number("flip_labels", 0, 0.5, low_inclusive=True)
    number("instance_noise", 0, 1e3, low_inclusive=True)
    labelled_loss = config.loss in LABELLED_LOSSES or config.loss == VAE_LOSS
    for key, neutral in (("real_label", 1.0), ("flip_labels", 0.0)):
        if not labelled_loss and getattr(config, key) != neutral:
            need(
                False,
                f"{key} changes the labels of a classifying discriminator (loss "
                f"{' or '.join(LABELLED_LOSSES)}); loss {config.loss} has no labels",
            )


def _check_vae(config: TrainConfig, need) -> None:
    """The options a VAE has no use for are refused rather than silently ignored."""
    need(
        config.noise == "normal",
        "loss elbo (a VAE) samples its standard-normal prior: noise "
        f"must be normal, got {config.noise!r}",
    )
    unused = {
        "conditioning": ("none", config.conditioning),
        "n_critic": (1, config.n_critic),
        "gp_weight": (0, config.gp_weight),
        "r1_gamma": (0, config.r1_gamma),
        "weight_clip": (0, config.weight_clip),
        "spectral_norm": (False, config.spectral_norm),
        "augment": ("none", config.augment),
        "real_label": (1.0, config.real_label),
        "flip_labels": (0.0, config.flip_labels),
        "instance_noise": (0.0, config.instance_noise),
        "lr_g": (None, config.lr_g),
        "lr_d": (None, config.lr_d),
    }
    for key, (neutral, value) in unused.items():
        need(value == neutral, f"{key} is a GAN option; loss elbo (a VAE) takes {key} {neutral}")


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
    set, else the architecture's fixed shape (colour folders are then read as grayscale), else
    for ``radford`` the dataset's channels at 32 pixels, and for a user's networks the dataset's
    own shape. Checks that the built-in networks fit it."""
    native = NATIVE_IMAGE_SHAPE.get(config.architecture)
    if native is not None:
        channels, size = config.channels or native[0], config.image_size or native[1]
    elif config.architecture not in NATIVE_IMAGE_SHAPE:  # the user's networks: the data's shape
        channels, data_size = native_image_shape(config.dataset)[:2]
        channels, size = config.channels or channels, config.image_size or data_size
    else:
        channels = config.channels or native_image_shape(config.dataset)[0]
        size = config.image_size or 32
    try:
        check_image_shape(config.architecture, (channels, size, size))
    except ValueError as exc:
        raise GanforgeError(str(exc)) from None
    return channels, size, size


def format_config(config: TrainConfig) -> str:
    return json.dumps(config.to_dict(), indent=2)
