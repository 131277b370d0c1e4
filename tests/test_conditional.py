"""Class-conditional generation: label embedding in G, projection and auxiliary-classifier
discriminators, balanced sampling, ``sample --class``/``--per-class-grid`` and the conditional
accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import tiny_train
from ganforge.cli import main
from ganforge.config import build_config
from ganforge.eval.metrics import conditional_accuracy
from ganforge.nets import (
    AuxiliaryClassifierDiscriminator,
    ConditionalGenerator,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    ProjectionDiscriminator,
)
from ganforge.sampling import balanced_labels, generate
from ganforge.training import build_step, build_trained_models

CPU = torch.device("cpu")


def test_projection_discriminator_is_the_score_plus_the_label_projection():
    torch.manual_seed(0)
    body = MLPDiscriminator()
    discriminator = ProjectionDiscriminator(body, num_classes=10)
    images, labels = torch.randn(5, 1, 28, 28), torch.tensor([0, 3, 3, 9, 1])
    features = body.net[:-1](images)  # φ(x): (5, 256)
    expected = body.net[-1](features) + (discriminator.embed.weight[labels] * features).sum(
        1, keepdim=True
    )
    torch.testing.assert_close(discriminator(images, labels), expected)
    # The label matters: the same images asked as other classes score differently.
    other = (labels + 1) % 10
    assert not torch.allclose(discriminator(images, labels), discriminator(images, other))


def test_auxiliary_classifier_discriminator_gives_a_score_and_class_logits():
    discriminator = AuxiliaryClassifierDiscriminator(DCGANDiscriminator(), num_classes=10)
    scores, logits = discriminator(torch.randn(4, 1, 28, 28))
    assert scores.shape == (4, 1) and logits.shape == (4, 10)


def test_conditional_generator_draws_the_asked_class():
    torch.manual_seed(0)
    generator = ConditionalGenerator(DCGANGenerator(96), num_classes=10).eval()
    noise = torch.rand(3, 96) * 2 - 1
    sevens = generator(noise, torch.full((3,), 7))
    assert sevens.shape == (3, 1, 28, 28) and sevens.abs().max() <= 1
    assert not torch.allclose(sevens, generator(noise, torch.full((3,), 2)))
    # The body sees the noise times the label's embedding, never the label without the noise.
    torch.testing.assert_close(sevens, generator.body(noise * generator.embed.weight[7]))
    assert torch.allclose(
        generator(torch.zeros(3, 96), torch.arange(3)), generator.body(torch.zeros(3, 96))
    )


class LabelRecorder(nn.Module):
    """A conditional 'generator' that remembers the labels it was asked for."""

    num_classes = 10

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, noise, labels):
        self.seen.append(labels)
        return noise.reshape(noise.shape[0], 1, 1, -1)


def test_sampling_asks_for_every_class_equally_unless_told():
    recorder = LabelRecorder()
    generate(recorder, 25, 4, batch_size=10)
    assert torch.cat(recorder.seen).tolist() == balanced_labels(25, 10).tolist()
    assert torch.bincount(balanced_labels(30, 10)).tolist() == [3] * 10
    recorder.seen.clear()
    generate(recorder, 6, 4, labels=torch.full((6,), 7))
    assert torch.cat(recorder.seen).tolist() == [7] * 6


def test_conditional_accuracy_by_hand():
    probabilities = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert conditional_accuracy(probabilities, torch.tensor([0, 1, 1, 1])) == 0.75


@pytest.mark.parametrize("preset", ["cgan", "acgan"])
def test_a_conditional_step_needs_and_uses_labels(preset):
    config = build_config(preset, overrides={"device": "cpu", "num_classes": 10})
    gan = build_trained_models(config, CPU)
    real, labels = torch.rand(6, 1, 28, 28) * 2 - 1, torch.arange(6)
    step = build_step(gan, torch.Generator().manual_seed(0))
    stats, fake = step(real, labels)
    assert fake.shape == (6, 1, 28, 28) and all(np.isfinite(v) for v in stats.values())
    with pytest.raises(ValueError, match="pass labels"):
        step(real)


def test_sample_by_class_and_per_class_grid_from_the_cli(tmp_path, capsys):
    run = tmp_path / "cgan"
    assert tiny_train(run, "--preset", "cgan", "--max-steps", "2") == 0
    grid = tmp_path / "classes.png"
    assert main(["sample", str(run), "--per-class-grid", "--num", "3", "--grid", str(grid)]) == 0
    assert Image.open(grid).size == (3 * 30 + 2, 10 * 30 + 2)  # a row per class
    out = tmp_path / "sevens.npz"
    assert main(["sample", str(run), "--class", "7", "--num", "5", "--out", str(out)]) == 0
    assert np.load(out)["images"].shape == (5, 28, 28)
    capsys.readouterr()
    assert main(["sample", str(run), "--class", "10", "--out", str(out)]) == 2
    assert "--class must be from 0 to 9, got 10" in capsys.readouterr().err
    plain = tmp_path / "plain"
    assert tiny_train(plain, "--max-steps", "1") == 0
    assert main(["sample", str(plain), "--class", "3", "--out", str(out)]) == 2
    assert "is not class-conditional" in capsys.readouterr().err


def test_conditional_runs_report_their_conditional_accuracy(tmp_path, capsys):
    from conftest import EVAL_FLAGS
    from ganforge.steplog import read_step_log

    run = tmp_path / "acgan"
    assert tiny_train(run, "--preset", "acgan", *EVAL_FLAGS, "--max-steps", "2") == 0
    logged = [r for r in read_step_log(run / "metrics.jsonl") if "fid" in r]
    assert logged and all(0 <= r["conditional_accuracy"] <= 1 for r in logged)
    capsys.readouterr()
    assert main(["eval", str(run), "--num", "40", "--json"]) == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert 0 <= result["samples"]["conditional_accuracy"] <= 1


def test_conditioning_needs_labelled_images(tmp_path, capsys, image_folder):
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in list(image_folder.rglob("*.png"))[:4]:
        (flat / path.name).write_bytes(path.read_bytes())
    args = ["--preset", "cgan", "--dataset", f"folder:{flat}", "--batch-size", "2"]
    assert tiny_train(tmp_path / "run", *args) == 2
    assert "needs labelled images" in capsys.readouterr().err


def test_acgan_discriminator_classifies_real_images_only():
    import copy

    import torch.nn.functional as F

    from ganforge.nets import sample_noise
    from ganforge.objectives import OBJECTIVES

    torch.manual_seed(0)
    # fp32: the loss is recomputed below outside autocast, to 1e-5.
    overrides = {"device": "cpu", "num_classes": 10, "precision": "fp32"}
    config = build_config("acgan", overrides=overrides)
    gan = build_trained_models(config, CPU)
    generator, discriminator = copy.deepcopy(gan.generator), copy.deepcopy(gan.discriminator)
    real, real_labels = torch.rand(8, 1, 28, 28) * 2 - 1, torch.arange(8)
    stats, _ = build_step(gan, torch.Generator().manual_seed(3))(real, real_labels)

    draws = torch.Generator().manual_seed(3)  # the step's first draws: noise, then labels
    noise = sample_noise(8, config.noise_dim, generator=draws)
    fake_labels = torch.randint(10, (8,), generator=draws)
    with torch.no_grad():
        fake = generator(noise, fake_labels)
        scores_real, logits_real = discriminator(real)
        scores_fake, _ = discriminator(fake)
    adversarial = OBJECTIVES["gan"].discriminator_loss(scores_real, scores_fake)
    expected = adversarial + F.cross_entropy(logits_real, real_labels)
    assert stats["d_loss"] == pytest.approx(expected.item(), rel=1e-5)
