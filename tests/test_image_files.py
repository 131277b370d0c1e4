"""Image grids against torchvision's ``make_grid``/``save_image``, their independent reference."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision.utils
from PIL import Image

from ganforge.image_files import image_grid, save_grid


@pytest.mark.parametrize(
    ("count", "channels", "nrow"), [(64, 1, 8), (10, 1, 4), (7, 3, 3), (2, 3, 5), (1, 1, 8)]
)
def test_image_grid_matches_torchvision_make_grid(count, channels, nrow):
    """Every pixel as make_grid's, with partial last rows, colour, one image, and values
    outside [-1, 1] (clamped)."""
    images = torch.randn(count, channels, 6, 5, generator=torch.Generator().manual_seed(count))
    reference = torchvision.utils.make_grid(
        images, nrow=nrow, padding=2, normalize=True, value_range=(-1, 1), pad_value=1
    )
    grid = image_grid(images, nrow)
    assert grid.shape == reference.shape
    assert torch.equal(grid, reference)


def test_save_grid_writes_torchvision_save_image_pixels(tmp_path):
    images = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    save_grid(images, tmp_path / "grid.png")
    buffer = io.BytesIO()
    torchvision.utils.save_image(
        images, buffer, format="png", nrow=4, normalize=True, value_range=(-1, 1), pad_value=1.0
    )
    with Image.open(tmp_path / "grid.png") as ours, Image.open(buffer) as reference:
        assert ours.mode == reference.mode == "RGB"
        assert np.array_equal(np.asarray(ours), np.asarray(reference))


def test_commands_that_draw_do_not_import_torchvision():
    """torchvision's import costs a process about 1.4 s on a 2-core CPU, and grids, reports,
    ``compare`` and ``sample`` do not need it. (torchmetrics still imports it at a run's first
    evaluation: Lightning-AI/torchmetrics#3457; data sets that resize import it themselves.)"""
    code = (
        "import sys, ganforge.cli, ganforge.training, ganforge.image_files, ganforge.report; "
        "print('torchvision' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
