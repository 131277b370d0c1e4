"""Every shell and Python code block of README.md and of the documentation site (``docs/``),
run on tiny data.

Why: the README and the site are what users copy from. A flag renamed in the CLI, a subcommand
dropped, a default folder moved or a Python name changed breaks their examples without breaking
any other test; this file runs them, so such a change fails here, and the manual cannot drift.

What is read. README.md and every ``docs/**/*.md`` page, with the files a page includes
(``--8<-- "FILE"``, as the site's snippets extension does: ARCHITECTURE.md, CONTRIBUTING.md,
the ``benchmarks/*.md`` tables, …) read in their place. In them, each fenced code block is:

- a **shell block** (``sh``, ``bash``, ``shell``, ``console``, ``zsh`` or unmarked): each of its
  lines (``\\`` continuations joined, ``$ `` prompts and trailing ``# comments`` dropped) must
  be a ``ganforge …``, ``python -m ganforge …`` or ``torchrun … -m ganforge …`` command this
  file knows how to run (:data:`SHRINK`); each is a test case, named by its page and text. A
  line it cannot run (``make``, ``pip``, a loop, a pipe, an unknown subcommand) is a failing
  case, never a silent skip;
- a **Python block** (``python``, ``py``): run, after the page's shell commands, in one
  namespace per page, so that a page's blocks build on each other as in a notebook; each is a
  test case;
- a **file block**: any block whose first line is a comment naming a file (``# my_nets.py``):
  what the reader is asked to save. It is written into the page's working folder before
  anything runs, and the commands that use it test it;
- anything else (``text`` output, ``toml``, ``json``): not run.

A block that cannot run in a test (a long training with no shrink, GPUs, other machines, the
network, a ``make`` target) is preceded by a comment ``<!-- not-run: REASON -->`` (invisible on
GitHub and on the site). It is reported as skipped with its reason, and fails without one.

How a command is shrunk. Each command is run as written, with the flags of :data:`SHRINK` for
its subcommand appended; argparse keeps a flag's last value, so they override the page's
(``--max-steps 500`` becomes 2, ``--num 10000`` becomes 64). A new run trains 2 iterations of
batch 32 on the CPU (without standing BatchNorm statistics) and still evaluates itself at the
end (on 64 samples), as users' runs do by default; ``--resume`` is given 4 iterations, so the
resumed run trains on past the first 2. ``torchrun`` runs ``--standalone`` with 2 CPU processes
(``python -m torch.distributed.run``). Python blocks get the same shrink as keyword arguments
(:data:`PYTHON_SHRINK`): while they run, ``ganforge.train`` and the other entry points of
:data:`PYTHON_SHRINK` are wrapped so that the block's own arguments are overridden by those.

Where it runs. Each page runs in a temporary working folder of its own, as a reader following
that page alone would: its shell commands one after another in dependency order (:data:`STAGES`:
new runs, then resumes, then the commands that read runs; page order within a stage), then its
Python blocks in page order, with ``GANFORGE_DATA`` at a tiny data root (the synthetic MNIST of
``conftest.py`` and a tiny ``emoji`` folder), a private cache and ``HOME`` pointing to a
temporary folder. The files the pages assume exist are written first (:data:`INPUTS`), and
their placeholder paths are replaced by what the earlier commands made (:data:`SUBSTITUTIONS`);
a test checks that every entry of these tables is still used, so none goes stale.

Everything goes through the public entry points: ``ganforge ARGS`` through the console script's
own function (``ganforge.cli.main``, in the page's folder and environment), ``torchrun`` commands
in processes of their own. The module fixture runs all pages once (a few minutes on 2 cores);
each case then checks its command's exit status and the files it should have written.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import write_mnist_root

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

#: The uniform shrink of a training, as settings: 2 iterations of batch 32 on the CPU, small
#: grids, and evaluation left on (users get it by default) with small sample counts. Without
#: standing BatchNorm statistics (``dcgan``'s), re-estimated before each grid, evaluation and
#: checkpoint: a shrunk ``dcgan`` run took 19 s with them and 4 s without (2 shared cores), with
#: nothing to estimate after 2 iterations; tests/test_standing_statistics.py tests them.
TRAIN_SHRINK: dict[str, object] = {
    "max_steps": 2,
    "batch_size": 32,
    "grid_size": 16,
    "sample_every": 1,
    "eval_num": 40,
    "final_eval_num": 64,
    "device": "cpu",
    "standing_stats": False,
}


def _flags_of(setting: str, value: object) -> tuple[str, ...]:
    """``max_steps=2`` → ``--max-steps 2``; a switch: ``--name`` or ``--no-name``."""
    flag = setting.replace("_", "-")
    if isinstance(value, bool):
        return (f"--{flag}",) if value else (f"--no-{flag}",)
    return (f"--{flag}", str(value))


#: The same as flags, with no progress bar: appended to every ``ganforge train`` and
#: ``torchrun … -m ganforge train`` of the pages; to try a training in seconds yourself, append
#: the same flags.
SHRINK_TRAIN: tuple[str, ...] = (
    *(token for key, value in TRAIN_SHRINK.items() for token in _flags_of(key, value)),
    "--quiet",
)

#: The flags appended to each command, by its subcommand. argparse keeps a flag's last value,
#: so these override the page's own (``--max-steps 500`` → 2, ``--num 10000`` → 64).
SHRINK: dict[str, tuple[str, ...]] = {
    "train": SHRINK_TRAIN,
    # A resume may only change how long and how watched a run is (the other flags above equal
    # the run's own values, which --resume accepts); twice a new run's steps leaves it 2 to train.
    "train --resume": (*SHRINK_TRAIN, "--max-steps", "4"),
    "sample": ("--num", "64"),
    "interpolate": (),  # 8 walks of 10 points by default: already small
    "eval": ("--num", "64"),
    "export": (),  # one small file
    "compare": ("--num", "64"),  # the same 64 as --final-eval-num: no run is evaluated again
    "evaluator train": ("--epochs", "1"),
    "report": (),
    "presets": (),
    "data fetch": (),
    "--version": (),
}

#: The keyword arguments that override a Python block's own, by entry point (module, name).
PYTHON_SHRINK: dict[tuple[str, str], dict[str, object]] = {
    ("ganforge.api", "train"): TRAIN_SHRINK,
    ("ganforge.api", "resume"): {**TRAIN_SHRINK, "max_steps": 4},
    ("ganforge.api", "evaluate"): {"num": 64},
    ("ganforge.assignment", "run_a_gan"): {"max_iterations": 2},
}

#: The order commands run in (stable: page order within a stage): runs must exist before
#: they are resumed, and be finished before they are sampled, scored and compared.
STAGES: dict[str, int] = {
    "--version": 0,
    "presets": 0,
    "data fetch": 0,
    "train": 1,
    "train --resume": 2,
    "sample": 3,
    "report": 3,
    "interpolate": 4,
    "eval": 5,
    "export": 5,
    "compare": 6,
    "evaluator train": 7,
}

#: Languages of the code blocks whose lines are shell commands, and of Python blocks.
SHELL_BLOCKS = {"", "sh", "bash", "shell", "console", "zsh"}
PYTHON_BLOCKS = {"python", "py"}
#: Tokens that make a line more than one command: this file runs single commands only.
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1"}


# ---------------------------------------------------------------------------------------------
# Reading the pages.

#: ``--8<-- "FILE"``, or ``--8<-- "FILE:START:END"`` for lines START to END (from 1, inclusive).
SNIPPET = re.compile(r'^\s*--8<--\s+"([^":]+)(?::(\d+):(\d+))?"\s*$')
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
NOT_RUN = re.compile(r"^\s*<!--\s*not-run:(.*?)-->\s*$")
FILE_NAME = re.compile(r"^#\s*([\w-]+\.(?:py|toml|yaml|yml|json))\s*$")


def read_page(path: Path) -> str:
    """A page's text with every ``--8<-- "FILE"`` line replaced by that file of the repository
    (itself read the same way; ``FILE:START:END``: those lines of it), as the site's snippets
    extension builds the page."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        included = SNIPPET.match(line)
        if not included:
            lines.append(line)
            continue
        text = read_page(ROOT / included.group(1))
        if included.group(2):
            start, end = int(included.group(2)), int(included.group(3))
            text = "\n".join(text.splitlines()[start - 1 : end])
        lines.append(text)
    return "\n".join(lines)


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str  # the page's path from the repository root
    line: int  # where its fence opens, in the page as read (includes in place)
    language: str
    body: tuple[tuple[int, str], ...]  # (line number, text) of each line, fence indent removed
    not_run: str | None  # the reason of the not-run comment before it; None: no comment

    @property
    def file(self) -> str | None:
        """The file a file block asks the reader to save (its first line names it), else None."""
        first = self.body[0][1].strip() if self.body else ""
        named = FILE_NAME.match(first)
        return named.group(1) if named else None

    @property
    def code(self) -> str:
        return "\n".join(text for _, text in self.body) + "\n"

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def code_blocks(markdown: str, page: str) -> list[Block]:
    """The fenced code blocks of ``markdown``, in order, each with its not-run reason."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    number = 0
    while number < len(lines):
        opening = FENCE.match(lines[number])
        number += 1
        if not opening:
            continue
        indent, fence, language = opening.group(1), opening.group(2), opening.group(3).lower()
        before = [line for line in lines[: number - 1] if line.strip()][-1:]
        marker = NOT_RUN.match(before[0]) if before else None
        start, body = number, []
        while number < len(lines):
            line = lines[number]
            number += 1
            if line.strip().startswith(fence) and not line.strip()[len(fence) :].strip("`~"):
                break
            body.append((number, line.removeprefix(indent)))
        reason = marker.group(1).strip() if marker else None
        blocks.append(Block(page, start, language, tuple(body), reason))
    return blocks


@dataclass(frozen=True)
class Command:
    """One command of a shell block."""

    page: str
    text: str  # its tokens joined by single spaces: the key of the tables below
    tokens: tuple[str, ...]
    line: int  # where it starts in the page
    kind: str | None  # the SHRINK key; None: this file does not know how to run it

    @property
    def program(self) -> str:
        return "torchrun" if self.tokens[0] == "torchrun" else "ganforge"

    @property
    def args(self) -> tuple[str, ...]:
        """The arguments after ``ganforge`` (also under ``python -m`` and ``torchrun … -m``)."""
        return self.tokens[_ganforge_end(self.tokens) :]

    @property
    def name(self) -> str:
        return f"{self.page}: {self.text}"


def _ganforge_end(tokens: tuple[str, ...]) -> int:
    """The index just after ``ganforge`` / ``-m ganforge`` in ``tokens``; 0 if none."""
    if tokens[:1] == ("ganforge",):
        return 1
    for index in range(len(tokens) - 1):
        if tokens[index : index + 2] == ("-m", "ganforge"):
            return index + 2
    return 0


def _kind(tokens: tuple[str, ...]) -> str | None:
    """The :data:`SHRINK` key of a command, or None when this file cannot run it."""
    if any(token in SHELL_OPERATORS or token.endswith(";") for token in tokens):
        return None
    first = tokens[0]
    runs_ganforge = (
        first == "ganforge"
        or (first in ("python", "python3") and tokens[1:3] == ("-m", "ganforge"))
        or (first == "torchrun" and _ganforge_end(tokens) > 0)
    )
    args = tokens[_ganforge_end(tokens) :] if runs_ganforge else ()
    if not args:
        return None
    kind = " ".join(args[:2]) if args[0] in ("evaluator", "data") else args[0]
    if kind == "train" and any(a == "--resume" or a.startswith("--resume=") for a in args):
        kind = "train --resume"
    if first == "torchrun" and kind != "train":
        return None  # only training is distributed
    return kind if kind in SHRINK else None


def shell_commands(block: Block) -> list[Command]:
    """The commands of a shell block, continuations joined, prompts and comments dropped."""
    commands: list[Command] = []
    pending, start = "", 0
    for number, raw in block.body:
        line = raw.strip()
        if not pending:
            start = number
            line = line.removeprefix("$ ")
        pending = f"{pending} {line}".strip()
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        tokens = tuple(shlex.split(pending, comments=True))
        pending = ""
        if tokens:
            commands.append(Command(block.page, " ".join(tokens), tokens, start, _kind(tokens)))
    return commands


@dataclass
class Page:
    """What one page asks to run."""

    path: str
    commands: list[Command]  # of its unmarked shell blocks, one per distinct text
    python: list[Block]  # its unmarked Python blocks
    files: list[Block]  # its file blocks
    not_run: list[Block]  # its marked shell and Python blocks


def read_pages() -> list[Page]:
    """README.md and every page of the site, each with its blocks sorted by what they are."""
    pages = []
    for path in [README, *sorted(DOCS.rglob("*.md"))]:
        name = str(path.relative_to(ROOT))
        page = Page(name, [], [], [], [])
        for block in code_blocks(read_page(path), name):
            runnable = block.language in SHELL_BLOCKS | PYTHON_BLOCKS
            if block.file is not None:
                page.files.append(block)
            elif runnable and block.not_run is not None:
                page.not_run.append(block)
            elif block.language in SHELL_BLOCKS:
                known = {command.text for command in page.commands}
                page.commands += [c for c in shell_commands(block) if c.text not in known]
            elif block.language in PYTHON_BLOCKS:
                page.python.append(block)
        pages.append(page)
    return pages


PAGES = read_pages()
COMMANDS = [command for page in PAGES for command in page.commands]
PYTHON = [block for page in PAGES for block in page.python]
NOT_RUN_BLOCKS = [block for page in PAGES for block in page.not_run]


# ---------------------------------------------------------------------------------------------
# The files the pages assume, and what their placeholder paths stand for.


@dataclass
class Workspace:
    """The temporary working folder a page runs in, and what its commands made."""

    cwd: Path
    home: Path
    env: dict[str, str]
    made: dict[str, str] = field(default_factory=dict)  # command text → the run folder it made


@dataclass(frozen=True)
class Substitution:
    """What a placeholder path of a page stands for."""

    kind: str  # "run of": the run folder that command of the page made; "checkpoint of": the
    # newest checkpoint of that run folder
    source: str
    reason: str

    def resolve(self, workspace: Workspace) -> str:
        if self.kind == "run of":
            if self.source not in workspace.made:
                raise LookupError(f"`{self.source}` did not make a run folder")
            return workspace.made[self.source]
        checkpoints = sorted((workspace.cwd / self.source / "checkpoints").glob("step_*.pt"))
        if not checkpoints:
            raise LookupError(f"{self.source} has no checkpoint")
        return str(checkpoints[-1].relative_to(workspace.cwd))


DCGAN_RUN = "ganforge train --preset dcgan"

#: Placeholder paths of the pages' commands (whole arguments), each with what stands in for it.
SUBSTITUTIONS: dict[str, Substitution] = {
    "runs/dcgan-20261127-101500": Substitution(
        "run of", DCGAN_RUN, "that command's default folder, named by its start time"
    ),
    "runs/gan-short/checkpoints/step_0001170.pt": Substitution(
        "checkpoint of", "runs/gan-short", "step 1170 ends 3 full epochs; a shrunk run has fewer"
    ),
}


def _write_photos(root: Path) -> None:
    """40 colour images, PNG and JPEG, in two class sub-folders: more than a batch of 32."""
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (root / label).mkdir(parents=True)
        for index in range(20):
            pixels = rng.integers(0, 255, size=(40, 36, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{index}.{('png', 'jpg')[index % 2]}")


def _write_icons(root: Path) -> None:
    """40 transparent PNG icons (RGBA, a clear border round an opaque square) in one folder."""
    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    for index in range(40):
        pixels = rng.integers(0, 255, size=(32, 32, 4), dtype=np.uint8)
        pixels[..., 3] = 0
        pixels[8:24, 8:24, 3] = 255
        Image.fromarray(pixels, "RGBA").save(root / f"{index}.png")


#: Files the pages' commands expect to exist and do not show, written into every page's
#: working folder before anything runs (``~`` is the temporary HOME), with the reason.
INPUTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "~/photos": (_write_photos, "the example image folder (folder:~/photos)"),
    "~/icons": (_write_icons, "the example folder of transparent icons (folder:~/icons)"),
}


def write_tiny_emoji(root: Path) -> None:
    """``emoji`` as ``ganforge data fetch emoji`` lays it out (``<root>/emoji/twitter/<category>``),
    3 categories of 15 transparent 64×64 PNGs, so that the fetch finds it and training reads it."""
    rng = np.random.default_rng(2)
    folder = root / "emoji" / "twitter"
    for category in ("activities", "animals-and-nature", "smileys-and-emotion"):
        (folder / category).mkdir(parents=True)
        for index in range(15):
            pixels = rng.integers(0, 255, size=(64, 64, 4), dtype=np.uint8)
            pixels[..., 3] = 0
            pixels[12:52, 12:52, 3] = 255
            Image.fromarray(pixels, "RGBA").save(folder / category / f"{index:04x}.png")
    (folder / "LICENSE.txt").write_text("test images\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Running them.


@dataclass
class Outcome:
    """What one command or Python block did."""

    argv: list[str]
    returncode: int | None = None  # None: it did not run to the end
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)  # missing outputs, failed look-ups


def _flag(args: list[str], name: str) -> str | None:
    """The last value of ``--name`` in ``args`` (argparse keeps the last), or None."""
    value = None
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def _arguments(command: Command, workspace: Workspace) -> list[str]:
    """ganforge's arguments: placeholders replaced, ``~`` expanded as the shell would (at the
    start of an argument only: ``folder:~/photos`` reaches ganforge as it is), shrink flags
    appended."""
    args = [
        SUBSTITUTIONS[arg].resolve(workspace) if arg in SUBSTITUTIONS else arg
        for arg in command.args
    ]
    args = [str(workspace.home) + arg[1:] if arg.startswith("~/") else arg for arg in args]
    return [*args, *SHRINK[command.kind or ""]]


def _argv(command: Command, args: list[str]) -> list[str]:
    """The command line: ``ganforge`` as this interpreter's module; ``torchrun`` as
    ``python -m torch.distributed.run --standalone`` with 2 processes, its other options kept."""
    if command.program == "ganforge":
        return [sys.executable, "-m", "ganforge", *args]
    options: list[str] = []
    skip_value = False
    for option in command.tokens[1 : _ganforge_end(command.tokens) - 2]:
        if skip_value:
            skip_value = False
        elif option in ("--nproc_per_node", "--nproc-per-node"):
            skip_value = True
        elif not option.startswith(("--nproc_per_node=", "--nproc-per-node=")):
            options.append(option)
    if "--standalone" not in options:
        options.insert(0, "--standalone")
    launcher = [sys.executable, "-m", "torch.distributed.run", *options, "--nproc_per_node=2"]
    return [*launcher, "-m", "ganforge", *args]


def _run_folder_problems(run: Path, processes: int) -> list[str]:
    """A finished run's folder holds its summary, its report and, when its dataset has an
    evaluator (a ``folder:`` dataset has none: the run says evaluation is off), its scores."""
    from ganforge.data.registry import evaluator_for

    names = ["summary.json", "report.html"]
    if (run / "config.json").is_file():
        dataset = json.loads((run / "config.json").read_text()).get("dataset", "")
        names += ["eval.json"] if evaluator_for(str(dataset)) else []
    problems = [f"{run}: no {name}" for name in names if not (run / name).is_file()]
    if (run / "summary.json").is_file():
        found = json.loads((run / "summary.json").read_text()).get("processes")
        if found != processes:
            problems.append(f"{run}: summary.json says {found} processes, not {processes}")
    return problems


def _output_problems(command: Command, args: list[str], outcome: Outcome, ws: Workspace):
    """What the command should have written or printed and did not."""
    problems: list[str] = []

    def need(path: str | Path | None, what: str) -> None:
        if path is not None and not (ws.cwd / path).exists():
            problems.append(f"no {what} at {path}")

    if command.kind == "train":
        folder = _flag(args, "--out") or ws.made.get(command.text)
        if folder is None:
            problems.append("made no new folder under runs/")
        else:
            processes = 2 if command.program == "torchrun" else 1
            problems += _run_folder_problems(ws.cwd / folder, processes)
    elif command.kind == "train --resume":
        problems += _run_folder_problems(ws.cwd / str(_flag(args, "--resume")), 1)
    elif command.kind == "sample":
        need(_flag(args, "--grid"), "grid")
        out = _flag(args, "--out")
        need(out, "samples file")
        if out and (ws.cwd / out).is_file():
            count = len(np.load(ws.cwd / out)["images"])
            if count != int(_flag(args, "--num") or 64):
                problems.append(f"{out} holds {count} images, not --num")
    elif command.kind == "interpolate":
        run = Path(args[1])
        need(_flag(args, "--grid") or run / "interpolation.png", "interpolation grid")
        need(_flag(args, "--gif") or run / "interpolation.gif", "interpolation GIF")
    elif command.kind == "eval":
        if "--json" in args:
            try:
                json.loads(outcome.stdout)
            except json.JSONDecodeError:
                problems.append("--json printed no JSON object")
        if (ws.cwd / args[1]).is_dir():
            need(Path(args[1]) / "eval.json", "eval.json")
    elif command.kind == "export":
        need(_flag(args, "--out"), "ONNX file")
    elif command.kind == "compare":
        need(_flag(args, "--chart") or "compare.png", "chart")
        if "| run |" not in outcome.stdout:
            problems.append("printed no table")
    elif command.kind == "evaluator train":
        need(_flag(args, "--out"), "evaluator file")
    elif command.kind == "report":
        need(Path(args[1]) / "report.html", "report")
    elif command.kind == "--version" and not outcome.stdout.startswith("ganforge "):
        problems.append("printed no version")
    return problems


@contextlib.contextmanager
def _inside(ws: Workspace) -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """In the workspace's folder and environment, with stdout and stderr captured."""
    stdout, stderr = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update(ws.env)
    os.chdir(ws.cwd)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            yield stdout, stderr
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def _run(command: Command, ws: Workspace) -> Outcome:
    """Run one command in the workspace; note the run folder a new training made."""
    try:
        args = _arguments(command, ws)
    except LookupError as exc:
        return Outcome([], problems=[f"a placeholder cannot be resolved: {exc}"])
    outcome = Outcome(_argv(command, args))
    env = dict(ws.env)
    if command.program == "torchrun":
        env["OMP_NUM_THREADS"] = "1"  # two processes on two cores
    runs = ws.cwd / "runs"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    started = time.perf_counter()
    if command.program == "ganforge":
        returncode, stdout, stderr = _run_in_process(args, ws)
    else:
        try:
            result = subprocess.run(
                outcome.argv, cwd=ws.cwd, env=env, capture_output=True, text=True, timeout=300
            )
        except subprocess.TimeoutExpired as exc:
            outcome.problems.append(f"still running after {exc.timeout} s")
            return outcome
        returncode, stdout, stderr = result.returncode, result.stdout, result.stderr
    outcome.seconds = time.perf_counter() - started
    outcome.returncode, outcome.stdout, outcome.stderr = returncode, stdout, stderr
    if command.kind == "train":
        new = sorted((set(runs.iterdir()) if runs.is_dir() else set()) - before)
        if len(new) == 1:
            ws.made[command.text] = str(new[0].relative_to(ws.cwd))
    if returncode == 0:
        outcome.problems += _output_problems(command, args, outcome, ws)
    return outcome


def _run_in_process(args: list[str], ws: Workspace) -> tuple[int, str, str]:
    """``ganforge ARGS`` through the console script's own function, in the workspace's folder
    and environment: what a subprocess would run, without importing torch again for each of
    the pages' commands (seconds each). Torchrun's commands still get processes of their own.
    """
    from ganforge.cli import main

    with _inside(ws) as (stdout, stderr):
        try:
            returncode = main(args)
        except SystemExit as exc:  # argparse's usage errors, --version
            returncode = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        except Exception:  # a crash: what a subprocess would print before exit status 1
            traceback.print_exc()
            returncode = 1
    return returncode, stdout.getvalue(), stderr.getvalue()


def _shrunk(function: Callable, overrides: dict[str, object]) -> Callable:
    """``function`` called with ``overrides`` in place of the caller's own arguments of those
    names (a keyword it does not name goes into its ``**`` parameter)."""
    signature = inspect.signature(function)
    extra = next((p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD), None)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        for name, value in overrides.items():
            if name in signature.parameters and name != extra:
                bound.arguments[name] = value
            else:
                bound.arguments.setdefault(extra, {})[name] = value
        return function(*bound.args, **bound.kwargs)

    return wrapper


def _run_python(blocks: list[Block], ws: Workspace) -> dict[str, Outcome]:
    """A page's Python blocks, in order, in one namespace, with :data:`PYTHON_SHRINK`."""
    outcomes: dict[str, Outcome] = {}
    namespace: dict[str, object] = {"__name__": "__main__"}
    with pytest.MonkeyPatch.context() as patch:
        for (module, name), overrides in PYTHON_SHRINK.items():
            owner = importlib.import_module(module)
            patch.setattr(owner, name, _shrunk(getattr(owner, name), overrides))
        patch.syspath_prepend(str(ws.cwd))  # as `python` run in that folder finds its modules
        for block in blocks:
            outcome = Outcome(["python", block.name])
            started = time.perf_counter()
            with _inside(ws) as (stdout, stderr):
                try:
                    exec(compile(block.code, block.name, "exec"), namespace)
                    outcome.returncode = 0
                except Exception:
                    traceback.print_exc()
                    outcome.returncode = 1
            outcome.seconds = time.perf_counter() - started
            outcome.stdout, outcome.stderr = stdout.getvalue(), stderr.getvalue()
            outcomes[block.name] = outcome
    return outcomes


def _run_page(page: Page, root: Path, env: dict[str, str]) -> dict[str, Outcome]:
    """Everything runnable of one page in a working folder of its own; outcomes by name. The
    folder is deleted once all passed (a page's ``dcgan`` checkpoints are about 90 MB each:
    the site's pages would otherwise hold gigabytes), and kept to look into when one failed."""
    slug = re.sub(r"[^\w]+", "-", page.path).strip("-")
    home, cwd = root / slug / "home", root / slug / "work"
    home.mkdir(parents=True)
    cwd.mkdir()
    workspace = Workspace(cwd, home, {**env, "HOME": str(home)})
    for name, (write, _reason) in INPUTS.items():
        write(home / name[2:] if name.startswith("~/") else cwd / name)
    for block in page.files:
        (cwd / str(block.file)).write_text(block.code, encoding="utf-8")
        sys.modules.pop(Path(str(block.file)).stem, None)  # another page's module of that name
    runnable = [c for c in page.commands if c.kind is not None]
    runnable.sort(key=lambda command: STAGES[command.kind or ""])
    outcomes = {command.name: _run(command, workspace) for command in runnable}
    if page.python:
        outcomes |= _run_python(page.python, workspace)
    if all(outcome.returncode == 0 and not outcome.problems for outcome in outcomes.values()):
        shutil.rmtree(root / slug)
    return outcomes


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Outcome]:
    """Run every page's runnable commands and Python blocks once, each page in its own
    workspace; each outcome keyed by its command's or block's name."""
    root = tmp_path_factory.mktemp("pages")
    data = write_mnist_root(root / "data")
    write_tiny_emoji(data)
    env = {
        **os.environ,
        "GANFORGE_DATA": str(data),
        "XDG_CACHE_HOME": str(root / "cache"),
        "MPLBACKEND": "Agg",
    }
    found: dict[str, Outcome] = {}
    for page in PAGES:
        if any(c.kind is not None for c in page.commands) or page.python:
            found |= _run_page(page, root, env)
    return found


# ---------------------------------------------------------------------------------------------
# The tests.


def _failure(where: str, outcome: Outcome) -> str | None:
    """Why an outcome failed, or None."""
    ran = f"ran ({outcome.seconds:.0f} s): {shlex.join(outcome.argv)}"
    if outcome.returncode != 0:
        output = f"{outcome.stdout[-1500:]}\n--- stderr ---\n{outcome.stderr[-3000:]}"
        code = outcome.returncode
        status = f"exit status {code}" if code is not None else "it did not run to the end"
        return f"{where}\n{ran}\n{status}\n" + "\n".join(outcome.problems) + f"\n{output}"
    if outcome.problems:
        return f"{where}\n{ran}\n" + "\n".join(outcome.problems)
    return None


@pytest.mark.parametrize("command", COMMANDS, ids=[c.name for c in COMMANDS])
def test_page_command(command: Command, request: pytest.FixtureRequest) -> None:
    """The command ran to exit status 0 and wrote what it should; the commands are all run
    once, by the :func:`outcomes` fixture, which an unknown one does not wait for."""
    where = f"{command.page} line {command.line}: {command.text}"
    if command.kind is None:
        pytest.fail(
            f"{where}\nthis test does not know how to run it: give its subcommand shrink flags "
            "in SHRINK and a place in STAGES, or put <!-- not-run: REASON --> before its block"
        )
    failure = _failure(where, request.getfixturevalue("outcomes")[command.name])
    if failure:
        pytest.fail(failure)


@pytest.mark.parametrize("block", PYTHON, ids=[b.name for b in PYTHON])
def test_page_python_block(block: Block, request: pytest.FixtureRequest) -> None:
    """The Python block ran without an exception, after the blocks before it on its page."""
    failure = _failure(
        f"the Python block at {block.name}", request.getfixturevalue("outcomes")[block.name]
    )
    if failure:
        pytest.fail(failure)


@pytest.mark.parametrize("block", NOT_RUN_BLOCKS, ids=[b.name for b in NOT_RUN_BLOCKS])
def test_a_block_that_is_not_run_says_why(block: Block) -> None:
    if not block.not_run:
        pytest.fail(f"{block.name}: <!-- not-run: --> needs a reason after the colon")
    pytest.skip(f"not run ({block.name}): {block.not_run}")


def test_the_tables_match_the_pages() -> None:
    """Each entry of SUBSTITUTIONS and INPUTS must still be used by a page's command, so that
    none outlives the command it was written for."""
    texts = {command.text for command in COMMANDS}
    arguments = {arg for command in COMMANDS for arg in command.args}
    assert not set(SUBSTITUTIONS) - arguments, "SUBSTITUTIONS has paths no command uses"
    for placeholder, substitution in SUBSTITUTIONS.items():
        made_by = texts if substitution.kind == "run of" else arguments
        assert substitution.source in made_by, f"{placeholder}: no `{substitution.source}`"
    for name in INPUTS:
        assert any(name in arg for arg in arguments), f"no command uses {name}"
    readme = [command for command in COMMANDS if command.page == "README.md"]
    assert len(readme) >= 5, "README.md lost its commands, or this parser cannot find them"
    assert len(COMMANDS) >= 40 and len(PYTHON) >= 5, "the site lost its examples"


def test_an_included_line_range_is_read_as_the_site_reads_it(tmp_path) -> None:
    (tmp_path / "table.md").write_text("one\ntwo\nthree\nfour\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(f'before\n--8<-- "{tmp_path / "table.md"}:2:3"\nafter\n', encoding="utf-8")
    assert read_page(page) == "before\ntwo\nthree\nafter"


def test_the_parser_reads_blocks_as_a_shell_and_the_site_would(tmp_path) -> None:
    """Continuations and comments are handled; lines it cannot run are kept (as kind None), so
    that they fail; not-run comments, file blocks and Python blocks are told apart; included
    files are read in place."""
    (tmp_path / "included.md").write_text("```sh\nganforge presets\n```", encoding="utf-8")
    snippet = f'--8<-- "{tmp_path / "included.md"}"'
    markdown = "\n".join(
        [
            "```sh",
            "make demo   # trains ganforge's three GANs",
            "ganforge train --preset gan \\",
            "         --seed 1   # a comment",
            "torchrun --standalone --nproc_per_node=2 -m ganforge train --device cpu",
            "for p in gan lsgan; do ganforge train --preset $p; done",
            "ganforge sample runs/x --num 5 | head",
            "ganforge frobnicate",
            "```",
            "<!-- not-run: needs four GPUs -->",
            "",
            "```sh",
            "torchrun --nproc_per_node=4 -m ganforge train",
            "```",
            "- a list item:",
            "",
            "  ```python",
            "  # my_nets.py",
            "  x = 1",
            "  ```",
            "```python",
            "ganforge = 1",
            "```",
            snippet,
        ]
    )
    page = tmp_path / "page.md"
    page.write_text(markdown, encoding="utf-8")
    blocks = code_blocks(read_page(page), "page.md")
    assert [(b.line, b.language, b.not_run, b.file) for b in blocks] == [
        (1, "sh", None, None),
        (12, "sh", "needs four GPUs", None),
        (17, "python", None, "my_nets.py"),
        (21, "python", None, None),
        (24, "sh", None, None),
    ]
    assert blocks[2].code == "# my_nets.py\nx = 1\n"
    commands = shell_commands(blocks[0])
    assert [(c.text, c.line, c.kind) for c in commands] == [
        ("make demo", 2, None),
        ("ganforge train --preset gan --seed 1", 3, "train"),
        ("torchrun --standalone --nproc_per_node=2 -m ganforge train --device cpu", 5, "train"),
        ("for p in gan lsgan; do ganforge train --preset $p; done", 6, None),
        ("ganforge sample runs/x --num 5 | head", 7, None),
        ("ganforge frobnicate", 8, None),
    ]
    assert commands[2].args == ("train", "--device", "cpu")
    assert [c.text for c in shell_commands(blocks[4])] == ["ganforge presets"]


def test_python_entry_points_are_shrunk_whatever_the_call_says() -> None:
    def train(preset="gan", *, console=None, **settings):
        return preset, settings

    def evaluate(source, num=10_000, **options):
        return source, num

    assert _shrunk(train, {"max_steps": 2})("dcgan", max_steps=500, out="x") == (
        "dcgan",
        {"max_steps": 2, "out": "x"},
    )
    assert _shrunk(evaluate, {"num": 64})("runs/x", 1000) == ("runs/x", 64)
