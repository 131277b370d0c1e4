"""The wheel, as a user gets it: built from the working tree, installed outside the repository.

Every other test imports ganforge from ``src/`` (the editable install), so a module or a data
file that the wheel leaves out (the shipped evaluators, the report's assets) would pass them all
and break only for users. This test builds the sdist and the wheel from it as
``make dist`` does (``python -m build``; without its isolated environment, which would fetch
setuptools from PyPI at every run: the dev extra installs the setuptools that pyproject.toml's
build needs), checks them with ``twine check``, installs the wheel into a fresh virtual
environment in a temporary folder and runs the ``ganforge`` command there: ``--version``, a
20-step ``train`` and ``eval``.

Installing torch and the other dependencies into that environment would cost minutes and
gigabytes per run, so the fresh environment borrows them: a ``.pth`` file names the
site-packages of the environment running the tests. A plain path in a ``.pth`` is appended to
``sys.path`` without reading that folder's own ``.pth`` files, so the editable install's hook,
which would import ganforge from ``src/``, stays inactive, and ganforge itself comes from the wheel
(checked below through ``ganforge.__file__``).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

from conftest import TINY_FLAGS

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "ganforge"

#: Package data the code finds through importlib.resources: without it eval and report fail.
DATA_FOLDERS = ("eval/evaluators", "report/assets")


def source_version() -> str:
    """The version as written in its one place, ``src/ganforge/version.py`` (not imported)."""
    tree = ast.parse((PACKAGE / "version.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["__version__"]:
            return ast.literal_eval(node.value)
    raise AssertionError("src/ganforge/version.py sets no __version__")


def run(*command: str | Path, cwd: Path, env: dict[str, str]) -> str:
    """Run ``command``; its stdout, or a failure that shows both of its streams."""
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return result.stdout


def test_the_wheel_installs_and_trains_and_evaluates_outside_the_repository(tmp_path):
    """Build, check, install into a fresh venv, then ``--version``, ``train`` and ``eval``."""
    version = source_version()
    work = tmp_path / "work"  # the commands' cwd: nothing of the repository is importable from it
    work.mkdir()
    assert not work.is_relative_to(REPO)
    # The test's environment (the tiny MNIST, the private cache), minus what could let the
    # repository or user packages in behind the wheel's back.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"

    # Build: the sdist, then the wheel from the unpacked sdist, so the sdist must be complete.
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, REPO, cwd=work, env=env)
    wheel = dist / f"ganforge-{version}-py3-none-any.whl"
    sdist = dist / f"ganforge-{version}.tar.gz"
    assert sorted(dist.iterdir()) == sorted([wheel, sdist])
    checked = run(
        sys.executable, "-m", "twine", "check", "--strict", wheel, sdist, cwd=work, env=env
    )
    assert checked.count("PASSED") == 2, checked

    # Every module and every data file of the package is in the wheel, and nothing else of ours.
    in_wheel = {n for n in zipfile.ZipFile(wheel).namelist() if not n.endswith("/")}
    shipped = {
        f"ganforge/{path.relative_to(PACKAGE).as_posix()}"
        for path in PACKAGE.rglob("*.py")
        if "__pycache__" not in path.parts
    }
    for folder in DATA_FOLDERS:
        files = [p for p in (PACKAGE / folder).iterdir() if p.is_file()]
        assert files, f"src/ganforge/{folder} is empty"
        shipped |= {f"ganforge/{folder}/{p.name}" for p in files}
    assert {n for n in in_wheel if n.startswith("ganforge/")} == shipped
    assert {n.split("/")[0] for n in in_wheel} == {"ganforge", f"ganforge-{version}.dist-info"}
    with tarfile.open(sdist) as archive:
        in_sdist = set(archive.getnames())
    assert {f"ganforge-{version}/src/{name}" for name in shipped} <= in_sdist

    # A fresh environment of the same base interpreter, no pip of its own (the running one's pip
    # installs into it; creating one with pip costs ~10 s), and only the wheel's ganforge.
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work, env=env)
    python, ganforge = venv / "bin" / "python", venv / "bin" / "ganforge"
    install = ["-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel]
    run(sys.executable, *install, "--quiet", "--disable-pip-version-check", cwd=work, env=env)
    # Only now the dependencies: with them visible, pip would have seen the editable ganforge
    # of the test environment as already installed.
    probe = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site_packages = Path(run(python, "-c", probe, cwd=work, env=env).strip())
    assert site_packages.is_relative_to(venv)
    ours = sysconfig.get_paths()
    (site_packages / "ganforge-test-deps.pth").write_text(
        "".join(f"{path}\n" for path in dict.fromkeys([ours["purelib"], ours["platlib"]]))
    )
    probe = "import ganforge, torch; print(ganforge.__file__)"
    imported = Path(run(python, "-c", probe, cwd=work, env=env).strip())
    assert imported == site_packages / "ganforge" / "__init__.py"

    assert run(ganforge, "--version", cwd=work, env=env).strip() == f"ganforge {version}"

    out = work / "run"
    train = ["train", "--out", out, *TINY_FLAGS, "--max-steps", "20", "--sample-every", "10"]
    run(ganforge, *train, cwd=work, env=env)
    assert (out / "report.html").is_file()
    # eval finds the shipped evaluator inside the installed package; FID needs it.
    scores = run(ganforge, "eval", out, "--num", "64", "--prdc-num", "64", cwd=work, env=env)
    assert "evaluator: mnist" in scores and "FID" in scores, scores
    # The report, rebuilt by eval, inlines the assets that the wheel carries.
    css = (PACKAGE / "report" / "assets" / "report.css").read_text().strip()
    assert css.splitlines()[0] in (out / "report.html").read_text()
