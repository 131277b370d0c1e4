"""One entry point to every dataset of :data:`ganforge.data.registry.DATASETS`:
:func:`load_dataset`, which cuts the splits and converts the images to the networks' shape.

Every dataset is converted to the model's ``image_shape`` ``(C, H, W)``: images of another size
are resized (antialiased) so the short side is ``max(H, W)`` and centre-cropped to ``H × W`` (for
square images, a plain resize); colour datasets are converted to grayscale for ``C = 1`` (by
ITU-R 601 luma) and folders to RGB for ``C = 3``, while a dataset refuses a channel count its
spec does not list (the grayscale MNIST family: ``C ≠ 1``).
:func:`~ganforge.data.registry.native_image_shape` says what a dataset holds before any
conversion.

The data root is ``--data-root``, else ``$GANFORGE_DATA``, else ``$XDG_CACHE_HOME/ganforge``
(``~/.cache/ganforge``).
"""

from __future__ import annotations

import os

from ganforge.data.classes import class_mask, resolve_classes, select_classes
from ganforge.data.images import (
    DEFAULT_BACKGROUND,
    ImageData,
    ImageShape,
    check_background,
    preprocess_images,
    resize_images,
    resolve_data_root,
    shape_text,
    shuffled_batches,
    to_uint8,
)
from ganforge.data.mnist import ensure_fashion_mnist, ensure_mnist
from ganforge.data.registry import (
    DATASETS,
    DatasetSpec,
    check_dataset_name,
    dataset_spec,
    native_image_shape,
)
from ganforge.errors import GanforgeError

__all__ = [
    "DATASETS",
    "SPLITS",
    "TRAIN_SUBSETS",
    "VALIDATION_SIZE",
    "ImageData",
    "check_dataset_name",
    "ensure_fashion_mnist",
    "ensure_mnist",
    "load_dataset",
    "native_image_shape",
    "preprocess_images",
    "resize_images",
    "resolve_data_root",
    "shuffled_batches",
    "to_uint8",
]

SPLITS = ("train", "val", "test")
VALIDATION_SIZE = 5_000
#: How ``train_size`` images are chosen: the first N (the assignment's cut), the first N/K of
#: each of the K classes (class-balanced, for few-shot runs), or N spread evenly over the
#: images in file order (a sample of every part of a folder sorted by name or by kind).
TRAIN_SUBSETS = ("first", "balanced", "spread")


def _check_channels(spec: DatasetSpec, name: str, image_shape: ImageShape) -> None:
    channels = image_shape[0]
    if channels in spec.channels:
        return
    if spec.channels == (1,):
        raise GanforgeError(
            f"{name} is grayscale: it cannot be loaded with {channels} channels as "
            f"{shape_text(image_shape)}"
        )
    raise GanforgeError(
        f"{name} can be loaded with {' or '.join(map(str, spec.channels))} channels, not as "
        f"{shape_text(image_shape)}"
    )


def load_dataset(
    name: str,
    split: str = "train",
    *,
    data_root: str | os.PathLike | None = None,
    download: bool = False,
    train_size: int | None = None,
    train_subset: str = "first",
    image_shape: ImageShape = (1, 28, 28),
    background: str = DEFAULT_BACKGROUND,
    classes: str | None = None,
) -> ImageData:
    """Load a split of a dataset of :data:`~ganforge.data.registry.DATASETS` into memory.

    ``split`` is ``train``, ``val`` or ``test``. For ``train`` and ``val``, the training images are
    cut as the assignment does: the first ``train_size`` images train (default: the spec's
    ``default_train_size``, 50,000 for ``mnist``, else all, so ``cifar10`` trains on its 50,000
    and validates on none unless ``train_size`` is smaller) and the next 5,000 validate. With
    ``train_subset="balanced"`` the ``train_size`` images are drawn evenly over the classes from
    the default training images (:meth:`ImageData.balanced`), with ``"spread"`` evenly over
    their file order (:meth:`ImageData.spread`), and the 5,000 after those validate. A dataset
    without splits (``folder:``) has a single split that serves as ``train``.

    Images come as uint8 ``image_shape`` ``(C, H, W)``: resized (and centre-cropped to keep the
    aspect ratio) when the dataset's differ, and converted to grayscale (C = 1) or RGB (C = 3)
    where the spec's ``channels`` allow; any other C is a :class:`GanforgeError`. Transparent
    images (a spec with ``transparency``: folders) are composited onto ``background``
    (``white``, ``black`` or ``#RRGGBB``) before that.

    ``classes`` (``--classes``, :mod:`ganforge.data.classes`) keeps the images of some classes,
    relabelled ``0 .. k-1``, before the cut: the default training images are then the kept ones
    among the default training images, and ``train_size`` counts kept images.
    """
    spec = dataset_spec(name)
    if split not in SPLITS:
        raise GanforgeError(f"unknown split {split!r}; choose train, val or test")
    if train_subset not in TRAIN_SUBSETS:
        raise GanforgeError(
            f"unknown train_subset {train_subset!r}; choose {', '.join(TRAIN_SUBSETS)}"
        )
    drawn = train_subset != "first" and train_size is not None
    _check_channels(spec, name, image_shape)
    check_background(background)
    channels, height, width = image_shape
    source = "test" if split == "test" and spec.splits else "train"
    root = resolve_data_root(data_root)
    # Only loaders that may meet transparency take a background (Loader's contract).
    options = {"background": background} if spec.transparency else {}
    data = spec.loader(
        name, source, root=root, download=download, image_shape=image_shape, **options
    )
    default = spec.default_train_size
    if classes is not None:
        keep = class_mask(data, indices := resolve_classes(data.classes, classes, name))
        if default:
            default = int(keep[:default].sum())
        data = select_classes(data, indices)
    if not spec.splits:
        return (
            data.pick(train_subset, train_size)
            if drawn
            else data.subset(0, train_size or len(data))
        )
    if split != "test":
        default = default or len(data)
        n_train = min(train_size or default, len(data))
        if drawn:  # drawn from the default training images (or more, if asked for more)
            pool = max(n_train, default)
            if split == "train":
                data = data.subset(0, pool).pick(train_subset, n_train)
            else:
                data = data.subset(pool, pool + VALIDATION_SIZE)
        else:
            start, stop = (0, n_train) if split == "train" else (n_train, n_train + VALIDATION_SIZE)
            data = data.subset(start, stop)
    # Converted after the cut, so only the images returned pay for it.
    if data.images.shape[1] == 3 and channels == 1:
        from torchvision.transforms.v2 import functional as TF

        data.images = TF.rgb_to_grayscale(data.images)
    data.images = resize_images(data.images, height, width)
    return data
