"""``ganforge export``: the generator as ONNX, run with onnxruntime against PyTorch."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image

from conftest import tiny_train
from ganforge import export, load_run
from ganforge.cli import main


def run_onnx(path, noise: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {"noise": noise} if labels is None else {"noise": noise, "labels": labels}
    return session.run(["images"], inputs)[0]


@pytest.mark.parametrize("preset", ["dcgan-ema", "cgan"])
def test_the_onnx_generator_draws_what_the_pytorch_one_draws(tmp_path, preset):
    # dcgan-ema: BatchNorm in evaluation mode, the EMA's weights; cgan: labels as an input.
    assert tiny_train(tmp_path / "run", "--preset", preset, "--max-steps", "2") == 0
    out = tmp_path / "G.onnx"
    assert main(["export", str(tmp_path / "run"), "--format", "onnx", "--out", str(out)]) == 0
    run = load_run(tmp_path / "run")
    rng = np.random.default_rng(0)
    for batch in (1, 7):  # the batch axis is free
        noise = rng.uniform(-1, 1, (batch, run.config.noise_dim)).astype(np.float32)
        labels = (np.arange(batch) % 10).astype(np.int64) if preset == "cgan" else None
        with torch.no_grad():
            args = [torch.from_numpy(noise)] + (
                [torch.from_numpy(labels)] if preset == "cgan" else []
            )
            expected = run.generator(*args).numpy()
        got = run_onnx(out, noise, labels)
        assert got.shape == expected.shape == (batch, 1, 28, 28)
        assert np.abs(got - expected).max() <= 1e-4


def test_export_refuses_a_file_name_it_would_not_write(tmp_path, capsys):
    assert tiny_train(tmp_path / "run", "--max-steps", "1") == 0
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "G.onx")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"ganforge: error: {tmp_path / 'G.onx'} must end in .onnx"
    )
    assert main(["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "G.onnx")]) == 2
    assert "no such run folder or checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "G.onnx").exists()


def test_export_from_python_returns_the_file(tmp_path):
    assert tiny_train(tmp_path / "run", "--max-steps", "1") == 0
    path = export(tmp_path / "run", tmp_path / "G.onnx")
    assert path == tmp_path / "G.onnx" and path.stat().st_size > 0


def test_the_docs_lines_draw_images_from_the_file_alone(tmp_path, monkeypatch):
    # The manual's snippet for a program without ganforge or PyTorch, run as it is written.
    page = (Path(__file__).parents[1] / "docs" / "tutorials" / "python.md").read_text()
    snippet = re.search(r"```python\n(import numpy as np\nimport onnxruntime\n.*?)```", page, re.S)
    assert snippet, "docs/tutorials/python.md lost its onnxruntime example"
    assert tiny_train(tmp_path / "run", "--max-steps", "1") == 0
    monkeypatch.chdir(tmp_path)
    export(tmp_path / "run", "G.onnx")
    exec(compile(snippet.group(1), "python.md", "exec"), {})
    with Image.open(tmp_path / "samples.png") as picture:
        assert picture.size == (16 * 28, 28)
