"""The package's own entry points (``from ganforge import ...``), as the README's Python API
section uses them, on the tiny synthetic MNIST."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields

import numpy as np
import pytest
import torch

import ganforge
from ganforge import Scores, evaluate, load_run, resume, sample, train
from ganforge.console import Console
from ganforge.data import to_uint8
from ganforge.devices import resolve_device
from ganforge.errors import GanforgeError


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_mnist_root):
    """A two-iteration ``gan`` run trained from Python."""
    out = tmp_path_factory.mktemp("api") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GANFORGE_DATA", str(tiny_mnist_root))
        train(
            "gan",
            out=str(out),
            max_steps=2,
            batch_size=32,
            grid_size=4,
            eval_every=0,
            final_eval_num=0,
        )
    return out


def test_train_sample_evaluate_and_resume_from_a_script(tmp_path, capsys):
    settings = {"max_steps": 2, "batch_size": 32, "grid_size": 4, "eval_every": 0}
    summary = train("gan", out=str(tmp_path / "api"), final_eval_num=0, **settings)
    assert summary.steps == 2 and (summary.run_dir / "summary.json").is_file()
    assert capsys.readouterr().err == ""  # silent unless handed a console

    images = sample(summary.run_dir, 8, seed=0)
    assert images.shape == (8, 1, 28, 28) and images.min() >= -1 and images.max() <= 1
    assert torch.equal(images, sample(summary.run_dir, 8, seed=0))  # the seed fixes them

    run = load_run(summary.run_dir)
    assert not run.generator.training and run.config.preset == "gan" and run.config.max_steps == 2
    assert run.checkpoint.name == "step_0000002.pt"

    result = evaluate(summary.run_dir, num=64, prdc_num=64)
    assert result.samples.num == 64 and result.samples.fid > 0 and result.floor.fid >= 0
    assert result.samples.class_histogram and result.raw["evaluator"] == result.evaluator
    named = {f.name: getattr(result.samples, f.name) for f in fields(Scores) if f.name != "extra"}
    kept = {k: v for k, v in named.items() if k in result.raw["samples"]}
    assert {**kept, **result.samples.extra} == result.raw["samples"]  # nothing dropped

    resumed = resume(summary.run_dir, max_steps=4, console=Console())
    assert resumed.steps == 4
    assert json.loads((summary.run_dir / "summary.json").read_text())["steps"] == 4
    assert "ganforge" not in capsys.readouterr().out  # progress goes to stderr


def test_the_version_comes_from_one_place():
    from importlib.metadata import version

    assert ganforge.__version__ == version("ganforge")


def test_scores_keep_a_metric_they_have_no_field_for():
    scores = Scores.from_dict({"fid": 12.5, "sharpness": 0.75, "space": "pixels"})
    assert scores.fid == 12.5 and scores.precision is None
    assert scores.extra == {"sharpness": 0.75, "space": "pixels"}
    assert Scores.from_dict({"fid": 1.0}).extra == {}
    assert Scores.from_dict({"extra": 2.0}).extra == {"extra": 2.0}  # a metric of that name too
    assert Scores.from_dict(None) is None


def test_the_api_resolves_a_device_auto_included(tiny_run):
    run = load_run(tiny_run, "auto")
    assert run.device == resolve_device("auto")
    assert {p.device.type for p in run.generator.parameters()} == {run.device.type}
    images = sample(tiny_run, 6, seed=1, device="auto")
    assert images.shape == (6, 1, 28, 28) and images.device.type == "cpu"
    if run.device.type == "cpu":  # elsewhere another device's kernels may differ in the last bit
        assert torch.equal(images, sample(tiny_run, 6, seed=1))
    assert torch.equal(run.sample(6, seed=1), images)  # load once, draw the same
    with pytest.raises(GanforgeError, match="unknown device 'tpu': use auto, cpu"):
        sample(tiny_run, 2, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(GanforgeError, match="device cuda:1 was asked for, but no CUDA GPU"):
            load_run(tiny_run, "cuda:1")


def test_labels_for_an_unconditional_run_are_refused(tiny_run):
    assert load_run(tiny_run).classes == 0
    with pytest.raises(GanforgeError, match="the generator is not class-conditional"):
        sample(tiny_run, 4, labels=torch.zeros(4, dtype=torch.long))


def test_ganforge_sample_draws_what_the_api_draws_without_the_training_package(tiny_run, tmp_path):
    # A fresh interpreter: this one imported training to train the run.
    out = tmp_path / "samples.npz"
    script = (
        "import sys; from ganforge.cli import main; "
        f"code = main(['sample', {str(tiny_run)!r}, '--num', '5', '--seed', '2', "
        f"'--out', {str(out)!r}, '--device', 'auto']); "
        "loaded = sorted(m for m in sys.modules if m.startswith('ganforge.training')); "
        "print(code, loaded)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.splitlines()[-1] == "0 []", done.stderr
    with np.load(out) as archive:
        drawn = torch.from_numpy(archive["images"])
    expected = to_uint8(sample(tiny_run, 5, seed=2, device="auto"))[:, 0]
    assert torch.equal(drawn, expected)
