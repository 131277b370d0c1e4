"""ganforge: train, evaluate and sample GANs on small image datasets.

The public API:

* :mod:`ganforge.models`: the assignment's networks, Radford et al.'s DCGAN for 32 and 64 px,
  the class-conditional wrappers, and :func:`~ganforge.models.sample_noise`;
* :mod:`ganforge.losses`: the GAN, LSGAN, Wasserstein and hinge objectives and the penalties;
* :mod:`ganforge.vae`: the VAE's encoder and ELBO, trained by the same loop;
* :mod:`ganforge.data`: datasets in memory (MNIST offline, Fashion-MNIST, CIFAR-10, image
  folders), resized to the networks' size;
* :mod:`ganforge.training`: :func:`~ganforge.training.train` and the step it repeats;
* :mod:`ganforge.sampling`: images from a trained run;
* :mod:`ganforge.evaluator`, :mod:`ganforge.metrics`, :mod:`ganforge.evaluation`: the shipped
  evaluator networks, the sample-quality metrics, and ``ganforge eval``;
* :mod:`ganforge.report`: each run's ``report.html`` and ``ganforge compare``;
* :mod:`ganforge.assignment`: the assignment's own function names, over the above.
"""

__version__ = "0.1.0"
