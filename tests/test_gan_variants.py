"""Beyond the assignment: Wasserstein and hinge losses, gradient penalties, weight clipping,
spectral norm, several critic updates per generator update, and the generator's EMA."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import tiny_train
from ganforge.checkpoint_file import load_checkpoint
from ganforge.cli import main
from ganforge.config import TrainConfig, build_config
from ganforge.nets import DCGANDiscriminator, apply_spectral_norm, build_generator, sample_noise
from ganforge.objectives import (
    OBJECTIVES,
    gradient_penalty,
    hinge_discriminator_loss,
    r1_penalty,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from ganforge.presets import PRESETS
from ganforge.sampling import (
    STANDING_STATISTICS_NUM,
    estimate_batchnorm_statistics,
    load_generator,
)
from ganforge.training import (
    TrainedModels,
    build_step,
    build_trained_models,
    iterate_training,
    make_optimizer,
)

CPU = torch.device("cpu")


def test_wasserstein_and_hinge_losses_by_hand():
    real, fake = torch.tensor([[2.0], [0.0]]), torch.tensor([[-1.0], [3.0]])
    assert wasserstein_critic_loss(real, fake).item() == pytest.approx(1.0 - 1.0)  # 1 − 1
    assert wasserstein_critic_loss(torch.tensor([3.0]), torch.tensor([1.0])).item() == -2.0
    assert wasserstein_generator_loss(fake).item() == pytest.approx(-1.0)
    # relu(1 − 2) = 0, relu(1 − 0) = 1 → 0.5; relu(1 − 1) = 0, relu(1 + 3) = 4 → 2.
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(2.5)


def test_gradient_penalty_by_hand():
    # D(x) = Σ x²: ∇D(x) = 2x. Interpolating (3, 0) and (1, 0) half-way gives (2, 0), whose
    # gradient (4, 0) has norm 4: the penalty is (4 − 1)² = 9. The second pair, mixed with
    # weight 1 (all real), sits at (0, 0.25): gradient norm 0.5, penalty 0.25. Mean: 4.625.
    def critic(x):
        return x.square().sum(dim=1)

    real = torch.tensor([[3.0, 0.0], [0.0, 0.25]])
    fake = torch.tensor([[1.0, 0.0], [5.0, 5.0]])
    penalty = gradient_penalty(critic, real, fake, torch.tensor([0.5, 1.0]))
    assert penalty.item() == pytest.approx((9 + 0.25) / 2)


def test_gradient_penalty_is_differentiable_in_the_critics_weights():
    # A linear critic w·x has gradient w everywhere: penalty (‖w‖ − 1)², whose gradient in w
    # is 2(‖w‖ − 1) w / ‖w‖.
    critic = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 4.0]]))
    penalty = gradient_penalty(critic, torch.randn(5, 2), torch.randn(5, 2), torch.rand(5))
    assert penalty.item() == pytest.approx(16.0)
    penalty.backward()
    expected = 2 * (5 - 1) * torch.tensor([[3.0, 4.0]]) / 5
    torch.testing.assert_close(critic.weight.grad, expected)


def test_r1_penalty_by_hand():
    # D(x) = Σ x²: ‖∇D(x)‖² = ‖2x‖² = 4‖x‖²: for (1, 2) it is 20, for (0, 1) 4; mean 12.
    penalty = r1_penalty(lambda x: x.square().sum(dim=1), torch.tensor([[1.0, 2.0], [0.0, 1.0]]))
    assert penalty.item() == pytest.approx(12.0)


def test_spectral_norm_makes_each_layers_largest_singular_value_one():
    torch.manual_seed(0)
    discriminator = apply_spectral_norm(DCGANDiscriminator())
    images = torch.randn(8, 1, 28, 28)
    for _ in range(30):  # each training forward runs one power iteration
        discriminator(images)
    layers = [m for m in discriminator.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert len(layers) == 4
    for layer in layers:
        weight = layer.weight.reshape(layer.weight.shape[0], -1)  # the normalised weight
        assert torch.linalg.matrix_norm(weight, ord=2).item() == pytest.approx(1.0, abs=1e-2)
        original = layer.parametrizations.weight.original.reshape(weight.shape[0], -1)
        assert abs(torch.linalg.matrix_norm(original, ord=2).item() - 1) > 0.1  # it did something


def test_ema_update_arithmetic():
    config = build_config("dcgan-ema", overrides={"ema": 0.9, "ema_every": 1, "device": "cpu"})
    gan = build_trained_models(config, CPU)
    parameter = next(gan.generator.parameters())
    ema_parameter = next(gan.ema.module.parameters())
    values = [torch.full_like(parameter, v) for v in (1.0, 2.0, 4.0)]
    for value in values:
        with torch.no_grad():
            parameter.copy_(value)
        gan.update_ema()
    # The first update copies; then ema ← r·ema + (1 − r)·θ with the warm-up rate
    # r = min(0.9, (1 + n) / (10 + n)) after n updates: r = 2/11, then 3/12.
    second = 2 / 11 * 1.0 + 9 / 11 * 2.0
    expected = 3 / 12 * second + 9 / 12 * 4.0
    torch.testing.assert_close(ema_parameter, torch.full_like(parameter, expected))
    assert int(gan.ema.n_averaged) == 3
    # Once warmed up the rate is the decay itself: (1 + 100) / (10 + 100) > 0.9.
    gan.ema.n_averaged.fill_(100)
    before = ema_parameter.clone()
    gan.update_ema()
    torch.testing.assert_close(ema_parameter, 0.9 * before + 0.1 * parameter)


def test_an_ema_averaged_every_k_iterations_applies_the_decay_k_times():
    config = build_config("dcgan-ema", overrides={"ema": 0.9, "ema_every": 3, "device": "cpu"})
    gan = build_trained_models(config, CPU)
    parameter = next(gan.generator.parameters())
    ema_parameter = next(gan.ema.module.parameters())
    for value in (1.0, 2.0):
        with torch.no_grad():
            parameter.fill_(value)
        gan.update_ema()
    # After one update (3 iterations) the warm-up rate is min(0.9, 4 / 13), applied 3 times.
    rate = (4 / 13) ** 3
    torch.testing.assert_close(ema_parameter, torch.full_like(parameter, rate + (1 - rate) * 2))
    gan.ema.n_averaged.fill_(100)
    before = ema_parameter.clone()
    gan.update_ema()
    torch.testing.assert_close(ema_parameter, 0.9**3 * before + (1 - 0.9**3) * parameter)


def test_training_updates_the_ema_every_k_iterations_from_the_run_start():
    config = build_config("dcgan-ema", overrides={"ema_every": 3, "device": "cpu"})
    gan = build_trained_models(config, CPU)
    step = build_step(gan)
    images = torch.randint(0, 256, (4 * 8, 1, 28, 28), dtype=torch.uint8)

    def updates(**kwargs):
        return [int(gan.ema.n_averaged) for _ in iterate_training(step, images, **kwargs)]

    # The first iteration copies G, then every 3rd (counted from the run's start) averages it
    # in: iterations 1, 3 and 6 of a run of 7.
    assert updates(batch_size=4, epochs=1, max_steps=7) == [1, 1, 2, 2, 2, 3, 3]
    gan.ema.n_averaged.fill_(2)  # resumed after iteration 4: the 6th averages
    assert updates(batch_size=4, epochs=1, start_step=4) == [2, 3, 3, 3]


def test_the_ema_samples_with_batchnorm_statistics_of_its_own_weights():
    config = build_config("dcgan-ema", overrides={"device": "cpu"})
    gan = build_trained_models(config, CPU)
    with torch.no_grad():
        gan.generator.net[2].running_mean.fill_(5.0)  # G's statistics, unfit for the EMA
    gan.update_ema()
    global_state = torch.get_rng_state()
    sampler = gan.sampler
    assert torch.equal(torch.get_rng_state(), global_state) and not sampler.training
    # The averaged weights' own activations over the fixed noise, in the batches of 256 whose
    # means and unbiased variances the running statistics average.
    noise = sample_noise(
        STANDING_STATISTICS_NUM, config.noise_dim, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        hidden = sampler.net[1](sampler.net[0](noise))
    batch_variances = torch.stack([batch.var(0) for batch in hidden.split(256)])
    torch.testing.assert_close(sampler.net[2].running_mean, hidden.mean(0))
    torch.testing.assert_close(sampler.net[2].running_var, batch_variances.mean(0))
    assert (gan.generator.net[2].running_mean == 5.0).all()  # G's own are untouched
    # Estimated once per update: the next use finds them as they are.
    with torch.no_grad():
        sampler.net[2].running_mean.fill_(7.0)
    assert (gan.sampler.net[2].running_mean == 7.0).all()
    gan.update_ema()
    torch.testing.assert_close(gan.sampler.net[2].running_mean, hidden.mean(0), atol=0.05, rtol=0)


def test_a_step_makes_n_critic_discriminator_updates_and_clips():
    config = build_config("wgan", overrides={"n_critic": 3, "device": "cpu"})
    gan = build_trained_models(config, CPU)
    reals = [torch.rand(4, 1, 28, 28) * 2 - 1 for _ in range(3)]
    step = build_step(gan, torch.Generator().manual_seed(0))
    stats, fake = step(reals)
    d_steps = {float(s["step"]) for s in gan.partner_optimizer.state.values() if "step" in s}
    g_steps = {float(s["step"]) for s in gan.generator_optimizer.state.values() if "step" in s}
    assert d_steps == {3.0} and g_steps == {1.0}
    assert all(p.abs().max() <= 0.01 for p in gan.discriminator.parameters())
    assert set(stats) == {"d_loss", "g_loss", "d_real", "d_fake"} and fake.shape == (4, 1, 28, 28)
    with pytest.raises(ValueError, match="2 real batches for 3 discriminator updates"):
        step(reals[:2])


def test_wgan_gp_logs_its_penalty():
    config = build_config("wgan-gp", overrides={"n_critic": 2, "device": "cpu"})
    gan = build_trained_models(config, CPU)
    reals = [torch.rand(4, 1, 28, 28) * 2 - 1 for _ in range(2)]
    stats, _ = build_step(gan, torch.Generator().manual_seed(0))(reals)
    assert stats["d_penalty"] > 0 and all(math.isfinite(v) for v in stats.values())


def test_the_objectives_table_names_itself():
    assert all(name == objective.name for name, objective in OBJECTIVES.items())


# 600 tiny images: batches of 32, and at most 5 critic updates per iteration (160 images).
@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_trains_end_to_end_and_samples(preset, tmp_path):
    run = tmp_path / preset
    assert tiny_train(run, "--preset", preset, "--max-steps", "2") == 0
    checkpoint = load_checkpoint(run)
    assert checkpoint["step"] == 2 and checkpoint["config"]["preset"] == preset
    grid = tmp_path / "grid.png"
    assert main(["sample", str(run), "--num", "4", "--grid", str(grid)]) == 0
    assert grid.is_file()


def test_an_ema_run_samples_with_the_ema_weights(tmp_path):
    run = tmp_path / "ema"
    args = ["--preset", "dcgan-ema", "--max-steps", "3", "--ema", "0.5", "--ema-every", "1"]
    assert tiny_train(run, *args) == 0
    checkpoint = load_checkpoint(run)
    generator, _ = load_generator(run)
    for name, value in generator.state_dict().items():
        torch.testing.assert_close(value, checkpoint["generator_ema"][f"module.{name}"])
    raw = checkpoint["generator"]["net.0.weight"]
    assert not torch.equal(generator.state_dict()["net.0.weight"], raw)
    # The checkpoint holds the BatchNorm statistics of the averaged weights, not G's.
    # (Training ran the network in its own memory layout: equal up to rounding.)
    saved = {name: value.clone() for name, value in generator.named_buffers()}
    estimate_batchnorm_statistics(generator, checkpoint["config"]["noise_dim"])
    for name, value in generator.named_buffers():
        torch.testing.assert_close(value, saved[name], rtol=1e-3, atol=1e-4)
    own = checkpoint["generator"]["net.2.running_mean"]
    assert (saved["net.2.running_mean"] - own).abs().max() > 1e-2


def test_the_ema_of_a_sync_batchnorm_generator_keeps_its_batchnorm_per_process():
    # Only rank 0 samples; a SyncBatchNorm estimating statistics would wait for the others.
    generator = nn.SyncBatchNorm.convert_sync_batchnorm(build_generator("dcgan", 96))
    discriminator = DCGANDiscriminator()
    gan = TrainedModels(
        TrainConfig(noise_dim=96, ema=0.9, ema_every=1),
        generator,
        discriminator,
        make_optimizer(generator),
        make_optimizer(discriminator),
    )
    layers = list(gan.sampler.modules())
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in layers)
    assert sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in layers) == 3
    assert gan.ema.state_dict().keys() == {f"module.{k}" for k in generator.state_dict()} | {
        "n_averaged"
    }
    gan.update_ema()
    assert torch.equal(gan.ema.module.net[0].weight, generator.net[0].weight)
