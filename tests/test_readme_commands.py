"""Every ``ganforge …`` and ``torchrun …`` command in README.md's code blocks, run on tiny data.

Why: the README is what users copy from. A flag renamed in the CLI, a subcommand dropped or
a default folder moved breaks the commands there without breaking any other test; this file
runs them, so such a change fails here.

What is collected. README.md is parsed when the tests are collected: every line of a fenced
code block marked ``sh`` (or ``bash``, ``shell``, ``console``, or unmarked) that starts with
``ganforge``, ``python -m ganforge`` or ``torchrun``, with ``\\`` continuations joined and
trailing ``# comments`` dropped. Each one is a test case, named by its text. Not collected:

- ``make …`` lines (``make demo``, ``make test``, …): Makefile targets, not ganforge commands
  (``make test`` runs this file), and ``pip``/``python`` lines that do not run ganforge;
- ``python`` code blocks: they show the Python API, whose module paths are not the CLI's
  promise; the commands' behaviour is what this file pins;
- commands quoted inline in the prose (single backticks): only code blocks are copied whole.

A code-block line that runs ganforge in a way this file does not handle (a subcommand without
an entry in :data:`SHRINK`, a shell loop, a pipe, an environment prefix) is a failing case,
never a silent skip: teach this file how to run it, or list it in :data:`CANNOT_RUN_HERE`.

How a command is shrunk. Each command is run as written, with the flags of :data:`SHRINK` for
its subcommand appended; argparse keeps a flag's last value, so they override the README's
(``--max-steps 500`` becomes 2, ``--num 10000`` becomes 64). A new run trains 2 iterations of
batch 32 on the CPU and still evaluates itself at the end (on 64 samples), as users' runs do by
default; ``--resume`` is given 4 iterations, so the resumed run trains on past the first 2.
``torchrun`` runs ``--standalone`` with 2 CPU processes (``python -m torch.distributed.run``).

Where it runs. All commands run one after another in one temporary working folder, in
dependency order (:data:`STAGES`: new runs, then resumes, then the commands that read runs),
with ``GANFORGE_DATA`` at the tiny synthetic MNIST of ``conftest.py``, a private cache and
``HOME`` pointing to a temporary folder. The files the README assumes exist are written first
(:data:`INPUTS`), and its placeholder paths are replaced by what the earlier commands made
(:data:`SUBSTITUTIONS`). Commands that need what this machine lacks (GPUs, other nodes, the
network) are listed with the reason in :data:`CANNOT_RUN_HERE` and reported as skipped; a test
checks that every entry of these tables still matches the README, so none goes stale.

Everything goes through the command line: ``ganforge ARGS`` through the console script's own
function (``ganforge.cli.main``, in the workspace's folder and environment), ``torchrun``
commands in processes of their own; the README's commands are what is tested, not the
library's internals. The module fixture runs all
commands once (about two minutes on 2 cores); each case then checks its command's exit status
and the files it should have written.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.md"

#: The uniform shrink of a training: 2 iterations of batch 32 on the CPU, small grids, no
#: progress bar, and evaluation left on (users get it by default) with small sample counts.
#: Appended to every ``ganforge train`` and ``torchrun … -m ganforge train`` of the README; to
#: try a README training in seconds yourself, append the same flags.
SHRINK_TRAIN: tuple[str, ...] = (
    *("--max-steps", "2", "--batch-size", "32", "--grid-size", "16", "--sample-every", "1"),
    *("--eval-num", "40", "--final-eval-num", "64", "--device", "cpu", "--quiet"),
)

#: The flags appended to each README command, by its subcommand. argparse keeps a flag's last
#: value, so these override the README's own (``--max-steps 500`` → 2, ``--num 10000`` → 64).
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
}

#: The order commands run in (stable: README order within a stage): runs must exist before
#: they are resumed, and be finished before they are sampled, scored and compared.
STAGES: dict[str, int] = {
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

#: README commands that need what this machine (2 CPU cores, no GPU, no network) lacks, by
#: their text as collected (continuations joined, comments dropped), with the reason.
CANNOT_RUN_HERE: dict[str, str] = {
    "ganforge train --preset hinge-sn --architecture radford --dataset cifar10 --download": (
        "needs the real CIFAR-10: --download fetches it from the network, and torchvision "
        "checks the MD5 sums of cifar-10-batches-py, so no tiny stand-in can be written"
    ),
    "torchrun --standalone --nproc_per_node=4 -m ganforge train --preset dcgan --sync-bn": (
        "--sync-bn is PyTorch's SyncBatchNorm, which runs on CUDA GPUs only (4 of them here)"
    ),
    "torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=node0:29500 "
    "--rdzv_id=gan-run-1 -m ganforge train --preset dcgan --sync-bn --batch-size 1024": (
        "two machines of 8 GPUs meeting at the rendezvous host node0, and --sync-bn (CUDA only)"
    ),
}

#: Languages of the code blocks whose lines are shell commands.
SHELL_BLOCKS = {"", "sh", "bash", "shell", "console", "zsh"}
#: Programs whose lines are not ganforge commands (``python -m ganforge`` excepted).
NOT_GANFORGE = {"make", "pip", "pip3", "python", "python3"}
#: Tokens that make a line more than one command: this file runs single commands only.
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1"}


# ---------------------------------------------------------------------------------------------
# Reading the README.


@dataclass(frozen=True)
class ReadmeCommand:
    """One command of a README code block."""

    text: str  # its tokens joined by single spaces: the key of the tables above
    tokens: tuple[str, ...]
    line: int  # where it starts in README.md
    kind: str | None  # the SHRINK key; None: this file does not know how to run it

    @property
    def program(self) -> str:
        return "torchrun" if self.tokens[0] == "torchrun" else "ganforge"

    @property
    def args(self) -> tuple[str, ...]:
        """The arguments after ``ganforge`` (also under ``python -m`` and ``torchrun … -m``)."""
        return self.tokens[_ganforge_end(self.tokens) :]


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


def _mentions_ganforge(tokens: tuple[str, ...]) -> bool:
    """Whether a line runs ganforge or torchrun somewhere (a loop, an env prefix, a path)."""
    if tokens[0] in NOT_GANFORGE and _ganforge_end(tokens) == 0:
        return False
    return any(
        t in ("ganforge", "torchrun") or t.endswith(("/ganforge", "/torchrun")) for t in tokens
    )


def readme_commands(markdown: str) -> list[ReadmeCommand]:
    """The ganforge and torchrun commands of ``markdown``'s shell code blocks, in order."""
    commands: list[ReadmeCommand] = []
    fence: str | None = None  # the open block's fence, e.g. "```"
    language = ""
    pending, start = "", 0
    for number, raw in enumerate(markdown.splitlines(), start=1):
        line = raw.strip()
        if fence is None:
            opening = re.match(r"(`{3,}|~{3,})\s*([\w+-]*)", line)
            if opening:
                fence, language = opening.group(1), opening.group(2).lower()
            continue
        if line.startswith(fence) and not line[len(fence) :].strip():
            fence, pending = None, ""
            continue
        if language not in SHELL_BLOCKS:
            continue
        if not pending:
            start = number
            line = line.removeprefix("$ ")
        pending = f"{pending} {line}".strip()
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        tokens = tuple(shlex.split(pending, comments=True))
        pending = ""
        if not tokens:
            continue
        kind = _kind(tokens)
        if kind is None and not _mentions_ganforge(tokens):
            continue  # make, pip, python, or another program
        commands.append(ReadmeCommand(" ".join(tokens), tokens, start, kind))
    return commands


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# The files the README assumes, and what its placeholder paths stand for.


@dataclass
class Workspace:
    """The temporary working folder the commands run in, and what they made."""

    cwd: Path
    home: Path
    env: dict[str, str]
    made: dict[str, str] = field(default_factory=dict)  # command text → the run folder it made


@dataclass(frozen=True)
class Substitution:
    """What a placeholder path of the README stands for here."""

    kind: str  # "run of": the run folder that README command made; "checkpoint of": the
    # newest checkpoint of that run folder; "path": that path as it is
    source: str
    reason: str

    def resolve(self, workspace: Workspace) -> str:
        if self.kind == "path":
            return self.source
        if self.kind == "run of":
            if self.source not in workspace.made:
                raise LookupError(f"`{self.source}` did not make a run folder")
            return workspace.made[self.source]
        checkpoints = sorted((workspace.cwd / self.source / "checkpoints").glob("step_*.pt"))
        if not checkpoints:
            raise LookupError(f"{self.source} has no checkpoint")
        return str(checkpoints[-1].relative_to(workspace.cwd))


DCGAN_RUN = "ganforge train --preset dcgan"
LSGAN_RUN = "ganforge train --config my.toml --lr 2e-4"

#: Placeholder paths of README commands (whole arguments), each with what stands in for it.
SUBSTITUTIONS: dict[str, Substitution] = {
    "runs/dcgan-20261127-101500": Substitution(
        "run of", DCGAN_RUN, "that command's default folder, named by its start time"
    ),
    "runs/gan-short/checkpoints/step_0001170.pt": Substitution(
        "checkpoint of", "runs/gan-short", "step 1170 ends 3 full epochs; a shrunk run has fewer"
    ),
    "runs/demo-20261127-110000/dcgan": Substitution(
        "run of", DCGAN_RUN, "`make demo`'s dcgan run (make is not run here)"
    ),
    "runs/demo-*/gan": Substitution(
        "path", "runs/gan-short", "`make demo`'s gan run: the README's own gan run"
    ),
    "runs/demo-*/lsgan": Substitution(
        "run of", LSGAN_RUN, "`make demo`'s lsgan run: my.toml (INPUTS) picks the lsgan preset"
    ),
    "runs/demo-*/dcgan": Substitution("run of", DCGAN_RUN, "`make demo`'s dcgan run"),
}


def _write_settings(path: Path) -> None:
    path.write_text('preset = "lsgan"\nseed = 2\n', encoding="utf-8")


def _write_photos(root: Path) -> None:
    """40 colour images, PNG and JPEG, in two class sub-folders: more than a batch of 32."""
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (root / label).mkdir(parents=True)
        for index in range(20):
            pixels = rng.integers(0, 255, size=(40, 36, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{index}.{('png', 'jpg')[index % 2]}")


def _write_networks(path: Path) -> None:
    """The README's own ``my_nets.py``, copied out of its Python block."""
    blocks = re.findall(r"```python\n(# my_nets.py\n.*?)```", README.read_text(), flags=re.S)
    path.write_text(blocks[0] if blocks else "", encoding="utf-8")


#: Files the README's commands expect to exist, written before any command runs (``~`` is the
#: temporary HOME), with the reason.
INPUTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "my.toml": (_write_settings, "the example settings file; lsgan, to stand in for demo's"),
    "my_nets.py": (_write_networks, "the user's networks of --architecture my_nets:build"),
    "~/photos": (_write_photos, "the example image folder (folder:~/photos)"),
}


# ---------------------------------------------------------------------------------------------
# Running them.


@dataclass
class Outcome:
    """What one command did."""

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


def _arguments(command: ReadmeCommand, workspace: Workspace) -> list[str]:
    """ganforge's arguments: placeholders replaced, ``~`` expanded as the shell would (at the
    start of an argument only: ``folder:~/photos`` reaches ganforge as it is), shrink flags
    appended."""
    args = [
        SUBSTITUTIONS[arg].resolve(workspace) if arg in SUBSTITUTIONS else arg
        for arg in command.args
    ]
    args = [str(workspace.home) + arg[1:] if arg.startswith("~/") else arg for arg in args]
    return [*args, *SHRINK[command.kind or ""]]


def _argv(command: ReadmeCommand, args: list[str]) -> list[str]:
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
    names = ["summary.json", "report.html"]
    if (run / "config.json").is_file():
        dataset = json.loads((run / "config.json").read_text()).get("dataset", "")
        names += [] if str(dataset).startswith("folder:") else ["eval.json"]
    problems = [f"{run}: no {name}" for name in names if not (run / name).is_file()]
    if (run / "summary.json").is_file():
        found = json.loads((run / "summary.json").read_text()).get("processes")
        if found != processes:
            problems.append(f"{run}: summary.json says {found} processes, not {processes}")
    return problems


def _output_problems(command: ReadmeCommand, args: list[str], outcome: Outcome, ws: Workspace):
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
    return problems


def _run(command: ReadmeCommand, ws: Workspace) -> Outcome:
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
    the README's commands (seconds each). Torchrun's commands still get processes of their own.
    """
    from ganforge.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update(ws.env)
    os.chdir(ws.cwd)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                returncode = main(args)
            except SystemExit as exc:  # argparse's usage errors
                returncode = exc.code if isinstance(exc.code, int) else 1
            except Exception:  # a crash: what a subprocess would print before exit status 1
                traceback.print_exc()
                returncode = 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return returncode, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, tiny_mnist_root) -> dict[int, Outcome]:
    """Run every runnable README command once, in :data:`STAGES` order, in one workspace;
    each outcome keyed by the command's index in :data:`COMMANDS`."""
    root = tmp_path_factory.mktemp("readme")
    home, cwd = root / "home", root / "work"
    home.mkdir()
    cwd.mkdir()
    env = {
        **os.environ,
        "GANFORGE_DATA": str(tiny_mnist_root),
        "XDG_CACHE_HOME": str(root / "cache"),
        "HOME": str(home),
    }
    workspace = Workspace(cwd, home, env)
    for name, (write, _reason) in INPUTS.items():
        write(home / name[2:] if name.startswith("~/") else cwd / name)
    runnable = [
        (index, command)
        for index, command in enumerate(COMMANDS)
        if command.kind is not None and command.text not in CANNOT_RUN_HERE
    ]
    runnable.sort(key=lambda item: STAGES[item[1].kind or ""])
    return {index: _run(command, workspace) for index, command in runnable}


# ---------------------------------------------------------------------------------------------
# The tests.


@pytest.mark.parametrize("index", range(len(COMMANDS)), ids=[c.text for c in COMMANDS])
def test_readme_command(index: int, request: pytest.FixtureRequest) -> None:
    """The README command ran to exit status 0 and wrote what it should; the commands are all
    run once, by the :func:`outcomes` fixture, which a skipped or unknown one does not wait for."""
    command = COMMANDS[index]
    where = f"README.md line {command.line}: {command.text}"
    if command.text in CANNOT_RUN_HERE:
        pytest.skip(f"cannot run here: {CANNOT_RUN_HERE[command.text]}")
    if command.kind is None:
        pytest.fail(
            f"{where}\nthis test does not know how to run it: give its subcommand shrink flags "
            "in SHRINK and a place in STAGES, or list it in CANNOT_RUN_HERE with the reason"
        )
    outcome = request.getfixturevalue("outcomes")[index]
    ran = f"ran ({outcome.seconds:.0f} s): {shlex.join(outcome.argv)}"
    if outcome.returncode != 0:
        output = f"{outcome.stdout[-1500:]}\n--- stderr ---\n{outcome.stderr[-3000:]}"
        code = outcome.returncode
        status = f"exit status {code}" if code is not None else "it did not run to the end"
        pytest.fail(f"{where}\n{ran}\n{status}\n" + "\n".join(outcome.problems) + f"\n{output}")
    assert not outcome.problems, f"{where}\n{ran}\n" + "\n".join(outcome.problems)


def test_the_tables_match_the_readme() -> None:
    """Each entry of CANNOT_RUN_HERE, SUBSTITUTIONS and INPUTS must still be used by a README
    command, so that none outlives the command it was written for."""
    texts = {command.text for command in COMMANDS}
    arguments = {arg for command in COMMANDS for arg in command.args}
    assert not set(CANNOT_RUN_HERE) - texts, "CANNOT_RUN_HERE lists commands not in README.md"
    assert not set(SUBSTITUTIONS) - arguments, "SUBSTITUTIONS has paths no README command uses"
    for placeholder, substitution in SUBSTITUTIONS.items():
        made_by = texts if substitution.kind == "run of" else arguments
        assert substitution.source in made_by, f"{placeholder}: no `{substitution.source}`"
    for name in INPUTS:
        module = name.removesuffix(".py") + ":"  # a module is named as module:callable
        used = any(name in arg or arg.startswith(module) for arg in arguments)
        assert used, f"no README command uses {name}"
    assert len(COMMANDS) >= 10, "README.md lost its commands, or this parser cannot find them"


def test_the_parser_reads_commands_as_a_shell_would() -> None:
    """Continuations and comments are handled, non-ganforge lines and Python blocks skipped,
    and a ganforge line this file cannot run is kept (as kind None), so that it fails."""
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
            "pip install ganforge",
            "```",
            "```python",
            "ganforge = 1",
            "```",
        ]
    )
    commands = readme_commands(markdown)
    assert [(c.text, c.line, c.kind) for c in commands] == [
        ("ganforge train --preset gan --seed 1", 3, "train"),
        ("torchrun --standalone --nproc_per_node=2 -m ganforge train --device cpu", 5, "train"),
        ("for p in gan lsgan; do ganforge train --preset $p; done", 6, None),
        ("ganforge sample runs/x --num 5 | head", 7, None),
        ("ganforge frobnicate", 8, None),
    ]
    assert commands[1].args == ("train", "--device", "cpu")
