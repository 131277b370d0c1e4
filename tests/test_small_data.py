"""Training on little data: DiffAugment and ADA's transforms, ADA's p, the GAN hacks (label
smoothing and flipping, instance noise, two learning rates, mirrored images) and their refusals.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_train
from ganforge.augment import AdaptiveProbability, Augmentation, cutout_mask, parse_policy, translate
from ganforge.config import build_config
from ganforge.data import ImageData, load_dataset
from ganforge.errors import GanforgeError
from ganforge.eval.scoring import reference_set
from ganforge.objectives import (
    gan_labelled_discriminator_loss,
    lsgan_labelled_discriminator_loss,
)
from ganforge.steplog import read_step_log
from ganforge.training import build_step, build_trained_models
from ganforge.training.parts import InstanceNoise

NUM = 6


def seeded_draw(seed: int = 0):
    """A ``draw`` for :class:`Augmentation` on one process: the whole batch's numbers."""
    generator = torch.Generator().manual_seed(seed)
    return lambda make: make(NUM, generator)


def images(n: int = NUM, size: int = 8) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_policy_names_are_checked():
    assert parse_policy("color, cutout") == ("color", "cutout")
    for bad in ("colour", "", "translation,zoom"):
        with pytest.raises(ValueError, match="augment policy"):
            parse_policy(bad)


def test_translate_shifts_each_image_and_fills_with_zero():
    x = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 1, 4, 4) + 1
    shifted = translate(x, torch.tensor([1, 0]), torch.tensor([0, -2]), reach=2)
    # image 0 moves down one row: row 0 becomes 0, row r takes row r-1
    assert torch.equal(shifted[0, 0, 0], torch.zeros(4))
    assert torch.equal(shifted[0, 0, 1:], x[0, 0, :3])
    # image 1 moves left two columns: the last two columns become 0
    assert torch.equal(shifted[1, 0, :, :2], x[1, 0, :, 2:])
    assert torch.equal(shifted[1, 0, :, 2:], torch.zeros(4, 2))


def test_cutout_zeroes_a_square_of_half_the_size_clipped_at_the_edges():
    mask = cutout_mask(8, 8, (4, 4), torch.tensor([4, 0]), torch.tensor([4, 7]), torch.float32)
    assert mask.shape == (2, 1, 8, 8)
    assert (mask[0] == 0).sum() == 16  # rows 2..5, columns 2..5
    assert torch.equal(mask[0, 0, 2:6, 2:6], torch.zeros(4, 4))
    assert (mask[1] == 0).sum() == 2 * 3  # rows 0..1 (clipped), columns 5..7 (clipped)


def test_diffaugment_changes_images_and_passes_gradients():
    x = images().requires_grad_(True)
    out = Augmentation(parse_policy("color,translation,cutout"))(x, seeded_draw())
    assert out.shape == x.shape
    assert not torch.allclose(out, x)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_probability_zero_leaves_images_as_they_are_and_draws_alike():
    """ADA at p = 0 is the identity, and draws exactly as many numbers as at p = 1 (so that a
    run's other draws do not depend on p)."""
    x = images()
    generator = torch.Generator().manual_seed(0)
    out = Augmentation(parse_policy("color,translation,cutout"), 0.0)(
        x, lambda make: make(NUM, generator)
    )
    assert torch.allclose(out, x, atol=1e-6)
    other = torch.Generator().manual_seed(0)
    Augmentation(parse_policy("color,translation,cutout"), 1.0)(x, lambda make: make(NUM, other))
    assert torch.equal(generator.get_state(), other.get_state())


def test_two_processes_augment_as_one():
    """Each process augments its half of the batch with its slice of one global draw."""
    x = images()
    whole = Augmentation(parse_policy("color,translation,cutout"))(x, seeded_draw(3))
    halves = []
    for part in (slice(0, 3), slice(3, 6)):
        generator = torch.Generator().manual_seed(3)
        halves.append(
            Augmentation(parse_policy("color,translation,cutout"))(
                x[part], lambda make, g=generator, p=part: make(NUM, g)[p]
            )
        )
    assert torch.allclose(torch.cat(halves), whole, atol=1e-6)


def test_ada_moves_p_toward_the_target_every_interval_and_round_trips():
    ada = AdaptiveProbability(target=0.6, interval=4, speed_images=1000)
    for _ in range(3):
        ada.observe(1.0, batch_size=50)
    assert ada.p == 0  # not adjusted before the interval ends
    ada.observe(1.0, batch_size=50)
    assert ada.p == pytest.approx(4 * 50 / 1000)  # r_t = 1 > 0.6: more augmentation
    saved = ada.state_dict()
    for _ in range(4):
        ada.observe(0.0, batch_size=50)
    assert ada.p == pytest.approx(0.0)  # r_t = 0 < 0.6: less, never below 0
    restored = AdaptiveProbability(target=0.6, interval=4, speed_images=1000)
    restored.load_state_dict(saved)
    assert restored.p == pytest.approx(0.2) and restored.counted == 0


def test_label_targets_match_binary_cross_entropy_and_least_squares_by_hand():
    real, fake = torch.randn(5, 1), torch.randn(5, 1)
    smoothed = gan_labelled_discriminator_loss(real, fake, 0.9, 0.0)
    by_hand = F.binary_cross_entropy_with_logits(real.flatten(), torch.full((5,), 0.9))
    by_hand = by_hand + F.binary_cross_entropy_with_logits(fake.flatten(), torch.zeros(5))
    assert smoothed.item() == pytest.approx(by_hand.item())
    flipped_real = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0])
    flipped_fake = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0])
    ls = lsgan_labelled_discriminator_loss(real, fake, flipped_real, flipped_fake)
    expected = 0.5 * ((real.flatten() - flipped_real) ** 2).mean()
    expected = expected + 0.5 * ((fake.flatten() - flipped_fake) ** 2).mean()
    assert ls.item() == pytest.approx(expected.item())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"preset": "vae", "augment": "diffaugment"}, "augment is a GAN option"),
        ({"preset": "vae", "instance_noise": 0.1}, "instance_noise is a GAN option"),
        ({"preset": "vae", "lr_d": 1e-3}, "lr_d is a GAN option"),
        ({"preset": "wgan-gp", "augment": "ada"}, "Wasserstein critic"),
        ({"preset": "hinge-sn", "real_label": 0.9}, "loss hinge has no labels"),
        ({"preset": "wgan-gp", "flip_labels": 0.1}, "loss wgan has no labels"),
        ({"preset": "dcgan", "flip_labels": 0.5}, "flip_labels must be a number"),
        ({"preset": "dcgan", "real_label": 0.0}, "real_label must be a number"),
        ({"preset": "dcgan", "lr_g": 0.0}, "lr_g must be a number"),
        ({"preset": "dcgan", "augment": "diffaugment", "augment_policy": "zoom"}, "zoom"),
        ({"preset": "dcgan", "augment": "mixup"}, "augment must be one of"),
        ({"preset": "dcgan", "xflip": True}, "a mirrored digit is not a digit"),
        ({"preset": "dcgan", "g_width": 0.0}, "g_width must be a number"),
    ],
)
def test_options_are_refused_where_they_mean_nothing(overrides, message):
    with pytest.raises(GanforgeError, match=message):
        build_config(overrides=overrides)


def test_two_learning_rates_reach_the_two_optimizers():
    config = build_config("dcgan", overrides={"lr": 3e-4, "lr_d": 4e-4})
    models = build_trained_models(config, torch.device("cpu"))
    assert models.generator_optimizer.param_groups[0]["lr"] == 3e-4  # --lr sets both...
    assert models.partner_optimizer.param_groups[0]["lr"] == 4e-4  # ...unless one is given


def test_a_linear_decay_takes_both_rates_to_0_over_the_planned_run():
    config = build_config("colour", overrides={"lr_d": 4e-4, "lr_decay": "linear"})
    models = build_trained_models(config, torch.device("cpu"))
    for progress, factor in ((0.0, 1.0), (0.75, 0.25), (1.0, 0.0)):
        models.before_step(progress)
        assert models.generator_optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * factor)
        assert models.partner_optimizer.param_groups[0]["lr"] == pytest.approx(4e-4 * factor)
    constant = build_trained_models(build_config("colour"), torch.device("cpu"))
    constant.before_step(0.75)
    assert constant.generator_optimizer.param_groups[0]["lr"] == 1e-3


def test_widths_scale_the_networks():
    narrow = build_trained_models(
        build_config("dcgan", overrides={"g_width": 0.5, "d_width": 0.25}), torch.device("cpu")
    )
    assert narrow.generator.net[0].out_features == 512
    assert narrow.generator.net[7].out_channels == 32
    assert narrow.partner.net[0].out_channels == 8


def test_instance_noise_is_annealed_linearly_over_the_planned_run():
    config = build_config("dcgan", overrides={"instance_noise": 0.4})
    step = build_step(build_trained_models(config, torch.device("cpu")))
    (noise,) = [view for view in step.views if isinstance(view, InstanceNoise)]
    assert noise.sigma_at(0.0) == pytest.approx(0.4)
    assert noise.sigma_at(0.75) == pytest.approx(0.1)


def test_an_ada_run_logs_and_draws_p_and_diffaugment_trains(tmp_path):
    run = tmp_path / "ada"
    flags = ["--preset", "dcgan", "--train-size", "320", "--max-steps", "12"]
    assert tiny_train(run, *flags, "--augment", "ada", "--ada-images", "1000") == 0
    records = [r for r in read_step_log(run / "metrics.jsonl") if "d_loss" in r]
    ps = [r["ada_p"] for r in records]
    assert ps[0] == 0 and len(set(ps)) > 1  # p starts at 0 and moves every 4 iterations
    assert all(-1 <= r["ada_r"] <= 1 for r in records)
    assert "augmentation probability" in (run / "report.html").read_text()
    plain = tmp_path / "diffaugment"
    assert tiny_train(plain, *flags, "--augment", "diffaugment") == 0
    assert json.loads((plain / "summary.json").read_text())["steps"] == 12


def test_xflip_trains_on_a_folder_of_images(tmp_path, image_folder):
    run = tmp_path / "flip"
    flags = ["--preset", "gan", "--dataset", f"folder:{image_folder}", "--max-steps", "2"]
    assert tiny_train(run, *flags, "--xflip", "--batch-size", "4", "--final-eval-num", "0") == 0


def test_a_balanced_subset_takes_the_first_images_of_each_class_in_file_order():
    everything = load_dataset("mnist", "train")
    for n in (20, 23):
        subset = load_dataset("mnist", "train", train_size=n, train_subset="balanced")
        counts = torch.bincount(subset.labels, minlength=10).tolist()
        assert counts == [n // 10 + (label < n % 10) for label in range(10)]
        expected = (
            torch.cat(
                [torch.nonzero(everything.labels == k).flatten()[: counts[k]] for k in range(10)]
            )
            .sort()
            .values
        )  # the first of each class, kept in file order
        assert torch.equal(subset.images, everything.images[expected])
    first = load_dataset("mnist", "train", train_size=20)
    assert torch.equal(first.images, everything.images[:20])  # the default cut is unchanged


def test_a_balanced_subset_a_class_cannot_fill_is_refused_in_one_line(tmp_path, capsys):
    images = torch.zeros(5, 1, 28, 28, dtype=torch.uint8)
    data = ImageData("few", images, torch.tensor([0, 0, 0, 1, 0]), ["a", "b"])
    assert data.balanced(2).labels.tolist() == [0, 1]
    assert data.balanced(9) is data  # no more images than asked for: all of them
    with pytest.raises(GanforgeError, match="needs 2 of class 'b'; it has 1"):
        data.balanced(4)
    flags = ["--preset", "gan", "--max-steps", "2", "--train-subset", "even"]
    assert tiny_train(tmp_path / "run", *flags) == 2
    assert "train_subset" in capsys.readouterr().err


def test_a_spread_subset_is_evenly_spaced_over_the_file_order(tmp_path, image_folder):
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2)
    data = ImageData("ten", images.clone(), torch.zeros(10, dtype=torch.long), ["a"])
    assert data.spread(4).images[:, 0, 0, 0].tolist() == [0, 2, 5, 7]  # ⌊i·10/4⌋
    assert data.spread(10) is data and data.spread(12) is data
    # A folder sorted by class: the first 6 are all cats, spread takes from both classes.
    folder = f"folder:{image_folder}"
    first = load_dataset(folder, train_size=6, image_shape=(3, 8, 8))
    spread = load_dataset(folder, train_size=6, train_subset="spread", image_shape=(3, 8, 8))
    everything = load_dataset(folder, image_shape=(3, 8, 8))
    assert first.labels.tolist() == [0] * 6
    assert spread.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.equal(spread.images, everything.images[[0, 2, 4, 6, 8, 10]])


def test_a_spread_run_scores_against_its_own_training_images(tmp_path):
    run = tmp_path / "spread"
    flags = ["--preset", "gan", "--train-size", "50", "--train-subset", "spread"]
    assert tiny_train(run, *flags, "--max-steps", "2", "--final-eval-num", "64") == 0
    spread = load_dataset("mnist", "train", train_size=50, train_subset="spread")
    everything = load_dataset("mnist", "train")
    assert torch.equal(spread.images, everything.images[torch.arange(50) * len(everything) // 50])
    reference = reference_set("mnist", train_size=50, train_subset="spread")
    assert torch.equal(reference.train_images, spread.images)


def test_a_balanced_run_trains_and_scores_against_its_own_training_images(tmp_path):
    run = tmp_path / "balanced"
    flags = ["--preset", "dcgan", "--train-size", "100", "--train-subset", "balanced"]
    assert tiny_train(run, *flags, "--max-steps", "3", "--final-eval-num", "64") == 0
    assert json.loads((run / "config.json").read_text())["train_subset"] == "balanced"
    assert json.loads((run / "eval.json").read_text())["samples"]["memorisation_ratio"] > 0
    balanced = load_dataset("mnist", "train", train_size=100, train_subset="balanced")
    reference = reference_set("mnist", train_size=100, train_subset="balanced")
    assert torch.equal(reference.train_images, balanced.images)
