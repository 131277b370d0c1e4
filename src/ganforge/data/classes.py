"""``--classes``: keep only some classes of a labelled dataset.

A selection is text, comma-separated class names or indices (``5,6,7,8,9``; ``animals,food``),
in the order the kept classes take: the kept images are relabelled ``0 .. k-1`` in that order
and keep their class names, so that a conditional run has ``k`` classes.
"""

from __future__ import annotations

import torch

from ganforge.data.images import ImageData
from ganforge.errors import GanforgeError


def parse_class_selection(text: str) -> list[str]:
    """The selection's items, in order; one line for an empty item or a repeated one."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise GanforgeError(
            f"classes must be class names or indices separated by commas, e.g. 5,6,7; got {text!r}"
        )
    repeated = sorted({item for item in items if items.count(item) > 1})
    if repeated:
        raise GanforgeError(f"classes lists {', '.join(repeated)} more than once")
    return items


def check_class_selection(text: str) -> None:
    """A setting's check: refuses a selection that cannot be read (which classes a dataset
    has is known once it is loaded: :func:`resolve_classes`)."""
    parse_class_selection(text)


def resolve_classes(names: list[str], text: str, dataset: str) -> list[int]:
    """The indices, in ``names`` (a dataset's class names), of the selection ``text``: each
    item is a class name, else an index; one line for a class the dataset does not have, or
    a dataset without labels."""
    if len(names) < 2:
        raise GanforgeError(
            f"--classes keeps classes of a labelled dataset; {dataset} has none (a folder: "
            "dataset takes its classes from sub-folders)"
        )
    indices = []
    for item in parse_class_selection(text):
        if item in names:
            indices.append(names.index(item))
        elif item.isdigit() and int(item) < len(names):
            indices.append(int(item))
        else:
            shown = ", ".join(names[:12]) + (", …" if len(names) > 12 else "")
            raise GanforgeError(
                f"--classes: {dataset} has no class {item!r}; its classes are 0 to "
                f"{len(names) - 1}: {shown}"
            )
    if len(set(indices)) < len(indices):
        raise GanforgeError(f"--classes {text}: a class is named twice (by index and by name)")
    return indices


def class_mask(data: ImageData, indices: list[int]) -> torch.Tensor:
    """Which of ``data``'s images belong to the classes ``indices``: bool ``(N,)``."""
    return torch.isin(data.labels, torch.tensor(indices, dtype=data.labels.dtype))


def select_classes(data: ImageData, indices: list[int]) -> ImageData:
    """``data``'s images of the classes ``indices``, in their order, relabelled ``0 .. k-1`` in
    the order of ``indices``, with those classes' names."""
    keep = class_mask(data, indices)
    relabel = torch.full((len(data.classes),), -1, dtype=data.labels.dtype)
    relabel[torch.tensor(indices)] = torch.arange(len(indices), dtype=data.labels.dtype)
    return ImageData(
        data.name,
        data.images[keep],
        relabel[data.labels[keep]],
        [data.classes[i] for i in indices],
    )
