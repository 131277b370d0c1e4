"""The training step: the assignment's arithmetic in fp32, and the speed options against it."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch

from conftest import TINY_FLAGS
from ganforge.cli import main
from ganforge.config import TrainConfig
from ganforge.nets import build_models, sample_noise
from ganforge.objectives import OBJECTIVES
from ganforge.training import GanStep, TrainedModels, build_step, make_optimizer
from ganforge.training.performance import cpu_has_native_bf16, prepare_for_speed

CPU = torch.device("cpu")


def seed_loop_step(G, D, G_solver, D_solver, objective, real, noise_seed):
    """One iteration written as the assignment's ``run_a_gan`` writes it: separate D passes on
    real and fake, G's D-step output detached, plain Adam, D's gradients computed in the G step."""
    noise_generator = torch.Generator().manual_seed(noise_seed)

    def noise():
        return sample_noise(real.shape[0], 96, generator=noise_generator, dtype=real.dtype)

    D_solver.zero_grad()
    logits_real = D(real)
    fake_images = G(noise()).detach()
    logits_fake = D(fake_images)
    d_total_error = objective.discriminator_loss(logits_real, logits_fake)
    d_total_error.backward()
    D_solver.step()
    G_solver.zero_grad()
    fake_images = G(noise())
    g_error = objective.generator_loss(D(fake_images))
    g_error.backward()
    G_solver.step()
    return d_total_error.item(), g_error.item()


def make_pair(architecture: str, loss: str = "gan"):
    """Two identical GANs: one for ganforge's step, one (plain modules) for the seed loop."""
    torch.manual_seed(0)
    G, D = build_models(architecture, 96, "xavier")
    reference = (copy.deepcopy(G), copy.deepcopy(D))
    return (G, D), reference, OBJECTIVES[loss]


def ganforge_gan(G, D, objective, **settings) -> TrainedModels:
    G, D = prepare_for_speed(G, CPU), prepare_for_speed(D, CPU)
    config = TrainConfig(noise_dim=96, loss=objective.name, **settings)
    return TrainedModels(config, G, D, make_optimizer(G, device=CPU), make_optimizer(D, device=CPU))


def flat(*models) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for m in models for p in m.parameters()])


def real_batch(n: int = 32) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(5)) * 2 - 1


@pytest.mark.parametrize(
    ("architecture", "loss"), [("mlp", "gan"), ("mlp", "lsgan"), ("dcgan", "gan")]
)
def test_the_step_computes_the_assignments_arithmetic(architecture, loss):
    (G, D), (G_ref, D_ref), objective = make_pair(architecture, loss)
    # In float64 rounding is too small for Adam (which divides each gradient by its own size)
    # or BatchNorm to amplify: what is left is whether the two compute the same function.
    for model in (G, D, G_ref, D_ref):
        model.double()
    real = real_batch().double()
    d_ref, g_ref = seed_loop_step(
        G_ref, D_ref, make_optimizer(G_ref), make_optimizer(D_ref), objective, real, noise_seed=9
    )
    gan = ganforge_gan(G, D, objective)
    stats, fake = build_step(gan, torch.Generator().manual_seed(9))(real)
    # Same losses, same updated weights: one D pass over real and fake instead of two,
    # channels_last convolutions and fused Adam only round differently.
    assert stats["d_loss"] == pytest.approx(d_ref, rel=1e-12)
    assert stats["g_loss"] == pytest.approx(g_ref, rel=1e-12)
    torch.testing.assert_close(flat(G, D), flat(G_ref, D_ref), rtol=0, atol=1e-9)
    for mine, theirs in zip(G.buffers(), G_ref.buffers(), strict=True):  # BatchNorm statistics
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-12)
    assert fake.shape == real.shape and not fake.requires_grad
    # The G step froze D only for its own duration.
    assert all(p.requires_grad for p in D.parameters())


def test_a_discriminator_with_batchnorm_scores_real_and_fake_in_separate_passes():
    # One pass over real and fake together would mix their batch statistics.
    torch.manual_seed(0)
    G, _ = build_models("mlp", 96)
    D = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(784, 16),
        torch.nn.BatchNorm1d(16),
        torch.nn.LeakyReLU(0.01),
        torch.nn.Linear(16, 1),
    )
    G_ref, D_ref = copy.deepcopy(G).double(), copy.deepcopy(D).double()
    G, D = G.double(), D.double()
    real, objective = real_batch().double(), OBJECTIVES["gan"]
    d_ref, g_ref = seed_loop_step(
        G_ref, D_ref, make_optimizer(G_ref), make_optimizer(D_ref), objective, real, noise_seed=9
    )
    step = build_step(ganforge_gan(G, D, objective), torch.Generator().manual_seed(9))
    assert not step.joint_d_pass
    stats, _ = step(real)
    assert stats["d_loss"] == pytest.approx(d_ref, rel=1e-12)
    assert stats["g_loss"] == pytest.approx(g_ref, rel=1e-12)
    torch.testing.assert_close(flat(G, D), flat(G_ref, D_ref), rtol=0, atol=1e-9)


def test_the_g_step_leaves_a_partly_frozen_discriminator_as_it_was():
    (G, D), _, objective = make_pair("mlp")
    first_layer = D.net[1]
    first_layer.requires_grad_(False)
    before = first_layer.weight.detach().clone()
    build_step(ganforge_gan(G, D, objective))(real_batch())
    assert not first_layer.weight.requires_grad and torch.equal(first_layer.weight, before)
    assert all(p.requires_grad for name, p in D.named_parameters() if not name.startswith("net.1"))


def test_a_failing_first_step_leaves_no_run_folder(tmp_path, monkeypatch):
    def broken_step(*args, **kwargs):
        raise RuntimeError("no kernel for this device")

    monkeypatch.setattr(GanStep, "__call__", broken_step)
    with pytest.raises(RuntimeError, match="no kernel"):
        main(["train", "--out", str(tmp_path / "run"), *TINY_FLAGS])
    assert not (tmp_path / "run").exists()  # the same --out works once the cause is fixed


def run_steps(gan: TrainedModels, steps: int) -> list[dict[str, float]]:
    step = build_step(gan, torch.Generator().manual_seed(9))
    return [step(real_batch())[0] for _ in range(steps)]


def test_bf16_autocast_trains_like_fp32():
    (G, D), (G32, D32), objective = make_pair("mlp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # emulated bf16 on CPUs without it: slow, still right
        bf16 = run_steps(ganforge_gan(G, D, objective, precision="bf16"), 3)
    fp32 = run_steps(ganforge_gan(G32, D32, objective), 3)
    # bf16 keeps 8 bits of mantissa: the losses agree to about 1%, and the weights moved.
    for low, full in zip(bf16, fp32, strict=True):
        assert low["d_loss"] == pytest.approx(full["d_loss"], rel=3e-2)
        assert low["g_loss"] == pytest.approx(full["g_loss"], rel=3e-2)
    moved = flat(G, D) - flat(*make_pair("mlp")[0])
    assert torch.isfinite(moved).all() and moved.abs().max() > 1e-4


@pytest.mark.skipif(cpu_has_native_bf16(), reason="this CPU has native bf16")
def test_bf16_on_a_cpu_without_native_bf16_warns(tmp_path):
    with pytest.warns(RuntimeWarning, match="no native bf16"):
        code = main(
            [
                "train",
                "--out",
                str(tmp_path / "run"),
                *TINY_FLAGS,
                "--max-steps",
                "1",
                "--precision",
                "bf16",
            ]
        )
    assert code == 0


def test_auto_precision_is_bf16_only_where_the_hardware_has_it(monkeypatch):
    from ganforge.training import performance

    cpu = torch.device("cpu")
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(performance, "cpu_has_native_bf16", lambda native=native: native)
        assert performance.resolve_precision("auto", cpu) == expected
        assert performance.resolve_precision("fp32", cpu) == "fp32"
        assert performance.resolve_precision("bf16", cpu) == "bf16"
    assert performance.resolve_precision("auto", torch.device("mps")) == "fp32"


def test_a_run_records_the_precision_auto_resolved_to(tmp_path):
    """config.json and summary.json name what was computed, and a resume keeps it."""
    out = tmp_path / "run"
    flags = [*TINY_FLAGS, "--max-steps", "2", "--checkpoint-every", "1", "--precision", "auto"]
    assert main(["train", "--out", str(out), *flags]) == 0
    expected = "bf16" if cpu_has_native_bf16() else "fp32"
    assert json.loads((out / "config.json").read_text())["precision"] == expected
    assert json.loads((out / "summary.json").read_text())["precision"] == expected
    assert main(["train", "--resume", str(out), "--max-steps", "3"]) == 0
    assert json.loads((out / "config.json").read_text())["precision"] == expected


def test_compiled_networks_train_like_eager_ones():
    (G, D), (G_eager, D_eager), objective = make_pair("mlp")
    compiled = run_steps(ganforge_gan(G, D, objective, compile=True), 2)
    eager = run_steps(ganforge_gan(G_eager, D_eager, objective), 2)
    for mine, theirs in zip(compiled, eager, strict=True):
        for key in mine:
            assert mine[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-6), key
    torch.testing.assert_close(flat(G, D), flat(G_eager, D_eager), rtol=0, atol=1e-4)


def test_fp16_is_refused_on_the_cpu_in_one_line(tmp_path, capsys):
    flags = [*TINY_FLAGS, "--precision", "fp16", "--device", "cpu"]
    assert main(["train", "--out", str(tmp_path / "run"), *flags]) == 2
    assert capsys.readouterr().err == (
        "ganforge: error: precision fp16 is for CUDA GPUs; on cpu use bf16 or fp32 (CPUs have "
        "no fast fp16 arithmetic for it)\n"
    )
    assert not (tmp_path / "run").exists()


def test_an_unknown_precision_is_named(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "run"), *TINY_FLAGS, "--precision", "int8"]) == 2
    assert "precision must be one of auto, fp32, bf16, fp16, got 'int8'" in capsys.readouterr().err
