"""``ganforge train``: a whole training run, on one process or on each of the processes that
``torchrun`` starts (see :mod:`ganforge.training.distributed`).

:func:`train` checks what can only be known at run time (:func:`check_environment`,
:func:`check_data`) before it creates anything; builds the trained models and the run's state
(or resumes both from a checkpoint); opens the run folder on rank 0; runs the loop
(:func:`ganforge.training.loop.run_loop`) and finishes the run folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ganforge.config import TrainConfig, image_shape
from ganforge.console import SILENT, Console
from ganforge.data import ImageData, load_dataset
from ganforge.errors import GanforgeError
from ganforge.eval import ReferenceSet, reference_set
from ganforge.nets import import_user_architecture, is_user_architecture
from ganforge.objectives import OBJECTIVES
from ganforge.training.checkpoints import ResumePoint, RunState, check_resumable, resume_from
from ganforge.training.distributed import (
    Shard,
    barrier,
    check_sync_batchnorm,
    close_process_group,
    init_process_group,
    process_device,
    shard_from_environment,
    share_main_outcome,
)
from ganforge.training.loop import iterate_training, run_loop, steps_per_epoch
from ganforge.training.performance import precision_warning
from ganforge.training.run_folder import (
    RECONSTRUCTED,
    RunFolder,
    RunSummary,
    check_run_folder_is_free,
    prepare_run_folder,
    summary_writer_class,
)
from ganforge.training.state import build_trained_models


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; other names are checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GanforgeError("device cuda was asked for, but no CUDA GPU is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise GanforgeError("device mps was asked for, but Apple's MPS is not available")
    return torch.device(name)


@dataclass(frozen=True)
class RunPlan:
    """How long the run is: ``per_epoch`` iterations an epoch, ``total`` in all, ``start_step``
    done already (a resumed run)."""

    per_epoch: int
    total: int
    start_step: int


# What the settings alone cannot tell is checked here, in two steps, before anything is
# created, so that a bad input writes nothing (settings themselves: ganforge.config.validate):
# what the machine, the processes and the code tell, before the processes join; what the data tells,
# once it is loaded.


def check_environment(
    config: TrainConfig, shard: Shard, device: torch.device, resume: ResumePoint | None
) -> str | None:
    """Refuse what the device or the processes cannot run, an occupied run folder, or a user's
    networks that cannot be imported; return a warning for what runs but slowly."""
    slow_precision = precision_warning(config.precision, device)
    if is_user_architecture(config.architecture):
        try:
            import_user_architecture(config.architecture)
        except ValueError as exc:
            raise GanforgeError(str(exc)) from None
    if config.sync_bn:
        check_sync_batchnorm(device)
    if shard.is_distributed and (config.gp_weight or config.r1_gamma):
        raise GanforgeError(
            "gradient penalties (gp_weight, r1_gamma) need a double backward, which DDP does "
            "not support: train them in one process"
        )
    if config.batch_size % shard.world_size:
        raise GanforgeError(
            f"batch size {config.batch_size} does not split evenly over {shard.world_size} "
            "processes; the batch size is the global batch"
        )
    if resume is None and config.out:  # every rank, so that all stop alike (a shared disk)
        check_run_folder_is_free(Path(config.out))
    if config.tensorboard:
        summary_writer_class()  # tensorboard is installed, or say so before any work
    return slow_precision


def check_data(
    config: TrainConfig, data: ImageData, device: torch.device, resume: ResumePoint | None
) -> RunPlan:
    """Refuse a data set too small or unlabelled for the settings, or a resume with nothing
    left to do; return the run's length."""
    if len(data) < config.batch_size:
        raise GanforgeError(
            f"batch size {config.batch_size} is larger than the {len(data)} training images"
        )
    per_epoch = steps_per_epoch(len(data), config.batch_size, config.n_critic)
    if per_epoch == 0:
        raise GanforgeError(
            f"{config.n_critic} discriminator updates of batch {config.batch_size} need "
            f"{config.n_critic * config.batch_size} images per iteration; there are {len(data)}"
        )
    if config.conditioning != "none" and len(data.classes) < 2:
        raise GanforgeError(
            f"conditioning {config.conditioning} needs labelled images; {config.dataset} has "
            "one class (a folder: dataset takes its classes from sub-folders)"
        )
    total = per_epoch * config.epochs
    total = min(total, config.max_steps) if config.max_steps else total
    if resume is not None:
        check_resumable(resume, device, total)
    return RunPlan(per_epoch, total, resume.step if resume is not None else 0)


def train(
    config: TrainConfig,
    console: Console = SILENT,
    resume: ResumePoint | None = None,
    networks: tuple[nn.Module, nn.Module] | None = None,
) -> RunSummary | None:
    """Run a whole training job as ``ganforge train`` does; return where it went and how fast.

    ``console``: where progress and notices go (:data:`~ganforge.console.SILENT` by default).
    ``resume``: continue the run of :func:`~ganforge.training.checkpoints.open_resume` from its
    newest checkpoint, exactly as if it had never stopped (``config`` is then its config).
    ``networks``: a script's own ``(generator, discriminator)``, trained in place (``config``'s
    architecture is then :data:`~ganforge.config.GIVEN_NETWORKS`).

    Under torchrun every process calls this; rank 0 writes the run folder and returns its
    summary, the other ranks train and return ``None``. SIGINT and SIGTERM stop it after the
    current step with a checkpoint (:class:`~ganforge.errors.TrainingStopped`).
    """
    shard = shard_from_environment()
    device = process_device(shard, resolve_device(config.device))
    slow = check_environment(config, shard, device, resume)
    console = console if shard.is_main else SILENT
    if slow:
        console.warning(slow)
    created_group = init_process_group(shard, device)
    try:
        return _train(config, console, shard, device, resume, networks)
    finally:
        if created_group:
            close_process_group()


def _training_reference(config: TrainConfig) -> tuple[ReferenceSet | None, str | None]:
    """The test set embedded by the dataset's evaluator, for ``eval_every`` and the final
    evaluation: ``(reference, None)``; ``(None, why)`` when no evaluator fits the dataset, and
    ``(None, None)`` when both evaluations are off."""
    if not (config.eval_every or config.final_eval_num):
        return None, None
    try:
        reference = reference_set(
            config.dataset, config.data_root, config.train_size, train_subset=config.train_subset
        )
        return reference, None
    except GanforgeError as exc:
        return None, f"evaluation is off: {exc}"


def _load_training_data(config: TrainConfig, shard: Shard) -> tuple[TrainConfig, ImageData]:
    """The training images at the networks' size, and ``config`` with that size and the data
    set's class count filled in (both are fixed in the run's config, and so in checkpoints)."""
    channels, size, _ = image_shape(config)
    config = dataclasses.replace(config, channels=channels, image_size=size)
    if shard.local_rank != 0:
        barrier(shard)  # local rank 0 fetches or unpacks the data first
    data = load_dataset(
        config.dataset,
        "train",
        data_root=config.data_root,
        download=config.download,
        train_size=config.train_size,
        train_subset=config.train_subset,
        image_shape=(channels, size, size),
    )
    if shard.local_rank == 0:
        barrier(shard)
    if config.conditioning != "none" and len(data.classes) >= 2:
        config = dataclasses.replace(config, num_classes=config.num_classes or len(data.classes))
    return config, data


def _train(
    config: TrainConfig,
    console: Console,
    shard: Shard,
    device: torch.device,
    resume: ResumePoint | None,
    networks: tuple[nn.Module, nn.Module] | None,
) -> RunSummary | None:
    main = shard.is_main
    config, data = _load_training_data(config, shard)
    plan = check_data(config, data, device, resume)
    # After the data checks, so that refused input writes nothing, not even the evaluation
    # caches; before any seeding, so that building the evaluator does not shift the training
    # RNG streams.
    reference, no_evaluation = _training_reference(config) if main else (None, None)
    objective = OBJECTIVES.get(config.loss)  # None: a VAE, which the D-wins warning skips
    run_state = RunState.start(config, shard, device, objective.d_wins_below if objective else None)
    if no_evaluation:  # said once the data is known to be good
        console.notice(no_evaluation)
    if resume is not None and main:
        for path, why in resume.skipped:
            console.warning(f"skipped a checkpoint: {why}")
            with contextlib.suppress(OSError):  # so that the rotation never keeps it instead
                path.rename(path.with_name(path.name + ".broken"))

    images = data.images.to(device)
    models = build_trained_models(config, device, shard, networks)
    if resume is not None:
        resume_from(resume, models, run_state, shard)
    folder, error = None, None
    if main:
        try:
            folder = RunFolder(
                config,
                prepare_run_folder(config, plan.start_step if resume else None),
                models,
                run_state,
                console,
                reference=reference,
                examples=data.images[:RECONSTRUCTED],
                per_epoch=plan.per_epoch,
                total=plan.total,
                start_step=plan.start_step,
                resumed_from=resume.checkpoint["path"] if resume else None,
            )
        except GanforgeError as exc:
            error = str(exc)
    share_main_outcome(shard, error)

    iterations = iterate_training(
        models,
        images,
        batch_size=config.batch_size,
        epochs=config.epochs,
        max_steps=config.max_steps,
        data_generator=run_state.data_generator,
        noise_generator=run_state.noise_generator,
        start_step=plan.start_step,
        labels=data.labels.to(device) if models.num_classes else None,
    )
    start_data_state = run_state.data_generator.get_state()
    guard = folder.guard() if folder is not None else contextlib.nullcontext()
    with guard:
        if folder is not None:
            with run_state.timing_side_work():
                folder.begin(start_data_state)
        last = run_loop(config, models, iterations, run_state, folder, shard)
    return folder.finish(last, shard.world_size) if folder is not None else None
