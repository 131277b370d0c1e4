"""report.html in a real headless browser: it loads without console errors, its script runs,
and what it draws is not blank. CI installs Debian's chromium (see .ci/run), so there the test
never skips; elsewhere it skips when no chromium is installed."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import EVAL_FLAGS, tiny_train

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="no chromium on this machine"
)


def open_in_chromium(page: Path, tmp_path: Path) -> tuple[str, list[str], np.ndarray]:
    """Load a page headless; return (DOM after scripts ran, console lines, screenshot pixels)."""
    assert CHROMIUM is not None, "CI must have chromium (.ci/run installs it)"
    common = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=3000",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1000,1400", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    return dom.stdout, console, pixels


def test_the_harness_sees_console_errors(tmp_path):
    """Without this, a harness that never reports errors would pass everything."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><p>x</p><script>undefinedFunction();</script></body></html>")
    _, console, _ = open_in_chromium(page, tmp_path)
    assert any("undefinedFunction" in line for line in console)


def test_report_loads_cleanly_and_draws(tmp_path):
    run = tmp_path / "run"
    assert tiny_train(run, "--preset", "gan", "--max-steps", "6", *EVAL_FLAGS) == 0
    dom, console, pixels = open_in_chromium(run / "report.html", tmp_path)
    assert console == [], console
    # The timeline script ran: it set the label and the frame's picture.
    assert "final (4 of 4)" in dom
    assert (
        'id="frame" class="grid" alt="samples at one point of training" src="data:image/png' in dom
    )
    # Not blank: a white page with dark sample grids and plots.
    assert pixels.std() > 20 and (pixels < 50).mean() > 0.01
