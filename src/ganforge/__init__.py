"""ganforge: train, evaluate and sample GANs on small image datasets.

The entry points a script needs (:mod:`ganforge.api`)::

    from ganforge import train, resume, load_run, sample, evaluate

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

from ganforge.api import evaluate, load_run, resume, sample, train
from ganforge.version import __version__

__all__ = ["__version__", "evaluate", "load_run", "resume", "sample", "train"]
