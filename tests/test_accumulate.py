"""``--accumulate K``: an optimizer step from the summed gradients of K micro-batches."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_train
from ganforge.cli import main
from ganforge.config import TrainConfig
from ganforge.training import build_step
from ganforge.training.state import build_trained_models, has_batchnorm

CPU = torch.device("cpu")


def trained_weights(steps: int = 3, **settings) -> tuple[torch.Tensor, list[dict]]:
    """The weights of G and D (or the encoder) after ``steps`` steps on fixed real batches of
    32, and the logged numbers of each step."""
    models, logged = trained_models(steps, **settings)
    return torch.cat([p.detach().flatten() for p in parameters(models)]), logged


def parameters(models) -> list[torch.nn.Parameter]:
    """The parameters of G and D (or the encoder), in a fixed order."""
    return [p for m in (models.generator, models.partner) for p in m.parameters()]


def trained_models(steps: int, **settings):
    """The models after ``steps`` steps of :func:`trained_weights`, and the logged numbers."""
    config = TrainConfig(device="cpu", batch_size=32, precision="fp32", **settings)
    torch.manual_seed(0)
    models = build_trained_models(config, CPU)
    step = build_step(models, torch.Generator().manual_seed(9))
    data = torch.Generator().manual_seed(5)
    logged = []
    for _ in range(steps):
        real = [torch.rand(32, 1, 28, 28, generator=data) * 2 - 1 for _ in range(config.n_critic)]
        labels = None
        if models.num_classes:
            labels = [torch.randint(10, (32,), generator=data) for _ in range(config.n_critic)]
        logged.append(step(real, labels)[0])
        models.after_step(len(logged))
    return models, logged


SETTINGS = {
    "gan": {},
    "diffaugment, r1, n_critic 2": {"augment": "diffaugment", "r1_gamma": 1.0, "n_critic": 2},
    "wgan-gp": {"loss": "wgan", "gp_weight": 10.0, "n_critic": 2},
    "projection": {"conditioning": "projection", "num_classes": 10},
    "acgan, label smoothing and flips": {
        "conditioning": "acgan",
        "num_classes": 10,
        "real_label": 0.9,
        "flip_labels": 0.1,
    },
    "vae": {"loss": "elbo", "noise": "normal"},
}


@pytest.fixture
def float64():
    """Networks and data in float64 while the test runs: float32's rounding, which Adam's
    normalisation magnifies where a gradient is near 0, reached 3e-5 after 6 updates of the
    n_critic 2 case, and would hide whether the maths is the whole batch's."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
def test_micro_batches_without_batchnorm_update_as_the_whole_batch(settings, float64):
    # The mlp networks hold no BatchNorm: the summed gradients of 4 micro-batches of 8, drawn
    # from the same random numbers as the batch of 32, are its gradient up to rounding.
    models = build_trained_models(TrainConfig(architecture="mlp", **settings), CPU)
    assert not has_batchnorm(models.generator) and not has_batchnorm(models.partner)
    whole, whole_logged = trained_weights(architecture="mlp", **settings)
    micro, micro_logged = trained_weights(architecture="mlp", accumulate=4, **settings)
    assert (whole - micro).abs().max() < 1e-5
    for a, b in zip(whole_logged, micro_logged, strict=True):
        assert a.keys() == b.keys()
        assert all(a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9) for key in a)


def test_micro_batches_in_float32_sum_to_the_whole_batch_gradient():
    # In float32 the gradients are compared, not the weights after Adam: Adam's first update
    # moves each weight by about lr times the sign of its gradient, so a gradient within
    # rounding of 0 can flip sign and move its weight by up to 2 lr (7.6e-5 after one step for
    # 3 of the 2.2 million weights, on an Intel Xeon with AMX; the float64 test above compares
    # weights).
    def gradients(**settings) -> torch.Tensor:
        models, _ = trained_models(1, architecture="mlp", **settings)
        return torch.cat([p.grad.flatten() for p in parameters(models)])

    whole, micro = gradients(), gradients(accumulate=4)
    assert whole.abs().max() > 1e-2  # a step was taken
    assert (whole - micro).abs().max() < 1e-6


def test_micro_batches_differ_where_batchnorm_sees_them():
    # dcgan's G normalises each micro-batch by its own statistics: not the whole batch's step.
    whole, _ = trained_weights(architecture="dcgan", steps=1)
    micro, _ = trained_weights(architecture="dcgan", accumulate=4, steps=1)
    assert (whole - micro).abs().max() > 1e-4


def checkpoint_weights(run) -> dict[str, torch.Tensor]:
    newest = sorted((run / "checkpoints").glob("step_*.pt"))[-1]
    state = torch.load(newest, weights_only=True)
    return {**state["generator"], **{f"d.{k}": v for k, v in state["discriminator"].items()}}


def test_an_accumulating_run_resumes_bit_for_bit(tmp_path):
    flags = ["--accumulate", "2", "--batch-size", "16", "--augment", "diffaugment"]
    assert tiny_train(tmp_path / "whole", *flags, "--max-steps", "4") == 0
    assert tiny_train(tmp_path / "parts", *flags, "--max-steps", "2") == 0
    assert main(["train", "--resume", str(tmp_path / "parts"), "--max-steps", "4", "--quiet"]) == 0
    whole, parts = checkpoint_weights(tmp_path / "whole"), checkpoint_weights(tmp_path / "parts")
    assert whole.keys() == parts.keys()
    assert all(torch.equal(whole[key], parts[key]) for key in whole)


def test_a_batch_that_does_not_split_into_micro_batches_is_refused(tmp_path, capsys):
    assert tiny_train(tmp_path / "run", "--accumulate", "3", "--max-steps", "1") == 2
    err = capsys.readouterr().err
    assert "batch size 32 does not split into 1 process(es) × 3 micro-batches" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_micro_batches_of_one_image_are_refused_where_batchnorm_sees_them(tmp_path, capsys):
    flags = ["--preset", "dcgan", "--batch-size", "4", "--accumulate", "4", "--max-steps", "1"]
    assert tiny_train(tmp_path / "run", *flags) == 2
    err = capsys.readouterr().err
    assert "micro-batches of 1 image per process (--accumulate 4): BatchNorm needs" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()
