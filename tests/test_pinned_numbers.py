"""Every number stays as it was: runs of today's code pinned against ganforge 7f21795's.

``fixtures/pinned_samples.npz`` holds, for several presets, 16 samples (noise seed 3, floats in
``[-1, 1]``) of a 3-iteration run on the tiny synthetic MNIST of ``conftest.py``, as the code
of commit 7f21795 (before the training core's redesign) trained and sampled them;
``fixtures/README.md`` gives the script that made them. The same code on the same CPU gives the
same bits. Another CPU rounds its sums differently, and Adam (which divides each gradient by its
own size) turns a rounding in a near-zero gradient into a full step: on an AMD EPYC Zen 4
(AVX-512) the convolutional presets land up to 2.5e-3 from the pinned images, the MLPs within
1e-6. A change to what a step computes moves them much further: a learning rate of 2.1e-4
instead of 2e-4 moves dcgan-ema's by 0.77 and wgan-gp's by 0.058. Hence the tolerance of 1e-2.

``fixtures/checkpoint-7f21795-step2.pt`` is a checkpoint written by 7f21795 (small radford
networks with an EMA, RMSprop, iteration 2 of 4): it must load, sample and resume.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_train
from ganforge import load_run, sample
from ganforge.checkpoint_file import load_checkpoint
from ganforge.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
PINNED = np.load(FIXTURES / "pinned_samples.npz")
OLD_CHECKPOINT = FIXTURES / "checkpoint-7f21795-step2.pt"
OLD_SAMPLES = np.load(FIXTURES / "checkpoint-7f21795-samples.npz")
TOLERANCE = 1e-2


def pinned_samples(run: Path) -> np.ndarray:
    return sample(run, 16, seed=3).numpy()


@pytest.mark.parametrize("preset", ["gan", "dcgan-ema", "cgan", "vae", "wgan-gp"])
def test_a_short_run_draws_the_images_7f21795_drew(tmp_path, preset):
    assert tiny_train(tmp_path / "run", "--preset", preset, "--max-steps", "3", "--seed", "0") == 0
    got = pinned_samples(tmp_path / "run")
    assert got.shape == PINNED[preset].shape
    assert np.abs(got - PINNED[preset]).max() < TOLERANCE


def old_run_folder(tmp_path: Path) -> Path:
    """A run folder around the 7f21795 checkpoint, as that version left it."""
    run = tmp_path / "old-run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(
        OLD_CHECKPOINT,
        run
        / "checkpoints"
        / OLD_CHECKPOINT.name.replace("checkpoint-7f21795-step2", "step_0000002"),
    )
    config = load_checkpoint(OLD_CHECKPOINT)["config"]
    (run / "config.json").write_text(json.dumps(config))
    return run


def test_a_7f21795_checkpoint_loads_and_samples_as_it_did():
    run = load_run(OLD_CHECKPOINT)
    config = run.config
    assert not run.generator.training
    assert (config.architecture, config.noise_dim, config.ema) == ("radford", 8, 0.999)
    assert np.abs(sample(OLD_CHECKPOINT, 16, seed=3).numpy() - OLD_SAMPLES["step2"]).max() < 1e-5


def test_a_7f21795_checkpoint_resumes_as_its_run_went_on(tmp_path):
    once = old_run_folder(tmp_path / "once")
    assert main(["train", "--resume", str(once), "--quiet"]) == 0  # its own --max-steps 4
    # Iteration 4 as 7f21795 drew it (up to this CPU's rounding: see the module docstring).
    assert np.abs(pinned_samples(once) - OLD_SAMPLES["step4"]).max() < TOLERANCE
    # And bit for bit the same as stopping at 3 and resuming again.
    twice = old_run_folder(tmp_path / "twice")
    assert main(["train", "--resume", str(twice), "--max-steps", "3", "--quiet"]) == 0
    assert main(["train", "--resume", str(twice), "--max-steps", "4", "--quiet"]) == 0
    for key in ("generator", "discriminator", "generator_ema", "d_optimizer", "rng_states"):
        a, b = tensors(load_checkpoint(once)[key]), tensors(load_checkpoint(twice)[key])
        assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True)), key


def tensors(state) -> list[torch.Tensor]:
    """Every tensor in a nested state dict, in order."""
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for key in sorted(state, key=str) for t in tensors(state[key])]
    if isinstance(state, (list, tuple)):
        return [t for item in state for t in tensors(item)]
    return []
