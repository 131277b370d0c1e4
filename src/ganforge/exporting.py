"""``ganforge export``: a run's generator as an ONNX file, for programs without PyTorch.

The file holds the generator that samples (the EMA one where the run kept an EMA), with
BatchNorm in evaluation mode, exported by torch's own exporter (``torch.onnx.export``, whose
default path needs the ``onnx`` and ``onnxscript`` packages: ``pip install ganforge[export]``).
Its inputs are ``noise`` ``(N, noise_dim)`` float32 (and ``labels`` ``(N,)`` int64 for a
class-conditional run), its output ``images`` ``(N, C, H, W)`` float32 in ``[-1, 1]``; ``N`` is
free (a dynamic batch axis).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ganforge.errors import GanforgeError, first_line
from ganforge.nets import class_count, generate_images
from ganforge.sampling import load_generator

#: The formats ``ganforge export --format`` writes.
FORMATS = ("onnx",)


class _Sampler(nn.Module):
    """The generator with its inputs named and typed for the file, in float32."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return generate_images(self.generator, noise, labels)


def export_onnx(
    run_or_checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    trust_code: bool = False,
    generator: nn.Module | None = None,
) -> Path:
    """Write the generator of a run (see :func:`~ganforge.sampling.load_generator` for
    ``trust_code`` and ``generator``) to ``out`` as ONNX; returns ``out``."""
    out = Path(out)
    try:
        import onnx  # noqa: F401 (the exporter needs it)
        import onnxscript  # noqa: F401
    except ImportError:
        raise GanforgeError(
            "export needs the onnx and onnxscript packages: pip install 'ganforge[export]'"
        ) from None
    generator, config = load_generator(
        run_or_checkpoint, trust_code=trust_code, generator=generator
    )
    model = _Sampler(generator.float().eval())
    classes = class_count(generator)
    batch = torch.export.Dim("batch", min=1)
    noise = torch.zeros(2, config.noise_dim)
    if classes:
        inputs, names = (noise, torch.zeros(2, dtype=torch.long)), ["noise", "labels"]
        dynamic = {"noise": {0: batch}, "labels": {0: batch}}
    else:
        inputs, names, dynamic = (noise,), ["noise"], {"noise": {0: batch}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's progress and deprecation notes
            program = torch.onnx.export(
                model,
                inputs,
                dynamic_shapes=dynamic,
                input_names=names,
                output_names=["images"],
                dynamo=True,
                verbose=False,
            )
        tmp = out.with_name(f".{out.name}.tmp")
        program.save(str(tmp))
        tmp.replace(out)
    except OSError as exc:
        raise GanforgeError(f"cannot write {out}: {exc.strerror or exc}") from None
    except Exception as exc:  # the exporter's errors are many and long: one line of them
        raise GanforgeError(f"the generator could not be exported: {first_line(exc)}") from None
    return out
