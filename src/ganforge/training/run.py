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
import shutil
from pathlib import Path

import torch
from torch import nn

from ganforge.config import TrainConfig, image_shape
from ganforge.console import SILENT, Console
from ganforge.data import ImageData, evaluator_for, load_dataset
from ganforge.devices import resolve_device
from ganforge.errors import GanforgeError
from ganforge.eval import ReferenceSet, reference_set
from ganforge.nets import import_user_architecture, is_user_architecture
from ganforge.objectives import OBJECTIVES
from ganforge.run_lock import check_no_writer, folder_error, hold_run_folder
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
from ganforge.training.hooks import Hooks, NaNCheckHook, check_loggers
from ganforge.training.loop import iterate_training, run_loop
from ganforge.training.performance import precision_warning, resolve_precision
from ganforge.training.run_folder import (
    RECONSTRUCTED,
    RunFolder,
    RunSummary,
    check_run_folder_is_free,
    default_run_dir,
    prepare_run_folder,
)
from ganforge.training.schedule import RunPlan, steps_per_epoch
from ganforge.training.state import build_trained_models, has_batchnorm
from ganforge.training.step import build_step
from ganforge.training.transfer import InitSource, carry_weights, open_init_source

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
    if config.batch_size % (shard.world_size * config.accumulate):
        raise GanforgeError(
            f"batch size {config.batch_size} does not split into {shard.world_size} "
            f"process(es) × {config.accumulate} micro-batches (--accumulate); give a batch "
            f"size that is a multiple of {shard.world_size * config.accumulate}"
        )
    if config.out:  # every rank, so that all stop alike (a shared disk)
        check_no_writer(Path(config.out))  # early word of a live writer; _train's lock decides
        if resume is None:
            check_run_folder_is_free(Path(config.out))
    check_loggers(config)  # their packages are installed, or say so before any work
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
    plan = RunPlan.of(
        per_epoch, config.epochs, config.max_steps, resume.step if resume is not None else 0
    )
    if resume is not None:
        check_resumable(resume, device, plan)
    return plan


def train(
    config: TrainConfig,
    console: Console = SILENT,
    resume: ResumePoint | None = None,
    networks: tuple[nn.Module, nn.Module] | None = None,
    trust_code: bool = False,
) -> RunSummary | None:
    """Run a whole training job as ``ganforge train`` does; return where it went and how fast.

    ``console``: where progress and notices go (:data:`~ganforge.console.SILENT` by default).
    ``resume``: continue the run of :func:`~ganforge.training.checkpoints.open_resume` from its
    newest checkpoint, exactly as if it had never stopped (``config`` is then its config).
    ``networks``: a script's own ``(generator, discriminator)``, trained in place (``config``'s
    architecture is then :data:`~ganforge.config.GIVEN_NETWORKS`). ``trust_code``: a new run's
    ``init_from`` source may be a run of a user's networks (:func:`open_init_source`).

    Under torchrun every process calls this; rank 0 writes the run folder and returns its
    summary, the other ranks train and return ``None``. SIGINT and SIGTERM stop it after the
    current step with a checkpoint (:class:`~ganforge.errors.TrainingStopped`).
    """
    shard = shard_from_environment()
    device = process_device(shard, resolve_device(config.device))
    # Recorded resolved (config.json, checkpoints): a resume elsewhere computes the same way.
    config = dataclasses.replace(config, precision=resolve_precision(config.precision, device))
    slow = check_environment(config, shard, device, resume)
    # Read once, before anything is created; a resumed run has it in its own checkpoint.
    source = None
    if config.init_from and resume is None:
        source = open_init_source(config.init_from, trust_code)
    console = console if shard.is_main else SILENT
    if slow:
        console.warning(slow)
    created_group = init_process_group(shard, device)
    try:
        # One writer per run folder: rank 0 locks it in _train (_locked_run_folder) into this
        # stack, which holds the lock until the run has finished, summary and report included.
        with contextlib.ExitStack() as run_lock:
            return _train(config, console, shard, device, resume, networks, run_lock, source)
    finally:
        if created_group:
            close_process_group()


def _training_reference(config: TrainConfig) -> tuple[ReferenceSet | None, str | None]:
    """The test set embedded by the dataset's evaluator, for ``eval_every`` and the final
    evaluation: ``(reference, None)``; ``(None, why)`` when no evaluator fits the dataset, and
    ``(None, None)`` when both evaluations are off."""
    if not (config.eval_every or config.final_eval_num):
        return None, None
    if evaluator_for(config.dataset) is None:
        return None, (
            f"no evaluator ships for dataset {config.dataset}, so this run has no FID; it "
            f"trains on, and 'ganforge eval RUN' scores it on raw pixels afterwards (for FID, "
            f"train one on its sub-folders: 'ganforge evaluator train --dataset "
            f"{config.dataset} --out FILE', then 'ganforge eval RUN --evaluator FILE')"
        )
    try:
        reference = reference_set(
            config.dataset,
            config.data_root,
            config.train_size,
            train_subset=config.train_subset,
            background=config.background,
            classes=config.classes,
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
        background=config.background,
        classes=config.classes,
    )
    if shard.local_rank == 0:
        barrier(shard)
    if config.conditioning != "none" and len(data.classes) >= 2:
        config = dataclasses.replace(config, num_classes=config.num_classes or len(data.classes))
    return config, data


def _locked_run_folder(
    config: TrainConfig,
    console: Console,
    resume: ResumePoint | None,
    start_step: int,
    run_lock: contextlib.ExitStack,
) -> Path:
    """The run folder, locked into ``run_lock`` (:mod:`ganforge.run_lock`) before any file in
    it is written, then prepared for writing (:func:`prepare_run_folder`): a new run's as soon
    as it exists (of two runs started at once into one folder, the second is refused before it
    writes), a resumed run's before any file in it changes, so that a process already writing
    it is not disturbed."""
    run_dir = default_run_dir(config)
    if resume is None:
        check_run_folder_is_free(run_dir)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise folder_error(run_dir, exc) from None
        run_lock.enter_context(hold_run_folder(run_dir))
        return prepare_run_folder(config, run_dir, None)
    run_lock.enter_context(hold_run_folder(run_dir))
    for path, why in resume.skipped:
        console.warning(f"skipped a checkpoint: {why}")
        with contextlib.suppress(OSError):  # so that the rotation never keeps it instead
            path.rename(path.with_name(path.name + ".broken"))
    return prepare_run_folder(config, run_dir, start_step)


def _train(
    config: TrainConfig,
    console: Console,
    shard: Shard,
    device: torch.device,
    resume: ResumePoint | None,
    networks: tuple[nn.Module, nn.Module] | None,
    run_lock: contextlib.ExitStack,
    source: InitSource | None = None,
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

    images = data.images.to(device)
    models = build_trained_models(config, device, networks)
    micro = config.batch_size // (shard.world_size * config.accumulate)
    if micro < 2 and (has_batchnorm(models.generator) or has_batchnorm(models.partner)):
        raise GanforgeError(
            f"micro-batches of {micro} image per process (--accumulate {config.accumulate}): "
            "BatchNorm needs at least 2; give a larger batch size or a smaller --accumulate"
        )
    if resume is not None:
        resume_from(resume, models, run_state, shard)
    elif source is not None:
        carry_weights(models, source, config.init_partial)
    step = build_step(models, run_state.noise_generator, shard)
    folder, error = None, None
    if main:
        try:
            run_dir = _locked_run_folder(config, console, resume, plan.start_step, run_lock)
            try:
                folder = RunFolder(
                    config,
                    run_dir,
                    models,
                    run_state,
                    console,
                    plan,
                    reference=reference,
                    examples=data.images[:RECONSTRUCTED],
                    resumed_from=resume.checkpoint["path"] if resume else None,
                    init_record=source.record() if source is not None else None,
                    processes=shard.world_size,
                )
            except GanforgeError:
                if resume is None:  # a new run's folder, which holds nothing worth keeping
                    shutil.rmtree(run_dir, ignore_errors=True)
                raise
        except GanforgeError as exc:
            error = str(exc)
    share_main_outcome(shard, error)

    iterations = iterate_training(
        step,
        images,
        batch_size=config.batch_size,
        epochs=config.epochs,
        max_steps=config.max_steps,
        data_generator=run_state.data_generator,
        start_step=plan.start_step,
        labels=data.labels.to(device) if models.num_classes else None,
    )
    start_data_state = run_state.data_generator.get_state()
    if folder is not None:
        hooks, guard = folder.hooks, folder.guard()
    else:  # the other ranks' side work: the NaN check alone
        hooks = Hooks(console, [NaNCheckHook(models, run_state)])
        guard = contextlib.nullcontext()
    with guard:
        if folder is not None:
            with run_state.timing_side_work():
                folder.begin(start_data_state)
        last = run_loop(config, iterations, run_state, hooks, folder, shard)
    return folder.finish(last) if folder is not None else None
