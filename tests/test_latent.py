"""Latent-space tools: interpolation (linear and spherical), truncation, and animated GIFs."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image
from torch import nn

from conftest import tiny_train
from ganforge.cli import main
from ganforge.errors import GanforgeError
from ganforge.nets import build_generator
from ganforge.sampling import generate, generate_from, interpolate


def test_linear_interpolation_is_a_straight_walk():
    start, end = torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[2.0, 4.0], [1.0, -1.0]])
    walks = interpolate(start, end, 5, "linear")
    assert walks.shape == (2, 5, 2)
    torch.testing.assert_close(walks[:, 0], start)
    torch.testing.assert_close(walks[:, -1], end)
    torch.testing.assert_close(walks[0, 2], torch.tensor([1.0, 2.0]))


def test_slerp_follows_the_great_circle_and_interpolates_the_norm():
    # From (1, 0) to (0, 2): a quarter turn. At t = 1/2 the direction is 45° and the norm 1.5.
    walks = interpolate(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]), 3, "slerp")
    torch.testing.assert_close(walks[0, 0], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(walks[0, 2], torch.tensor([0.0, 2.0]))
    half = 1.5 / math.sqrt(2)
    torch.testing.assert_close(walks[0, 1], torch.tensor([half, half]))
    # Equal norms stay equal all the way, where a straight line would cut inside the circle.
    a, b = torch.randn(4, 96), torch.randn(4, 96)
    b = b / b.norm(dim=1, keepdim=True) * a.norm(dim=1, keepdim=True)
    norms = interpolate(a, b, 7, "slerp").norm(dim=2)
    torch.testing.assert_close(norms, a.norm(dim=1, keepdim=True).expand(4, 7))
    assert (interpolate(a, b, 7, "linear").norm(dim=2)[:, 3] < norms[:, 3]).all()


def test_slerp_between_parallel_vectors_is_the_linear_walk():
    start, end = torch.tensor([[1.0, 1.0]]), torch.tensor([[3.0, 3.0]])
    torch.testing.assert_close(
        interpolate(start, end, 4, "slerp"), interpolate(start, end, 4, "linear")
    )
    with pytest.raises(GanforgeError, match="unknown interpolation 'cubic'"):
        interpolate(start, end, 4, "cubic")


class Echo(nn.Module):
    """A 'generator' whose images are its noise, to look at the noise it was given."""

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return noise.reshape(noise.shape[0], 1, 1, -1)


@pytest.mark.parametrize("psi", [1.0, 0.5, 0.1])
def test_truncation_draws_the_noise_from_the_central_part(psi):
    noise = generate(Echo(), 2000, 8, seed=3, truncation=psi)
    assert noise.abs().max() <= psi
    assert noise.abs().max() > 0.95 * psi  # the whole of [-psi, psi], not less
    # The same seed walks the same noise, scaled: samples stay comparable across psi.
    torch.testing.assert_close(noise, generate(Echo(), 2000, 8, seed=3) * psi)


def test_labels_are_checked_before_they_reach_the_generator():
    noise = torch.rand(6, 8) * 2 - 1
    with pytest.raises(GanforgeError, match="the generator is not class-conditional"):
        generate_from(Echo(), noise, torch.zeros(6, dtype=torch.long))
    conditional = build_generator("mlp", 8, "projection", 10).eval()
    labels = torch.tensor([0, 9, 3, 3, 1, 2])
    with torch.no_grad():
        expected = conditional(noise, labels)
    torch.testing.assert_close(generate_from(conditional, noise, labels, batch_size=4), expected)
    for bad, message in (
        (torch.tensor([0, 10, 3, 3, 1, 2]), r"labels must be from 0 to 9; got values from 0 to 10"),
        (torch.tensor([0, -1, 3, 3, 1, 2]), r"labels must be from 0 to 9; got values from -1 to 3"),
        (torch.tensor([0, 1, 2]), r"labels must have shape \(6,\), one per image; got \(3,\)"),
        (labels.float(), r"labels must be integers \(class indices\), got torch.float32"),
    ):
        with pytest.raises(GanforgeError, match=message):
            generate_from(conditional, noise, bad)


def test_interpolate_and_truncated_sampling_from_the_cli(tmp_path, capsys):
    run = tmp_path / "run"
    assert tiny_train(run, "--max-steps", "6") == 0
    # The timeline: the fixed-noise grids of steps 3 and 6 (the final grid repeats step 6).
    with Image.open(run / "samples" / "timeline.gif") as timeline:
        assert timeline.n_frames == 2
    grid, gif = tmp_path / "walk.png", tmp_path / "walk.gif"
    args = ["interpolate", str(run), "--steps", "5", "--rows", "3", "--grid", str(grid)]
    assert main([*args, "--gif", str(gif), "--mode", "linear"]) == 0
    assert Image.open(grid).size == (5 * 30 + 2, 3 * 30 + 2)
    with Image.open(gif) as frames:
        assert frames.n_frames == 5 + 3  # there and back
        assert frames.info["loop"] == 0
    assert main(["interpolate", str(run)]) == 0  # the defaults: into the run folder
    assert (run / "interpolation.png").is_file() and (run / "interpolation.gif").is_file()
    out = tmp_path / "truncated.png"
    assert main(["sample", str(run), "--grid", str(out), "--truncation", "0.5"]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "--grid", str(out), "--truncation", "0"]) == 2
    assert "truncation must be in (0, 1], got 0.0" in capsys.readouterr().err
    assert main(["interpolate", str(run), "--steps", "1"]) == 2
    assert "--steps must be from 2 to 1000, got 1" in capsys.readouterr().err
    assert main(["interpolate", str(run), "--gif", str(tmp_path / "x.png")]) == 2
    assert "x.png must end in .gif" in capsys.readouterr().err
