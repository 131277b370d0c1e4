"""ganforge: train, evaluate and sample GANs on small image datasets.

The entry points a script needs (:mod:`ganforge.api`)::

    from ganforge import train, resume, load_run, sample, evaluate, export, project

The packages, from the bottom floor up (``ARCHITECTURE.md`` draws the house):

* :mod:`ganforge.nets`: the networks; :mod:`ganforge.objectives`: what training minimises;
  :mod:`ganforge.data`: datasets in memory;
* :mod:`ganforge.config` and :mod:`ganforge.presets`: a run's settings;
* :mod:`ganforge.checkpoint_file` and :mod:`ganforge.sampling`: reading runs, drawing images;
* :mod:`ganforge.eval`: the evaluators and metrics; :mod:`ganforge.report`: the run's page;
* :mod:`ganforge.training`: the trained models, the step, the loop and a whole run;
* :mod:`ganforge.cli` and :mod:`ganforge.assignment`: the command line and the assignment's
  own names, over all of the above.
"""

from typing import TYPE_CHECKING

from ganforge.version import __version__

if TYPE_CHECKING:
    from ganforge.api import (
        Evaluation,
        LoadedRun,
        Projection,
        Scores,
        evaluate,
        export,
        load_run,
        project,
        resume,
        sample,
        train,
    )


def __getattr__(name: str):
    """The entry points (``__all__``), imported from :mod:`ganforge.api` on first use (PEP 562),
    so that the command line, which needs one of them at most, starts without all of ganforge."""
    if name in __all__:
        from ganforge import api

        return getattr(api, name)
    raise AttributeError(f"module 'ganforge' has no attribute {name!r}")


__all__ = [
    "Evaluation",
    "LoadedRun",
    "Projection",
    "Scores",
    "__version__",
    "evaluate",
    "export",
    "load_run",
    "project",
    "resume",
    "sample",
    "train",
]
