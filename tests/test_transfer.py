"""``--init-from RUN``: a new run's networks start from another run's; ``--init-partial`` and
``--freeze-d K``."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import tiny_train as _tiny_train
from ganforge.checkpoint_file import sampling_weights
from ganforge.cli import main
from ganforge.nets import build_models, discriminator_blocks


def tiny_train(run: Path, *flags: str) -> int:
    """A tiny run that keeps every checkpoint (its step-0 one holds the carried weights)."""
    return _tiny_train(run, "--keep-checkpoints", "20", *flags)


def newest(run: Path) -> Path:
    return sorted((run / "checkpoints").glob("step_*.pt"))[-1]


def first(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "step_0000000.pt", weights_only=True)


def error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture(scope="module")
def source(tmp_path_factory, tiny_mnist_root) -> Path:
    """A 3-step mlp run with an EMA of G, on the tiny MNIST."""
    run = tmp_path_factory.mktemp("source") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GANFORGE_DATA", str(tiny_mnist_root))
        assert tiny_train(run, "--ema", "0.9", "--max-steps", "3") == 0
    return run


def test_a_new_run_starts_from_the_sources_ema_generator_and_discriminator(source, tmp_path):
    run = tmp_path / "tuned"
    flags = ["--init-from", str(source), "--classes", "5,6,7", "--max-steps", "2"]
    assert tiny_train(run, *flags, "--lr", "2e-4") == 0
    start, origin = first(run), torch.load(newest(source), weights_only=True)
    ema = sampling_weights(origin)
    assert all(torch.equal(start["generator"][k], ema[k]) for k in ema)
    assert not all(torch.equal(ema[k], origin["generator"][k]) for k in ema)  # the EMA, not G
    d = origin["discriminator"]
    assert all(torch.equal(start["discriminator"][k], d[k]) for k in d)
    assert start["d_optimizer"]["state"] == {}  # fresh optimizers
    record = json.loads((run / "init_from.json").read_text())
    digest = hashlib.sha256(newest(source).read_bytes()).hexdigest()
    assert record == {"checkpoint": str(newest(source)), "step": 3, "sha256": digest}
    assert json.loads((run / "summary.json").read_text())["init_from"] == record
    assert json.loads((run / "config.json").read_text())["init_from"] == str(source)
    assert f"started from {newest(source)} (step 3" in (run / "report.html").read_text()


def test_layers_whose_shapes_differ_are_named_and_carried_only_with_init_partial(tmp_path, capsys):
    source = tmp_path / "ten"
    assert tiny_train(source, "--conditioning", "projection", "--max-steps", "1") == 0
    capsys.readouterr()
    three = ["--conditioning", "projection", "--classes", "5,6,7", "--max-steps", "1"]
    assert tiny_train(tmp_path / "refused", "--init-from", str(source), *three) == 2
    line = error_line(capsys)
    assert "2 tensors cannot be carried: generator embed.weight (10×96 there, 3×96 here)" in line
    assert "discriminator embed.weight (10×256 there, 3×256 here)" in line
    assert "add --init-partial" in line and not (tmp_path / "refused").exists()
    run = tmp_path / "partial"
    assert tiny_train(run, "--init-from", str(source), "--init-partial", *three) == 0
    start, origin = first(run), torch.load(newest(source), weights_only=True)
    assert torch.equal(
        start["generator"]["body.net.0.weight"], origin["generator"]["body.net.0.weight"]
    )
    assert start["generator"]["embed.weight"].shape == (3, 96)


def test_an_unconditional_source_starts_a_conditional_run(source, tmp_path):
    # The conditional wrapper's body holds the unconditional networks' layers.
    flags = ["--init-from", str(source), "--conditioning", "acgan", "--init-partial"]
    assert tiny_train(tmp_path / "run", *flags, "--max-steps", "1") == 0
    start = first(tmp_path / "run")
    d = torch.load(newest(source), weights_only=True)["discriminator"]
    assert torch.equal(start["discriminator"]["body.net.1.weight"], d["net.1.weight"])


def test_freeze_d_keeps_the_first_blocks_as_they_started(source, tmp_path):
    run = tmp_path / "frozen"
    assert tiny_train(run, "--init-from", str(source), "--freeze-d", "2", "--max-steps", "3") == 0
    start, end = first(run)["discriminator"], torch.load(newest(run), weights_only=True)
    end = end["discriminator"]
    # mlp's D: [Flatten, Linear 0→net.1, LeakyReLU] [Linear net.3, LeakyReLU] [Linear net.5]
    for frozen in ("net.1.weight", "net.1.bias", "net.3.weight", "net.3.bias"):
        assert torch.equal(start[frozen], end[frozen])
    assert not torch.equal(start["net.5.weight"], end["net.5.weight"])


def test_blocks_are_defined_once_for_every_architecture():
    counts = {"mlp": 3, "dcgan": 4}
    for name, count in counts.items():
        _, d = build_models(name, 8, "default")
        assert len(discriminator_blocks(d)) == count
    for name, size, count in (("radford", 32, 4), ("radford", 64, 5), ("resnet", 32, 5)):
        _, d = build_models(name, 8, "default", image_shape=(3, size, size))
        assert len(discriminator_blocks(d)) == count


def test_freezing_every_block_of_d_is_one_line(tmp_path, capsys):
    # mlp's D has 3 blocks: freezing all 3 would leave it nothing to learn the new data with.
    assert tiny_train(tmp_path / "run", "--freeze-d", "3", "--max-steps", "1") == 2
    line = error_line(capsys)
    assert "freeze_d 3: this discriminator (MLPDiscriminator) has 3 blocks" in line
    assert "give at most 2" in line


def test_a_fine_tuned_run_resumes_bit_for_bit_without_its_source(source, tmp_path):
    flags = ["--init-from", str(source), "--freeze-d", "1", "--augment", "diffaugment"]
    assert tiny_train(tmp_path / "whole", *flags, "--max-steps", "4") == 0
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in source.rglob("*"):  # a source that disappears before the resume
        if path.is_file():
            (copy / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (copy / path.relative_to(source)).write_bytes(path.read_bytes())
    flags[1] = str(copy)
    assert tiny_train(tmp_path / "parts", *flags, "--max-steps", "2") == 0
    for path in sorted(copy.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    copy.rmdir()
    resume = ["train", "--resume", str(tmp_path / "parts"), "--max-steps", "4", "--quiet"]
    assert main(resume) == 0
    whole = torch.load(newest(tmp_path / "whole"), weights_only=True)
    parts = torch.load(newest(tmp_path / "parts"), weights_only=True)
    for key in ("generator", "discriminator"):
        assert all(torch.equal(whole[key][k], parts[key][k]) for k in whole[key])


USER_NETWORKS = """
from torch import nn


def build(noise_dim, image_shape):
    pixels = image_shape[0] * image_shape[1] * image_shape[2]
    generator = nn.Sequential(
        nn.Linear(noise_dim, pixels), nn.Tanh(), nn.Unflatten(1, image_shape)
    )
    return generator, nn.Sequential(nn.Flatten(), nn.Linear(pixels, 1))
"""


def test_a_source_of_user_networks_needs_trust_code(tmp_path, monkeypatch, capsys):
    (tmp_path / "transfer_user_nets.py").write_text(textwrap.dedent(USER_NETWORKS))
    monkeypatch.syspath_prepend(str(tmp_path))
    source = tmp_path / "user"
    assert tiny_train(source, "--architecture", "transfer_user_nets:build", "--max-steps", "1") == 0
    capsys.readouterr()
    same = ["--architecture", "transfer_user_nets:build", "--max-steps", "1"]
    assert tiny_train(tmp_path / "refused", "--init-from", str(source), *same) == 2
    assert "add --trust-code if you trust that code" in error_line(capsys)
    run = tmp_path / "trusted"
    assert tiny_train(run, "--init-from", str(source), "--trust-code", *same) == 0
    origin = torch.load(newest(source), weights_only=True)["generator"]
    assert torch.equal(first(run)["generator"]["0.weight"], origin["0.weight"])


def test_init_partial_without_init_from_is_refused(tmp_path, capsys):
    assert tiny_train(tmp_path / "run", "--init-partial", "--max-steps", "1") == 2
    assert "init_partial says what to do" in error_line(capsys)


def test_a_users_sequential_discriminator_has_blocks_and_another_is_refused():
    # A normalisation layer belongs to the block of the layer it normalises.
    sequential = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(4, 3),
        torch.nn.BatchNorm1d(3),
        torch.nn.ReLU(),
        torch.nn.Linear(3, 1),
    )
    assert [len(block) for block in discriminator_blocks(sequential)] == [4, 1]
    with pytest.raises(ValueError, match="Linear is not a sequence of layers"):
        discriminator_blocks(torch.nn.Linear(4, 1))
