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
``fixtures/checkpoint-32657bc-step2.pt``, written by 32657bc (before the second redesign), holds
what that version added: ADA's state, standing BatchNorm statistics, a run with label smoothing,
label flips and instance noise (``fixtures/make_checkpoint_32657bc.py`` made it).
"""

from __future__ import annotations

import importlib.util
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
CHECKPOINT_32657BC = FIXTURES / "checkpoint-32657bc-step2.pt"
#: Samples (seed 3) at iterations 2, 4 and 6 (``step2``...), ADA's (p, sign_sum, counted) there.
SAMPLES_32657BC = np.load(FIXTURES / "checkpoint-32657bc-samples.npz")
TOLERANCE = 1e-2


def pinned_samples(run: Path) -> np.ndarray:
    return sample(run, 16, seed=3).numpy()


@pytest.mark.parametrize("preset", ["gan", "dcgan-ema", "cgan", "vae", "wgan-gp"])
def test_a_short_run_draws_the_images_7f21795_drew(tmp_path, preset):
    # 7f21795 computed in fp32; --precision auto would pick bf16 on CPUs that have it.
    flags = ["--preset", preset, "--max-steps", "3", "--seed", "0", "--precision", "fp32"]
    assert tiny_train(tmp_path / "run", *flags) == 0
    got = pinned_samples(tmp_path / "run")
    assert got.shape == PINNED[preset].shape
    assert np.abs(got - PINNED[preset]).max() < TOLERANCE


def old_run_folder(tmp_path: Path, checkpoint: Path = OLD_CHECKPOINT) -> Path:
    """A run folder around an old version's iteration-2 checkpoint, as that version left it."""
    run = tmp_path / "old-run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(checkpoint, run / "checkpoints" / "step_0000002.pt")
    config = load_checkpoint(checkpoint)["config"]
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


def test_a_32657bc_checkpoint_loads_and_samples_as_it_did():
    checkpoint = load_checkpoint(CHECKPOINT_32657BC)
    config = load_run(CHECKPOINT_32657BC).config
    assert (config.augment, config.standing_stats, config.real_label) == ("ada", True, 0.9)
    assert (config.flip_labels, config.instance_noise, config.g_width) == (0.05, 0.1, 0.5)
    assert checkpoint["ada"] == {"p": 0.0, "sign_sum": -0.375, "counted": 2}
    # Its samples come from the standing statistics, which differ from the training-time ones.
    standing, trained = checkpoint["generator_standing"], checkpoint["generator"]
    means = [key for key in trained if key.endswith("running_mean")]
    assert means and not any(torch.equal(standing[key], trained[key]) for key in means)
    got = sample(CHECKPOINT_32657BC, 16, seed=3).numpy()
    assert np.abs(got - SAMPLES_32657BC["step2"]).max() < 1e-5


def ada_state(run: Path) -> tuple[float, int]:
    """ADA's p and the iterations it has counted towards its next move, in a run's newest
    checkpoint."""
    ada = load_checkpoint(run)["ada"]
    return ada["p"], ada["counted"]


def test_a_32657bc_checkpoint_resumes_as_its_run_went_on(tmp_path):
    old = SAMPLES_32657BC
    # Iteration 4, where ADA's p moved (from 0 to 0.32) on the signs of iterations 1 to 4: it
    # moves only if the two counted before the checkpoint came back with it.
    twice = old_run_folder(tmp_path / "twice", CHECKPOINT_32657BC)
    assert main(["train", "--resume", str(twice), "--max-steps", "4", "--quiet"]) == 0
    assert np.abs(pinned_samples(twice) - old["step4"]).max() < TOLERANCE
    assert ada_state(twice) == (old["ada4"][0], old["ada4"][2]) == (0.32, 0)
    # Iterations 5 and 6 augment with that p.
    assert main(["train", "--resume", str(twice), "--max-steps", "6", "--quiet"]) == 0
    assert np.abs(pinned_samples(twice) - old["step6"]).max() < TOLERANCE
    assert ada_state(twice) == (old["ada6"][0], old["ada6"][2])
    # And bit for bit the same as resuming once to the run's own --max-steps 6.
    once = old_run_folder(tmp_path / "once", CHECKPOINT_32657BC)
    assert main(["train", "--resume", str(once), "--quiet"]) == 0
    a, b = load_checkpoint(once), load_checkpoint(twice)
    assert a["step"] == b["step"] == 6 and a["ada"] == b["ada"]
    keys = ("generator", "generator_standing", "discriminator", "g_optimizer", "d_optimizer")
    for key in (*keys, "rng_states"):
        x, y = tensors(a[key]), tensors(b[key])
        assert len(x) == len(y) and all(torch.equal(u, v) for u, v in zip(x, y, strict=True)), key


def identical_check():
    """``benchmarks/identical_check.py``, the old-against-new check, as a module."""
    path = Path(__file__).parents[1] / "benchmarks" / "identical_check.py"
    spec = importlib.util.spec_from_file_location("identical_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_identical_check_tells_a_changed_preset_from_an_unchanged_one(tmp_path, capsys):
    check, root = identical_check(), Path(__file__).parents[1]
    ours = tmp_path / "ours.json"
    assert check.main(["--src", str(root), "--presets", "gan", "--json", str(ours)]) == 0
    hashes = json.loads(ours.read_text())
    assert set(hashes) == {"gan", "gan weights"}
    assert all(len(value) == 64 for value in hashes.values())
    assert check.main(["--compare", str(ours), str(ours)]) == 0
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(hashes | {"gan": "0" * 64}))
    capsys.readouterr()
    assert check.main(["--compare", str(changed), str(ours)]) == 1
    table = capsys.readouterr().out
    assert f"| gan | {'0' * 16} | {hashes['gan'][:16]} | NO |" in table
    assert "| gan weights |" in table and table.count("| yes |") == 1
    # A tree that is not one says so in one line.
    assert check.main(["--src", str(tmp_path), "--presets", "gan"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
