"""``ganforge project``: the latents of real images; walks between them; the memorisation check
by inversion of ``ganforge eval --inversion``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from conftest import tiny_train
from ganforge.cli import main
from ganforge.data import to_uint8
from ganforge.eval.projection import load_projector
from ganforge.sampling import generate


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_mnist_root) -> Path:
    """A 6-step mlp run on the tiny MNIST."""
    folder = tmp_path_factory.mktemp("projection") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GANFORGE_DATA", str(tiny_mnist_root))
        assert tiny_train(folder, "--max-steps", "6") == 0
    return folder


def save_png(image: torch.Tensor, path: Path) -> Path:
    """An image ``(1, H, W)`` in ``[-1, 1]`` as a grayscale PNG."""
    Image.fromarray(to_uint8(image)[0].numpy()).save(path)
    return path


def test_the_generators_own_images_are_found_and_noise_is_not(run):
    projector = load_projector(run)
    assert projector.space.startswith("pixels + evaluator mnist@")
    drawn = generate(projector.generator, 3, 96, seed=4)
    noise = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    own = projector.project(drawn, steps=60, starts=2)
    other = projector.project(noise, steps=60, starts=2)
    assert own.latents.shape == (3, 96) and own.images.shape == (3, 1, 28, 28)
    assert own.labels is None and own.latents.abs().max() <= 1  # uniform noise stays inside
    assert own.distance.max() < 0.01 < other.distance.min()
    assert torch.allclose(own.distance, own.pixel + own.feature)


def test_project_then_interpolate_walks_between_two_real_images(run, tmp_path, capsys):
    drawn = generate(load_projector(run).generator, 2, 96, seed=4)
    files = [save_png(image, tmp_path / f"{i}.png") for i, image in enumerate(drawn)]
    out = tmp_path / "projected"
    command = ["project", str(run), *map(str, files), "--out", str(out), "--steps", "40"]
    assert main([*command, "--starts", "2", "--quiet"]) == 0
    assert "--latents" in capsys.readouterr().out
    with np.load(out / "latents.npz") as latents:
        assert latents["z"].shape == (2, 96) and list(latents["files"]) == list(map(str, files))
        assert "labels" not in latents
    distances = json.loads((out / "distances.json").read_text())
    assert [image["file"] for image in distances["images"]] == list(map(str, files))
    assert distances["mean_distance"] < 0.05 and distances["steps"] == 40
    with Image.open(out / "reconstructions.png") as grid:
        assert grid.size == (4 * 30 + 2, 30 + 2)  # two pairs side by side
    grid = tmp_path / "walk.png"
    walk = ["interpolate", str(run), "--latents", str(out / "latents.npz"), "--from", "0"]
    assert main([*walk, "--to", "1", "--steps", "5", "--grid", str(grid)]) == 0
    assert grid.is_file() and (run / "interpolation.gif").is_file()
    # The Python API: the same walk, its ends the projections.
    loaded = ganforge.load_run(run)
    images = loaded.walk(out / "latents.npz", 0, 1, steps=5)
    assert images.shape == (5, 1, 28, 28)
    with np.load(out / "latents.npz") as latents:
        ends = loaded.generator(torch.from_numpy(latents["z"]))
    assert torch.allclose(images[[0, -1]], ends, atol=1e-5)
    found = ganforge.project(run, files, steps=40, starts=2)
    assert (found.distance < 0.05).all()


def test_a_conditional_run_finds_a_latent_and_a_label(tmp_path):
    run = tmp_path / "conditional"
    assert tiny_train(run, "--conditioning", "projection", "--max-steps", "2") == 0
    projector = load_projector(run)
    labels = torch.tensor([3, 8])
    drawn = generate(projector.generator, 2, 96, seed=2, labels=labels)
    found = projector.project(drawn, steps=60, starts=2)
    # Every class is tried; an untrained projection G (fed z ⊙ e(y)) may reach an image from
    # more than one class, so the test asks for the image, and the label it was drawn with.
    assert found.distance.max() < 0.01
    with torch.no_grad():
        redrawn = projector.generator(found.latents, found.labels)
    assert torch.allclose(redrawn, found.images, atol=1e-5)


def test_a_vae_starts_from_its_encoder(tmp_path):
    run = tmp_path / "vae"
    assert tiny_train(run, "--preset", "vae", "--max-steps", "2") == 0
    projector = load_projector(run)
    assert projector.encoder is not None
    images = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        mean, _ = projector.encoder(images)
    # One step of a tiny rate stays at the start, and the encoder's mean is one of the starts.
    found = projector.project(images, steps=1, starts=1)
    assert torch.allclose(found.latents, mean, atol=0.06)


def test_bad_images_are_one_line(run, tmp_path, capsys):
    (tmp_path / "bad.png").write_text("not a picture")
    out = str(tmp_path / "out")
    assert main(["project", str(run), str(tmp_path / "bad.png"), "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"ganforge: error: cannot read {tmp_path / 'bad.png'} as an image (UnidentifiedImageError)"
    ]
    assert main(["project", str(run), str(tmp_path / "none.png"), "--out", out]) == 2
    assert "no such image file" in capsys.readouterr().err


def test_eval_inversion_reports_train_and_held_out_distances(run, capsys):
    args = ["eval", str(run), "--num", "48", "--prdc-num", "40", "--inversion", "3", "--json"]
    assert main(args) == 0
    inverted = json.loads(capsys.readouterr().out)["inversion"]
    assert inverted["num"] == 3 and inverted["space"].startswith("pixels + evaluator")
    assert inverted["ratio"] == pytest.approx(
        inverted["train_distance"] / inverted["test_distance"], rel=1e-3
    )
    assert (run / "inversion.png").is_file()
    assert "Is it copying? Inversion" in (run / "report.html").read_text()


def test_a_folder_run_projects_on_pixels_and_has_no_held_out_images(tmp_path, image_folder, capsys):
    run = tmp_path / "folder"
    assert (
        tiny_train(
            run, "--dataset", f"folder:{image_folder}", "--batch-size", "4", "--max-steps", "1"
        )
        == 0
    )
    assert (
        load_projector(run).space
        == f"pixels only: no evaluator ships for dataset folder:{image_folder}"
    )
    capsys.readouterr()
    assert main(["eval", str(run), "--num", "12", "--inversion", "2"]) == 2
    assert "has no held-out split" in capsys.readouterr().err
