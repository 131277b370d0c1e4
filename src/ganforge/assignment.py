"""The assignment's own names and signatures, so that code written against it runs unchanged.

Every function here is a thin layer over ganforge's library (:mod:`ganforge.nets`,
:mod:`ganforge.objectives`, :mod:`ganforge.training`): there is one implementation of each
network, loss and training step, and nothing in the library imports this module. As in the
assignment, generators return flat ``(N, 784)`` images in ``[-1, 1]`` and discriminators return
``(N, 1)`` scores.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ganforge import nets, objectives
from ganforge.config import TrainConfig
from ganforge.data import load_dataset
from ganforge.nets import classic
from ganforge.training import TrainedModels, build_step, iterate_training, make_optimizer

NOISE_DIM = 96
#: The assignment casts with ``.type(dtype)``; on the CPU that is ``torch.FloatTensor``.
dtype = torch.FloatTensor

Flatten = nn.Flatten


class Unflatten(nn.Module):
    """Reshape ``(N, C*H*W)`` to ``(N, C, H, W)``."""

    def __init__(self, N: int = -1, C: int = 128, H: int = 7, W: int = 7) -> None:
        super().__init__()
        self.N, self.C, self.H, self.W = N, C, H, W

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(self.N, self.C, self.H, self.W)


def sample_noise(batch_size: int, dim: int) -> torch.Tensor:
    """Uniform noise in ``[-1, 1)``, shape ``(batch_size, dim)``, from torch's global RNG."""
    return nets.sample_noise(batch_size, dim)


def initialize_weights(m: nn.Module) -> None:
    """Xavier-uniform weights for Linear and ConvTranspose2d layers (use with ``model.apply``)."""
    classic.xavier_init_(m)


def discriminator() -> nn.Module:
    """The MLP discriminator, 784 → 256 → 256 → 1."""
    return classic.MLPDiscriminator()


def generator(noise_dim: int = NOISE_DIM) -> nn.Module:
    """The MLP generator, noise_dim → 1024 → 1024 → 784, output ``(N, 784)`` in ``[-1, 1]``."""
    return nn.Sequential(classic.MLPGenerator(noise_dim), Flatten())


def build_dc_classifier(batch_size: int | None = None) -> nn.Module:
    """The DCGAN discriminator. ``batch_size`` is accepted for the assignment's signature; the
    network takes any batch size, as ``(N, 784)`` or ``(N, 1, 28, 28)``."""
    return classic.DCGANDiscriminator()


def build_dc_generator(noise_dim: int = NOISE_DIM) -> nn.Module:
    """The InfoGAN generator, output ``(N, 784)`` in ``[-1, 1]``."""
    return nn.Sequential(classic.DCGANGenerator(noise_dim), Flatten())


def bce_loss(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of ``sigmoid(input)`` against ``target``, computed stably."""
    if input.numel() == target.numel():
        input = input.reshape(target.shape)
    return nn.functional.binary_cross_entropy_with_logits(input, target.to(input.dtype))


discriminator_loss = objectives.gan_discriminator_loss
generator_loss = objectives.gan_generator_loss
ls_discriminator_loss = objectives.lsgan_discriminator_loss
ls_generator_loss = objectives.lsgan_generator_loss


def get_optimizer(model: nn.Module) -> torch.optim.Adam:
    """Adam with learning rate 1e-3 and betas (0.5, 0.999)."""
    return make_optimizer(model)


def preprocess_img(x):
    return 2 * x - 1.0


def deprocess_img(x):
    return (x + 1.0) / 2.0


def rel_error(x, y) -> float:
    """The assignment's relative error: ``max |x − y| / max(1e-8, |x| + |y|)``."""
    x, y = (
        np.asarray(v.detach().cpu() if torch.is_tensor(v) else v, dtype=np.float64) for v in (x, y)
    )
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def count_params(model: nn.Module) -> int:
    """Number of parameters of a model."""
    return nets.count_parameters(model)


def show_images(images):
    """Draw images (any ``(N, …)`` array or tensor of square images) in a square grid.

    Returns a :class:`matplotlib.figure.Figure`; it needs no display (works headless) and shows
    itself when it is the last value of a notebook cell.
    """
    from matplotlib.figure import Figure

    if torch.is_tensor(images):
        images = images.detach().cpu().numpy()
    images = np.reshape(images, [images.shape[0], -1])
    sqrtn = math.ceil(math.sqrt(images.shape[0]))
    sqrtimg = math.ceil(math.sqrt(images.shape[1]))
    fig = Figure(figsize=(sqrtn, sqrtn))
    grid = fig.add_gridspec(sqrtn, sqrtn, wspace=0.05, hspace=0.05)
    for i, img in enumerate(images):
        ax = fig.add_subplot(grid[i])
        ax.axis("off")
        ax.set_aspect("equal")
        ax.imshow(img.reshape([sqrtimg, sqrtimg]), cmap="gray", interpolation="nearest")
    return fig


class _AsImages(nn.Module):
    """Presents a flat-output generator's images as ``(N, 1, 28, 28)``, as the assignment's loop
    does with ``fake_images.view(batch_size, 1, 28, 28)``."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.generator(noise).reshape(-1, *classic.IMAGE_SHAPE)


def run_a_gan(
    D,
    G,
    D_solver,
    G_solver,
    discriminator_loss,
    generator_loss,
    show_every=250,
    batch_size=128,
    noise_size=96,
    num_epochs=10,
    *,
    max_iterations=None,
):
    """Train a GAN on the first 50,000 MNIST training images in order, as the assignment does.

    Prints the losses every ``show_every`` iterations and draws 16 samples; returns the list of
    those figures (the assignment returned nothing). MNIST comes from ganforge's data root
    (``$GANFORGE_DATA`` or the cache folder) and is fetched offline on first use.

    ``max_iterations`` (not the assignment's) stops after that many iterations, whatever
    ``num_epochs`` says: a quick look at a GAN takes a few hundred iterations, not 10 epochs.
    """
    device = next(G.parameters()).device
    images = load_dataset("mnist", "train").images.to(device)
    objective = objectives.Objective("custom", discriminator_loss, generator_loss, torch.mean)
    settings = TrainConfig(noise_dim=noise_size, batch_size=batch_size)
    trained = TrainedModels(settings, _AsImages(G), D, G_solver, D_solver)
    step = build_step(trained, objective=objective)
    figures = []
    if num_epochs < 1:  # the assignment's `for epoch in range(num_epochs)` trains no step
        return figures
    for it in iterate_training(
        step,
        images,
        batch_size=batch_size,
        epochs=num_epochs,
        max_steps=max_iterations,
        shuffle=False,
    ):
        iter_count = it.step - 1
        if iter_count % show_every == 0:
            print(f"Iter: {iter_count}, D: {it.stats['d_loss']:.4}, G:{it.stats['g_loss']:.4}")
            figures.append(show_images(it.fake[:16]))
            _display(figures[-1])
    return figures


def _display(figure) -> None:
    """Show a figure inside IPython/Jupyter; do nothing elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is not None:
        display(figure)
