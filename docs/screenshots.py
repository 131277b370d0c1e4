"""Screenshots in headless Chromium: of the built documentation site (its front page and the
``ganforge train`` reference, as ``docs/assets/site-front.png`` and
``docs/assets/site-train-reference.png``), and of a run's ``report.html`` for the pages that
show one.

``python docs/screenshots.py`` builds the site (``mkdocs build --strict``) into a temporary
folder and takes both; ``python docs/screenshots.py --report RUN PICTURE`` takes a run's
report. tests/test_docs.py runs the same functions into a temporary folder and checks that the
pictures are not blank.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).resolve().parent / "assets"
#: The pages, by their file in the built site, and the picture of each.
PAGES = {
    "index.html": "site-front.png",
    "reference/commands/train/index.html": "site-train-reference.png",
}
WINDOW = "1280,900"


def find_chromium() -> str | None:
    """Debian's ``chromium`` (or another Chromium or Chrome on the PATH), or None."""
    names = ("chromium", "chromium-browser", "google-chrome")
    return next((path for path in map(shutil.which, names) if path), None)


def build_site(site: Path) -> None:
    """``mkdocs build --strict`` of this repository into ``site``."""
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=ROOT,
        check=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def screenshot(
    page: Path, picture: Path, chromium: str, profile: Path, window: str = WINDOW
) -> None:
    """A ``window``-sized PNG of ``page`` (an HTML file) as headless Chromium draws it."""
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--virtual-time-budget=3000",
            f"--user-data-dir={profile}",
            f"--screenshot={picture}",
            f"--window-size={window}",
            page.as_uri(),
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )


def take_screenshots(site: Path, out: Path, chromium: str) -> list[Path]:
    """The pictures of :data:`PAGES` of the built ``site``, written into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    pictures = []
    with tempfile.TemporaryDirectory(prefix="ganforge-chromium-") as profile:
        for page, name in PAGES.items():
            screenshot(site / page, out / name, chromium, Path(profile))
            pictures.append(out / name)
    return pictures


#: A report's picture: the top of the page, its scores, grids and curves.
REPORT_WINDOW = "1100,1400"


def report_screenshot(run: Path, picture: Path, chromium: str) -> Path:
    """The picture of ``run``'s ``report.html`` (a run folder), written to ``picture``."""
    picture.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ganforge-chromium-") as profile:
        screenshot(run / "report.html", picture, chromium, Path(profile), REPORT_WINDOW)
    return picture


if __name__ == "__main__":
    chromium = find_chromium()
    if chromium is None:
        sys.exit("no chromium on this machine (Debian: apt-get install chromium)")
    if sys.argv[1:2] == ["--report"]:
        run, picture = map(Path, sys.argv[2:4])
        print(f"wrote {report_screenshot(run, picture, chromium)}")
        sys.exit()
    with tempfile.TemporaryDirectory(prefix="ganforge-site-") as folder:
        build_site(Path(folder))
        for picture in take_screenshots(Path(folder), ASSETS, chromium):
            print(f"wrote {picture}")
