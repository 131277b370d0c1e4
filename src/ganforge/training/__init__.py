"""Training: the trained models (:mod:`~ganforge.training.state`), one iteration
(:mod:`~ganforge.training.step`), the loop (:mod:`~ganforge.training.loop`), the run's state
and its checkpoints (:mod:`~ganforge.training.checkpoints`), the run folder's side work
(:mod:`~ganforge.training.run_folder`) and a whole run (:mod:`~ganforge.training.run`), with
what they lean on: processes (:mod:`~ganforge.training.distributed`), precision and
compilation (:mod:`~ganforge.training.performance`), failure watching
(:mod:`~ganforge.training.monitoring`) and signals (:mod:`~ganforge.training.interrupts`).
"""

from ganforge.devices import resolve_device  # re-exported: scripts imported it from here
from ganforge.training.checkpoints import ResumePoint, RunState, open_resume
from ganforge.training.hooks import Hook, Hooks
from ganforge.training.loop import iterate_training, run_loop
from ganforge.training.run import check_data, check_environment, train
from ganforge.training.run_folder import RunSummary
from ganforge.training.schedule import Iteration, RunPlan, steps_per_epoch
from ganforge.training.state import TrainedModels, build_trained_models, make_optimizer
from ganforge.training.step import GanStep, VaeStep, build_step

__all__ = [
    "GanStep",
    "Hook",
    "Hooks",
    "Iteration",
    "ResumePoint",
    "RunPlan",
    "RunState",
    "RunSummary",
    "TrainedModels",
    "VaeStep",
    "build_step",
    "build_trained_models",
    "check_data",
    "check_environment",
    "iterate_training",
    "make_optimizer",
    "open_resume",
    "resolve_device",
    "run_loop",
    "steps_per_epoch",
    "train",
]
