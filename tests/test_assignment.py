"""The assignment's API: its names, signatures and checks, running over ganforge's library."""

import inspect

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from ganforge import assignment as A
from ganforge import objectives as losses


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("sample_noise", "batch_size, dim"),
        ("initialize_weights", "m"),
        ("discriminator", ""),
        ("generator", "noise_dim=96"),
        ("bce_loss", "input, target"),
        ("discriminator_loss", "logits_real, logits_fake"),
        ("generator_loss", "logits_fake"),
        ("ls_discriminator_loss", "scores_real, scores_fake"),
        ("ls_generator_loss", "scores_fake"),
        ("get_optimizer", "model"),
        ("build_dc_classifier", "batch_size=None"),
        ("build_dc_generator", "noise_dim=96"),
        (
            "run_a_gan",
            "D, G, D_solver, G_solver, discriminator_loss, generator_loss, "
            "show_every=250, batch_size=128, noise_size=96, num_epochs=10, max_iterations=None",
        ),
        ("preprocess_img", "x"),
        ("deprocess_img", "x"),
        ("rel_error", "x, y"),
        ("count_params", "model"),
        ("show_images", "images"),
        ("Unflatten", "N=-1, C=128, H=7, W=7"),
    ],
)
def test_names_and_signatures(name, parameters):
    signature = inspect.signature(getattr(A, name))
    rendered = ", ".join(
        p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default}"
        for p in signature.parameters.values()
    )
    assert rendered == parameters


def test_the_assignments_parameter_checks():
    assert A.count_params(A.discriminator()) == 267009
    assert A.count_params(A.generator(4)) == 1858320
    assert A.count_params(A.build_dc_classifier()) == 1102721
    assert A.count_params(A.build_dc_generator(4)) == 6580801


def test_losses_are_the_core_library_functions():
    assert A.discriminator_loss is losses.gan_discriminator_loss
    assert A.generator_loss is losses.gan_generator_loss
    assert A.ls_discriminator_loss is losses.lsgan_discriminator_loss
    assert A.ls_generator_loss is losses.lsgan_generator_loss


def test_generators_return_flat_images_like_the_assignment():
    noise = A.sample_noise(5, 96)
    assert noise.shape == (5, 96) and noise.min() >= -1 and noise.max() <= 1
    assert A.generator()(noise).shape == (5, 784)
    dc_generator = A.build_dc_generator()
    dc_generator.apply(A.initialize_weights)
    flat = dc_generator(noise)
    assert flat.shape == (5, 784)
    assert A.build_dc_classifier(batch_size=5)(flat).shape == (5, 1)
    assert A.discriminator()(flat.view(5, 1, 28, 28)).shape == (5, 1)


def test_bce_loss_matches_numpy():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=20), rng.integers(0, 2, size=20).astype(np.float64)
    expected = np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x))))
    got = A.bce_loss(torch.tensor(x), torch.tensor(y))
    assert got.shape == ()
    assert A.rel_error(got, expected) < 1e-7
    # (N, 1) input against (N,) target is compared element by element, not broadcast.
    got = A.bce_loss(torch.tensor(x).reshape(20, 1), torch.tensor(y))
    assert A.rel_error(got, expected) < 1e-7


def test_assignment_style_code_runs_unchanged():
    """The seed's own lines, with ``.type(dtype)`` casts and a ones-label tensor."""
    dtype = A.dtype
    D = A.discriminator().type(dtype)
    G = A.generator().type(dtype)
    fake = G(A.sample_noise(128, 96).type(dtype))
    logits_fake = D(fake.view(128, 1, 28, 28))
    true_labels = torch.ones(logits_fake.size()).type(dtype)
    assert A.bce_loss(logits_fake, true_labels).shape == ()
    assert A.generator_loss(logits_fake).shape == ()
    D_solver = A.get_optimizer(D)
    assert D_solver.defaults["lr"] == 1e-3 and D_solver.defaults["betas"] == (0.5, 0.999)


def test_flatten_unflatten_and_image_helpers():
    x = torch.arange(2 * 128 * 49, dtype=torch.float32).reshape(2, -1)
    images = A.Unflatten()(x)
    assert images.shape == (2, 128, 7, 7)
    assert torch.equal(A.Flatten()(images), x)
    assert A.preprocess_img(torch.tensor([0.0, 1.0])).tolist() == [-1.0, 1.0]
    assert A.deprocess_img(torch.tensor([-1.0, 1.0])).tolist() == [0.0, 1.0]
    assert A.rel_error(np.array([1.0]), np.array([1.0])) == 0


def test_show_images_returns_a_headless_figure(tmp_path):
    fig = A.show_images(np.random.default_rng(0).random((10, 784)))
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 10
    fig.savefig(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 1000


def test_run_a_gan_trains_on_mnist(capsys):
    """Two epochs of the tiny synthetic MNIST (600 images → 4 batches of 128 per epoch)."""
    torch.manual_seed(0)
    D, G = A.discriminator(), A.generator()
    D_solver, G_solver = A.get_optimizer(D), A.get_optimizer(G)
    before = [p.detach().clone() for p in (*D.parameters(), *G.parameters())]
    figures = A.run_a_gan(
        D,
        G,
        D_solver,
        G_solver,
        A.ls_discriminator_loss,
        A.ls_generator_loss,
        show_every=3,
        num_epochs=2,
    )
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in printed] == ["Iter: 0", "Iter: 3", "Iter: 6"]
    assert len(figures) == 3 and all(len(f.axes) == 16 for f in figures)
    after = list(D.parameters()) + list(G.parameters())
    assert all(not torch.equal(b, a) for b, a in zip(before, after, strict=True))


def test_run_a_gan_stops_after_max_iterations(capsys):
    """A notebook's short run: 5 iterations out of the default 10 epochs (40 iterations here),
    across an epoch boundary. Each loss function is called once per iteration, which
    examples/assignment.ipynb relies on to record the loss curves by wrapping them."""
    torch.manual_seed(0)
    D, G = A.discriminator(), A.generator()
    calls = []

    def counted(loss):
        def wrapped(*scores):
            calls.append(loss.__name__)
            return loss(*scores)

        return wrapped

    figures = A.run_a_gan(
        D,
        G,
        A.get_optimizer(D),
        A.get_optimizer(G),
        counted(A.discriminator_loss),
        counted(A.generator_loss),
        show_every=2,
        max_iterations=5,
    )
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in printed] == ["Iter: 0", "Iter: 2", "Iter: 4"]
    assert len(figures) == 3
    assert calls.count(A.discriminator_loss.__name__) == 5
    assert calls.count(A.generator_loss.__name__) == 5


def test_run_a_gan_of_no_epochs_trains_nothing(capsys):
    """As the assignment's ``for epoch in range(num_epochs)``: 0 epochs is no iteration, even
    with ``max_iterations`` (the library's loop reads 0 epochs as "no epoch limit")."""
    torch.manual_seed(0)
    D, G = A.discriminator(), A.generator()
    before = [p.detach().clone() for p in (*D.parameters(), *G.parameters())]
    figures = A.run_a_gan(
        D,
        G,
        A.get_optimizer(D),
        A.get_optimizer(G),
        A.discriminator_loss,
        A.generator_loss,
        num_epochs=0,
        max_iterations=3,
    )
    assert figures == [] and capsys.readouterr().out == ""
    after = list(D.parameters()) + list(G.parameters())
    assert all(torch.equal(b, a) for b, a in zip(before, after, strict=True))
