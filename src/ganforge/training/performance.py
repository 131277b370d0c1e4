"""Speed settings of a training run: arithmetic precision, ``torch.compile`` and memory layout.

* ``auto``: ``bf16`` where the device has native bf16, else ``fp32``
  (:func:`resolve_precision`).
* ``fp32``: full precision everywhere, the assignment's arithmetic.
* ``bf16``: the networks' forward and backward passes under ``torch.autocast`` in bfloat16;
  losses, gradients and Adam's state stay fp32. Fast on GPUs and on CPUs with native bf16
  (AVX512-BF16 or AMX); elsewhere the CPU emulates it, many times slower than fp32.
* ``fp16``: float16 autocast with a gradient scaler, CUDA only.

Which setting is fastest on a given machine is measured by ``make bench``
(``benchmarks/BENCHMARKS.md``), not assumed.
"""

from __future__ import annotations

import contextlib
import resource
import sys
from pathlib import Path

import torch
from torch import nn

from ganforge.errors import GanforgeError

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU does bf16 matmuls in hardware (AVX512-BF16 or AMX), as oneDNN sees it."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision a run computes in: ``auto`` is ``bf16`` where ``device`` does bf16 in
    hardware (a CUDA GPU that supports it; a CPU with AVX512-BF16 or AMX), ``fp32`` elsewhere
    (an emulated bf16 is many times slower); any other value is kept. A run records the
    resolved value, so a resume on another machine computes as the run began."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    else:
        native = device.type == "cpu" and cpu_has_native_bf16()
    return "bf16" if native else "fp32"


def precision_warning(precision: str, device: torch.device) -> str | None:
    """Refuse a precision the device cannot run; the warning to give when it runs but slowly."""
    if precision == "fp16" and device.type != "cuda":
        raise GanforgeError(
            f"precision fp16 is for CUDA GPUs; on {device.type} use bf16 or fp32 (CPUs have "
            "no fast fp16 arithmetic for it)"
        )
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        return (
            "this CPU has no native bf16 (AVX512-BF16 or AMX): bf16 autocast is emulated and "
            "runs many times slower than fp32 here"
        )
    return None


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context of a precision (``auto`` resolved for ``device``); a no-op for
    fp32."""
    precision = resolve_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A loss scaler that is active for fp16 only (fp16 gradients underflow without one)."""
    return torch.amp.GradScaler(device.type, enabled=resolve_precision(precision, device) == "fp16")


def has_convolutions(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())


def prepare_for_speed(model: nn.Module, device: torch.device) -> nn.Module:
    """Move a model to ``device``; convolutional models go to ``channels_last``, where oneDNN
    and cuDNN run convolutions and pooling fastest (see benchmarks/BENCHMARKS.md)."""
    model = model.to(device)
    if has_convolutions(model) and device.type in ("cpu", "cuda"):
        model = model.to(memory_format=torch.channels_last)
    return model


def fused_adam_supported(device: torch.device) -> bool:
    """Fused Adam (one kernel for all parameters) exists for these device types."""
    return device.type in ("cpu", "cuda", "mps")


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: allocated tensor memory on CUDA, the process's resident high-water
    mark (torch included) elsewhere."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    status = Path("/proc/self/status")
    if status.is_file():
        # VmHWM, not getrusage's ru_maxrss: that one carries over the parent's size from the
        # fork that preceded this process's exec.
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    scale = 2**20 if sys.platform == "darwin" else 2**10  # macOS reports bytes, Linux KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(model)`` when enabled; the first steps then take a while to compile.

    Static shapes: D sees two batch sizes (real and fake together, then fake alone), and two
    specialised graphs beat one graph with a symbolic batch dimension."""
    return torch.compile(model, dynamic=False) if enabled else model
