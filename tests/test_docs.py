"""The documentation site: its generated pages are current, every page is in its table of
contents, the run-folder reference matches what a run writes, it builds (``mkdocs build
--strict``) and draws in a real browser; and ``ganforge --version``.

The examples of the pages are run by tests/test_readme_commands.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import EVAL_FLAGS, tiny_train
from ganforge.checkpoint_file import FORMAT_VERSION
from ganforge.cli import main
from ganforge.config import REFERENCE_COMMAND
from ganforge.version import __version__

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _module(path: Path):
    """A script of docs/ imported as a module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


generate = _module(DOCS / "reference" / "generate.py")
screenshots = _module(DOCS / "screenshots.py")
griffe_roles = _module(DOCS / "griffe_roles.py")


def test_version_prints_the_one_version(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == f"ganforge {__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__), "a semantic version: MAJOR.MINOR.PATCH"


def test_the_changelog_has_an_entry_for_this_version():
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(rf"^## \[{re.escape(__version__)}\] - \d{{4}}-\d\d-\d\d$", changelog, re.M)


# --- the generated reference --------------------------------------------------------------------


def test_the_generated_pages_are_what_the_code_generates():
    for path, text in generate.pages().items():
        name = path.relative_to(ROOT)
        assert path.is_file(), f"{name} is missing: run {REFERENCE_COMMAND}"
        assert path.read_text(encoding="utf-8") == text, (
            f"{name} is out of date: run {REFERENCE_COMMAND}"
        )
    assert not generate.stale_pages(), f"pages of removed commands: run {REFERENCE_COMMAND}"


def test_every_command_and_flag_has_its_row():
    parser_pages = {path.name: text for path, text in generate.pages().items()}
    commands = generate._commands(generate.build_parser())
    assert [c.prog for c, _ in commands][:2] == ["ganforge train", "ganforge sample"]
    for command, _ in commands:
        page = parser_pages[generate.page_name(command)]
        for action in command._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in page or f", {flag}" in page, (command.prog, flag)
        assert f"[`{command.prog}`]({generate.page_name(command)})" in parser_pages["index.md"]


# --- the table of contents ----------------------------------------------------------------------


def _nav_pages(entries) -> list[str]:
    found = []
    for entry in entries:
        if isinstance(entry, str):
            found.append(entry)
        else:
            for value in entry.values():
                found += _nav_pages(value) if isinstance(value, list) else [value]
    return found


def test_every_shipped_evaluator_has_its_row_in_the_evaluation_guide():
    manifest = json.loads((ROOT / "src/ganforge/eval/evaluators/manifest.json").read_text())
    guide = (DOCS / "guides" / "evaluation.md").read_text(encoding="utf-8")
    for dataset, entry in manifest.items():
        row = next((r for r in guide.splitlines() if r.startswith(f"| `{dataset}`")), "")
        assert f"`{dataset}@{entry['sha256'][:12]}`" in row, dataset
        assert f"{100 * entry['test_accuracy']:.2f}%" in row, dataset
        assert f"`{entry['command']}`" in row, dataset


def test_every_page_is_in_the_nav_once_and_every_entry_exists():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    listed = _nav_pages(config["nav"])
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(listed) == pages
    assert len(listed) == len(set(listed))
    assert config["theme"]["font"] is False, "the site builds offline: no web fonts"


# --- the run-folder reference ------------------------------------------------------------------


def _first_column(markdown: str, heading: str) -> set[str]:
    """The code spans of the first column of the first table under ``## heading``."""
    section = markdown.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([^`]+)`", row.split(" | ")[0])}


def test_the_run_folder_reference_matches_what_a_run_writes(tmp_path):
    """Every file a run writes and every key of its checkpoints is on the page, and the page
    names this version and this checkpoint format."""
    run = tmp_path / "run"
    flags = ("--preset", "dcgan", "--ema", "0.99", "--augment", "ada", "--max-steps", "4")
    assert tiny_train(run, *flags, *EVAL_FLAGS, "--keep-checkpoints", "5") == 0
    page = (DOCS / "reference" / "run-folder.md").read_text(encoding="utf-8")
    assert f"**ganforge {__version__}**" in page
    assert f"**checkpoint format {FORMAT_VERSION}**" in page

    documented = _first_column(page, "The files")
    for path in (p for p in run.rglob("*") if p.is_file()):
        name = path.relative_to(run).as_posix()
        generic = re.sub(r"step_\d{7}", "step_NNNNNNN", name)
        top = name.split("/")[0] + "/"
        assert generic in documented or top in documented, f"{name} is not on the page"

    keys = _first_column(page, "Checkpoints")
    step = torch.load(sorted(run.glob("checkpoints/step_*.pt"))[-1], weights_only=True)
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    written = set(step) | set(best)
    kinds = {"generator_standing"}  # --standing-stats: dcgan's, replaced here by the EMA
    assert written <= keys, f"undocumented keys: {written - keys}"
    assert keys - written <= kinds, f"documented but not written: {keys - written - kinds}"
    assert step["format_version"] == FORMAT_VERSION and step["ganforge_version"] == __version__


# --- the docstring filter ----------------------------------------------------------------------


def test_sphinx_roles_become_code_spans():
    text = "A :class:`~ganforge.config.TrainConfig`, :func:`train` and :py:mod:`ganforge.nets`."
    assert griffe_roles.without_roles(text) == "A `TrainConfig`, `train` and `ganforge.nets`."


# --- the built site, in a browser -------------------------------------------------------------


CHROMIUM = screenshots.find_chromium()


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")
def test_the_site_builds_strictly_and_draws(tmp_path):
    """``mkdocs build --strict`` (a broken link, anchor or nav entry fails it), then the
    front page and the ``train`` reference in headless Chromium: not blank, with text and the
    front page's pictures."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    site = tmp_path / "site"
    screenshots.build_site(site)
    front = (site / "index.html").read_text(encoding="utf-8")
    assert "fonts.googleapis.com" not in front, "the site must build and load offline"
    train = (site / "reference" / "commands" / "train" / "index.html").read_text()
    assert "--preset" in train and "--max-steps" in train
    for picture in screenshots.take_screenshots(site, tmp_path / "shots", CHROMIUM):
        with Image.open(picture) as image:
            assert image.size == (1280, 900)
            pixels = np.asarray(image.convert("L"), dtype=np.float64)
        assert pixels.std() > 20 and (pixels < 100).mean() > 0.01, f"{picture.name} is blank"


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")
def test_the_report_screenshot_of_the_docs_is_taken_by_code(tmp_path):
    """The report pictures on the site come from ``docs/screenshots.py --report``: here on a
    tiny run, not blank."""
    run = tmp_path / "run"
    assert tiny_train(run, "--preset", "dcgan", "--max-steps", "2", *EVAL_FLAGS) == 0
    picture = screenshots.report_screenshot(run, tmp_path / "report.png", CHROMIUM)
    with Image.open(picture) as image:
        assert image.size == (1100, 1400)
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert pixels.std() > 20, "the report's picture is blank"
