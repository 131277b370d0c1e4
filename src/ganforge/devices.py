"""The device a name stands for: one place that resolves ``auto`` and refuses a device the
machine does not have, for training, the command line and the Python API alike.

It sits low (it imports torch and :mod:`ganforge.errors` only) so that sampling from a run
needs nothing of :mod:`ganforge.training`.
"""

from __future__ import annotations

import torch

from ganforge.errors import GanforgeError


def resolve_device(name: str | torch.device) -> torch.device:
    """The ``torch.device`` of ``name``: ``auto`` picks CUDA, then Apple's MPS, then the CPU;
    any other name (``cpu``, ``cuda``, ``cuda:1``, ``mps``, or a ``torch.device``) is that
    device, refused in one line (:class:`~ganforge.errors.GanforgeError`) when torch does not
    know it or the machine lacks it."""
    if isinstance(name, str) and name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise GanforgeError(
            f"unknown device {name!r}: use auto, cpu, cuda (or cuda:N) or mps"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GanforgeError(f"device {name} was asked for, but no CUDA GPU is available")
    if device.type == "cuda" and device.index is not None:
        count = torch.cuda.device_count()
        if device.index >= count:
            raise GanforgeError(
                f"device {name} was asked for, but this machine has {count} CUDA GPU"
                f"{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise GanforgeError(f"device {name} was asked for, but Apple's MPS is not available")
    return device
