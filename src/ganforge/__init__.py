"""ganforge: train, evaluate and sample GANs on small image datasets.

The public API:

* :mod:`ganforge.models`: the assignment's networks and :func:`~ganforge.models.sample_noise`;
* :mod:`ganforge.losses`: the GAN and LSGAN objectives;
* :mod:`ganforge.data`: datasets in memory (MNIST offline, Fashion-MNIST, image folders);
* :mod:`ganforge.training`: :func:`~ganforge.training.train` and the step it repeats;
* :mod:`ganforge.sampling`: images from a trained run;
* :mod:`ganforge.evaluator`, :mod:`ganforge.metrics`, :mod:`ganforge.evaluation`: the shipped
  evaluator networks, the sample-quality metrics, and ``ganforge eval``;
* :mod:`ganforge.report`: each run's ``report.html`` and ``ganforge compare``;
* :mod:`ganforge.assignment`: the assignment's own function names, over the above.
"""

__version__ = "0.1.0"
