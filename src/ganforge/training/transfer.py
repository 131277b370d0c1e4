"""``--init-from RUN``: a new run whose networks start from another run's.

:func:`open_init_source` reads the source run's newest checkpoint once (a run of a user's
networks only with ``trust_code``, as every reader of a run); :func:`carry_weights` copies its
sampling generator (the EMA where it kept one, else G) and its discriminator (or a VAE's
encoder) into a new run's freshly built networks, tensor by tensor. The optimizers stay fresh.
A tensor that the new networks name differently or shape differently (another image size,
another class count) cannot be carried: they are named in one line and refused, unless
``partial`` leaves them at their fresh initialisation.

The source is recorded in the new run's folder (``init_from.json``: the checkpoint's path, its
step and the sha256 of its file), which the summary and the report repeat; a resumed run reads
its own checkpoint, never the source again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganforge.checkpoint_file import checkpoint_config, load_checkpoint, sampling_weights
from ganforge.config import TrainConfig, check_trusted
from ganforge.errors import GanforgeError
from ganforge.files import file_sha256
from ganforge.training.state import TrainedModels

#: The file of a run folder that records where its networks started.
INIT_RECORD = "init_from.json"
#: A conditional wrapper's prefix: an unconditional run's layers are its ``body``'s.
_WRAPPED = "body."


@dataclass(frozen=True)
class InitSource:
    """A source run's checkpoint, read once: its settings, its state and its identity."""

    checkpoint: dict[str, Any]
    config: TrainConfig
    sha256: str

    @property
    def path(self) -> str:
        return self.checkpoint["path"]

    def record(self) -> dict[str, Any]:
        """What the new run records of its source."""
        return {"checkpoint": self.path, "step": self.checkpoint["step"], "sha256": self.sha256}


def open_init_source(run: str | Path, trust_code: bool = False) -> InitSource:
    """The newest checkpoint of the run folder ``run`` (or the checkpoint file ``run``), its
    settings and the sha256 of its file; one line when it is not a readable run, or when it is
    a run of a user's networks and ``trust_code`` is off."""
    checkpoint = load_checkpoint(run)
    config = checkpoint_config(checkpoint)
    check_trusted(config, trust_code, checkpoint["path"])
    return InitSource(checkpoint, config, file_sha256(checkpoint["path"]))


def _canonical(key: str) -> str:
    return key.removeprefix(_WRAPPED)


def _plan(
    own: dict[str, torch.Tensor], source: dict[str, Any], what: str
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``(tensors to carry by own key, own tensors that cannot be carried, in words)``."""
    by_name = {_canonical(key): value for key, value in source.items()}
    carried, refused = {}, []
    for key, tensor in own.items():
        value = by_name.get(_canonical(key))
        if not isinstance(value, torch.Tensor):
            refused.append(f"{what} {key} (not in the source)")
        elif value.shape != tensor.shape:
            shapes = f"{'×'.join(map(str, value.shape))} there, {'×'.join(map(str, tensor.shape))}"
            refused.append(f"{what} {key} ({shapes} here)")
        else:
            carried[key] = value
    return carried, refused


def carry_weights(models: TrainedModels, source: InitSource, partial: bool = False) -> int:
    """Copy ``source``'s sampling generator and its partner into ``models``' networks; returns
    the tensors carried. Refuses in one line, naming them, the tensors that cannot be carried,
    unless ``partial`` (they then keep their fresh weights); refuses a source with none."""
    checkpoint = source.checkpoint
    partner = "encoder" if models.is_vae else "discriminator"
    pairs: list[tuple[str, nn.Module, dict[str, Any]]] = [
        ("generator", models.generator, sampling_weights(checkpoint)),
        (partner, models.partner, checkpoint["discriminator"]),  # the partner's slot
    ]
    plans = [(module, *_plan(module.state_dict(), state, what)) for what, module, state in pairs]
    refused = [line for _, _, lines in plans for line in lines]
    count = sum(len(carried) for _, carried, _ in plans)
    if not count:
        raise GanforgeError(
            f"--init-from {source.path}: none of its layers fit this run's networks "
            f"({source.config.architecture} there, {models.config.architecture} here)"
        )
    if refused and not partial:
        raise GanforgeError(
            f"--init-from {source.path}: {len(refused)} tensors cannot be carried: "
            f"{', '.join(refused)}; add --init-partial to start them fresh and carry the rest"
        )
    with torch.no_grad():
        for module, carried, _ in plans:
            module.load_state_dict({**module.state_dict(), **carried})
    if models.ema is not None:  # the average starts from the carried generator, not the fresh
        models.ema.module.load_state_dict(models.generator.state_dict())
    return count
