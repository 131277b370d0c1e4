"""The example notebooks run from top to bottom, as a student runs them, and show their figures.

Each notebook runs in a fresh kernel of this interpreter, in ``tmp_path`` (where its run
folders land), on the tiny synthetic MNIST of ``conftest.py``, with its sizes made tiny by the
``GANFORGE_NOTEBOOK_*`` variables its setup cell reads. The outputs stay in memory: the stored
notebooks carry none, so that their diffs show only what a person changed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = ["assignment.ipynb", "quickstart.ipynb"]

#: A few iterations per GAN (the tiny MNIST has 4 batches of 128) and the fewest samples an
#: evaluation scores: each notebook then runs in seconds rather than minutes.
TINY_SIZES = {"GANFORGE_NOTEBOOK_STEPS": "3", "GANFORGE_NOTEBOOK_EVAL_NUM": "100"}

#: Generous for cells that take seconds here, so that a busy machine does not fail the test;
#: a hung kernel still fails it.
CELL_TIMEOUT_S = 300

#: A top-level statement that draws: ``show_images(...)``, ``figures = run_a_gan(...)``,
#: ``display(Image(...))``, ``plt.show()``... (indented lines are function bodies, which draw
#: only when called).
DRAWS = re.compile(
    r"^(?:\w+ = )?(?:show_images|show|plot_losses|run_a_gan|display|plt\.show)\(", re.MULTILINE
)


def execute(name: str, cwd: Path) -> nbformat.NotebookNode:
    """Run the stored notebook ``name`` in ``cwd``; raises nbclient's ``CellExecutionError``,
    which quotes the failing cell and its traceback, on the first cell that raises."""
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    # Its first cell checks that "python3" launched this interpreter, not a kernel found
    # elsewhere, which would test another installation of ganforge.
    check = f"import sys\nassert sys.executable == {sys.executable!r}, sys.executable"
    notebook.cells.insert(0, nbformat.v4.new_code_cell(check))
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    del notebook.cells[0]
    return notebook


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_and_shows_its_figures(name, tmp_path, monkeypatch):
    for variable, value in TINY_SIZES.items():
        monkeypatch.setenv(variable, value)
    # Kernel files, IPython profiles and kernel specs of this test only: a person's startup
    # scripts or own "python3" kernel spec must not change what runs.
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    work = tmp_path / "work"
    work.mkdir()

    notebook = execute(name, work)

    drawing = [
        cell for cell in notebook.cells if cell.cell_type == "code" and DRAWS.search(cell.source)
    ]
    blank = [
        cell.source.splitlines()[0]
        for cell in drawing
        if not any("image/png" in output.get("data", {}) for output in cell.outputs)
    ]
    assert drawing and not blank, f"{name}: cells that draw but show no image: {blank}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_are_stored_without_outputs(name):
    """Outputs are a run's, not the source's: clear them before committing (in Jupyter,
    "Clear All Outputs"; with nbconvert, ``jupyter nbconvert --clear-output --inplace FILE``)."""
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    nbformat.validate(notebook)
    kept = [
        i
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not kept, f"code cells {kept} of {name} keep outputs or execution counts"
