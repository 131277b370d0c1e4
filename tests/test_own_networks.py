"""Your own networks: ``--architecture module:callable`` from the command line and
``train(generator=..., discriminator=...)`` from Python, through training, resume, sampling,
evaluation, export and torchrun; and ``--trust-code``, without which reading such a run imports
nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

import ganforge
from conftest import EVAL_FLAGS, TINY_FLAGS, tiny_train
from ganforge.cli import main

MODULE = "ganforge_test_user_networks"
ARCHITECTURE = f"{MODULE}:build"
NETWORKS = '''
"""A user's small GAN for 28×28 grayscale images (the contract: see the README)."""
from torch import nn


def build(noise_dim, image_shape):
    pixels = image_shape[0] * image_shape[1] * image_shape[2]
    generator = nn.Sequential(
        nn.Linear(noise_dim, 64), nn.ReLU(), nn.Linear(64, pixels), nn.Tanh(),
        nn.Unflatten(1, image_shape),
    )
    discriminator = nn.Sequential(
        nn.Flatten(), nn.Linear(pixels, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1)
    )
    return generator, discriminator


def broken(noise_dim, image_shape):
    return build(noise_dim, image_shape)[0], "a discriminator"


class Generator(nn.Module):
    """Keeps the contract that conditioning needs: it says how long its noise is."""

    def __init__(self, noise_dim, image_shape):
        super().__init__()
        self.noise_dim = noise_dim
        pixels = image_shape[0] * image_shape[1] * image_shape[2]
        self.net = nn.Sequential(
            nn.Linear(noise_dim, 64), nn.ReLU(), nn.Linear(64, pixels), nn.Tanh(),
            nn.Unflatten(1, image_shape),
        )

    def forward(self, noise):
        return self.net(noise)


class Discriminator(nn.Module):
    """Keeps the contract of conditioning and the VAE: its layers as net, ending in the score
    layer, and features(), what that layer reads."""

    def __init__(self, image_shape):
        super().__init__()
        pixels = image_shape[0] * image_shape[1] * image_shape[2]
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(pixels, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1)
        )

    def features(self, images):
        return self.net[:-1](images)

    def forward(self, images):
        return self.net(images)


def contract(noise_dim, image_shape):
    return Generator(noise_dim, image_shape), Discriminator(image_shape)
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """The user's module, importable here and in the processes the tests start."""
    folder = tmp_path / "user-code"
    folder.mkdir()
    (folder / f"{MODULE}.py").write_text(textwrap.dedent(NETWORKS))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    )
    return folder


def error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_run_of_your_own_networks_trains_resumes_samples_evaluates_and_exports(
    tmp_path, user_module, capsys
):
    run = tmp_path / "run"
    flags = ["--architecture", ARCHITECTURE, "--max-steps", "3", *EVAL_FLAGS]
    assert tiny_train(run, *flags) == 0
    assert (run / "eval.json").is_file() and (run / "report.html").is_file()
    capsys.readouterr()

    # Reading the run would import the user's module: only with --trust-code.
    for command in (
        ["sample", str(run), "--num", "4", "--out", str(tmp_path / "s.npz")],
        ["eval", str(run), "--num", "64", "--prdc-num", "64"],
        ["interpolate", str(run), "--rows", "2", "--steps", "3"],
        ["export", str(run), "--out", str(tmp_path / "G.onnx")],
        ["train", "--resume", str(run), "--max-steps", "5", "--quiet"],
    ):
        assert main(command) == 2, command
        line = error_line(capsys)
        assert f"user-defined networks ({ARCHITECTURE})" in line and MODULE in line
        assert line.endswith("add --trust-code if you trust that code"), line
    assert not (tmp_path / "s.npz").exists() and not (tmp_path / "G.onnx").exists()

    trusted = ["--trust-code"]
    out = tmp_path / "s.npz"
    assert main(["sample", str(run), "--num", "4", "--out", str(out), *trusted]) == 0
    assert np.load(out)["images"].shape == (4, 28, 28)
    assert main(["eval", str(run), "--num", "64", "--prdc-num", "64", *trusted]) == 0
    assert main(["interpolate", str(run), "--rows", "2", "--steps", "3", *trusted]) == 0
    assert main(["export", str(run), "--out", str(tmp_path / "G.onnx"), *trusted]) == 0
    assert main(["train", "--resume", str(run), "--max-steps", "5", "--quiet", *trusted]) == 0
    assert ganforge.load_run(run, trust_code=True).checkpoint.name == "step_0000005.pt"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--architecture", "no_such_module_here:build"],
            "architecture no_such_module_here:build: cannot import no_such_module_here",
        ),
        (["--architecture", f"{MODULE}:missing"], f"{MODULE} has no callable missing"),
        (
            ["--architecture", f"{MODULE}:broken"],
            f"architecture {MODULE}:broken: the discriminator is a str, not a torch.nn.Module",
        ),
        (
            ["--architecture", ARCHITECTURE, "--preset", "vae"],
            f"architecture {ARCHITECTURE}: the discriminator has no net (an nn.Sequential of its "
            "layers) (needed by the VAE (--loss elbo), whose encoder is the discriminator)",
        ),
        (
            ["--architecture", ARCHITECTURE, "--conditioning", "projection"],
            f"architecture {ARCHITECTURE}: the generator has no noise_dim (an int) (needed by "
            "class conditioning (--conditioning))",
        ),
    ],
)
def test_networks_that_cannot_be_used_are_refused_in_one_line(
    tmp_path, user_module, capsys, flags, message
):
    assert tiny_train(tmp_path / "run", *flags, "--max-steps", "2") == 2
    assert message in error_line(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags", [["--conditioning", "projection"], ["--preset", "vae"]])
def test_your_own_networks_that_keep_the_contract_are_conditioned_or_encode(
    tmp_path, user_module, flags
):
    run = tmp_path / "run"
    assert tiny_train(run, *flags, "--architecture", f"{MODULE}:contract", "--max-steps", "2") == 0
    grid = tmp_path / "grid.png"
    sample = ["sample", str(run), "--num", "4", "--grid", str(grid), "--trust-code"]
    if "--conditioning" in flags:
        sample += ["--class", "3"]
    assert main(sample) == 0 and grid.is_file()


def test_your_own_networks_train_under_torchrun(tmp_path, user_module):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", "-m", "ganforge", "train", "--out", str(tmp_path / "r")]
    command += [
        *TINY_FLAGS,
        "--architecture",
        ARCHITECTURE,
        "--max-steps",
        "2",
        "--batch-size",
        "16",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"processes": 2' in (tmp_path / "r" / "summary.json").read_text()


def small_pair() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(96, 28 * 28), nn.Tanh(), nn.Unflatten(1, (1, 28, 28)))
    discriminator = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 1))
    return generator, discriminator


def test_a_script_hands_its_own_modules_to_train(tmp_path, capsys):
    generator, discriminator = small_pair()
    before = generator[0].weight.detach().clone()
    summary = ganforge.train(
        "gan",
        generator=generator,
        discriminator=discriminator,
        out=str(tmp_path / "run"),
        max_steps=3,
        batch_size=32,
        eval_every=0,
        final_eval_num=64,
    )
    assert summary.steps == 3 and (tmp_path / "run" / "eval.json").is_file()
    assert not torch.equal(generator[0].weight, before)  # trained in place

    # Read back by handing in a generator of the same kind: the checkpoint's weights go in.
    fresh, _ = small_pair()
    run = ganforge.load_run(tmp_path / "run", generator=fresh)
    noise = torch.rand(4, 96) * 2 - 1
    with torch.no_grad():
        assert torch.equal(run.generator(noise), generator.eval()(noise))
    resumed = ganforge.resume(
        tmp_path / "run", generator=generator, discriminator=discriminator, max_steps=4
    )
    assert resumed.steps == 4

    # The command line cannot rebuild them, and says how to read the run.
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "run"), "--out", str(tmp_path / "s.npz")]) == 2
    assert "ganforge.load_run(RUN, generator=...)" in error_line(capsys)
    with pytest.raises(TypeError, match="both generator= and discriminator="):
        ganforge.train("gan", generator=generator, out=str(tmp_path / "other"))
