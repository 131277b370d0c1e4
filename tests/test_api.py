"""The package's own entry points (``from ganforge import ...``), as the README's Python API
section uses them, on the tiny synthetic MNIST."""

from __future__ import annotations

import json

import torch

import ganforge
from ganforge import evaluate, load_run, resume, sample, train
from ganforge.console import Console


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

    resumed = resume(summary.run_dir, max_steps=4, console=Console())
    assert resumed.steps == 4
    assert json.loads((summary.run_dir / "summary.json").read_text())["steps"] == 4
    assert "ganforge" not in capsys.readouterr().out  # progress goes to stderr


def test_the_version_comes_from_one_place():
    from importlib.metadata import version

    assert ganforge.__version__ == version("ganforge")
