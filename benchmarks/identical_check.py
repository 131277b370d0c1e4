"""The byte-identical check: does a source tree train and sample every preset to the same bytes?

Not a test. For every preset (or those given by ``--presets``), in a fresh subprocess each::

    python -m ganforge train --preset P --max-steps 24 --seed 0 --final-eval-num 0 --out DIR/P
    python -m ganforge sample DIR/P --num 64 --seed 3 --out DIR/P.npz

and the sha256 of the ``images`` array's bytes (uint8, ``(64, C, H, W)``; the array, not the
``.npz`` container, whose zip entries carry timestamps); a second row, ``P weights``, hashes
the networks, EMA and optimizer states of the run's last checkpoint, which the uint8 rounding
of the images cannot hide. ``--src PATH`` names the tree whose
``PATH/src`` goes first on ``PYTHONPATH``, so one virtual environment runs the old and the new
code; the script checks that the subprocesses really import ``ganforge`` from there. Every
process runs on the CPU with one thread (``OMP_NUM_THREADS=1`` and friends, which also set
torch's intra-op threads), so both trees sum in the same order. The presets run one at a time.

Old code against new::

    git -C . archive 32657bc | tar -x -C /work/old
    python benchmarks/identical_check.py --src /work/old --json /work/identical-old.json
    python benchmarks/identical_check.py --src . --json /work/identical-new.json \\
        --against /work/identical-old.json

prints the table ``preset | old | new | same`` and exits 1 when a preset differs or is missing on
either side (a preset whose run fails is reported and missing; without ``--against`` a failure
also exits 1). ``--compare OLD.json NEW.json`` prints the same table for two stored results
without running anything. The data is whatever the data root holds (``--data-root``, else
``$GANFORGE_DATA``, else the cache folder): ``ganforge data fetch mnist`` first, offline. The
whole check took 3 to 4 minutes on 2 CPU cores (AMD EPYC), up to 13 while others shared them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

STEPS, NUM, SAMPLE_SEED = 24, 64, 3
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: The parts of the last checkpoint whose tensors the ``P weights`` rows hash.
TRAINED_STATE = ("generator", "discriminator", "generator_ema", "g_optimizer", "d_optimizer")


class CheckError(Exception):
    """A problem with the check's own input: printed as one line, exit 2."""


def child_environment(src: Path, data_root: str | None) -> dict[str, str]:
    """The environment of every subprocess: ``src/src`` first on the path, one thread, CPU only."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src / "src"), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    env |= {name: "1" for name in THREAD_VARIABLES}
    env["CUDA_VISIBLE_DEVICES"] = ""  # a GPU would round differently from the old run's CPU
    env["PYTHONHASHSEED"] = "0"
    if data_root:
        env["GANFORGE_DATA"] = data_root
    return env


def run(command: list[str], env: dict[str, str], what: str) -> str:
    """Run one subprocess; its stdout, or a CheckError that quotes the end of its output."""
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise CheckError(f"{what} exited {done.returncode}: " + " / ".join(tail))
    return done.stdout


def check_source(python: str, src: Path, env: dict[str, str]) -> list[str]:
    """The presets of the tree ``src``, after making sure its subprocesses import its code."""
    if not (src / "src" / "ganforge" / "__init__.py").is_file():
        raise CheckError(f"--src {src}: no src/ganforge/__init__.py there")
    probe = "import json, ganforge, ganforge.presets as p; "
    probe += "print(json.dumps([ganforge.__file__, list(p.PRESETS)]))"
    location, presets = json.loads(run([python, "-c", probe], env, "importing ganforge"))
    if Path(location).resolve() != (src / "src" / "ganforge" / "__init__.py").resolve():
        raise CheckError(f"--src {src}: the subprocess imported ganforge from {location}")
    return presets


def images_sha256(npz: Path) -> str:
    """The sha256 of the ``images`` array's bytes in a ``ganforge sample --out`` file."""
    with np.load(npz) as archive:
        images = archive["images"]
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


def state_tensors(state: object) -> list[torch.Tensor]:
    """Every tensor in a nested state dict, keys in sorted order."""
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for key in sorted(state, key=str) for t in state_tensors(state[key])]
    if isinstance(state, (list, tuple)):
        return [t for item in state for t in state_tensors(item)]
    return []


def weights_sha256(run_dir: Path) -> str:
    """The sha256 of every tensor of the networks, EMA and optimizers in a run's last checkpoint.

    Finer than the images, which are rounded to uint8: a weight moved by one float32 ulp changes
    this, whether or not it moves a pixel across a rounding boundary.
    """
    last = max((run_dir / "checkpoints").glob("step_*.pt"), key=lambda p: int(p.stem[5:]))
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    digest = hashlib.sha256()
    for key in TRAINED_STATE:
        for tensor in state_tensors(checkpoint.get(key)):
            digest.update(tensor.detach().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def hash_presets(
    python: str, src: Path, env: dict[str, str], presets: list[str], work: Path
) -> dict[str, str]:
    """Train and sample each preset in ``work``: {preset: sha256 of its images, and
    ``"P weights"``: :func:`weights_sha256` of its last checkpoint}.

    A preset whose run fails is reported and left out (the comparison then calls it missing),
    so that one broken preset in a tree under repair does not hide the others' results.
    """
    hashes = {}
    for preset in presets:
        start = time.perf_counter()
        out, npz = work / preset, work / f"{preset}.npz"
        train = [python, "-m", "ganforge", "train", "--preset", preset, "--max-steps", str(STEPS)]
        train += ["--seed", "0", "--final-eval-num", "0", "--out", str(out), "--quiet"]
        sample = [python, "-m", "ganforge", "sample", str(out), "--num", str(NUM)]
        sample += ["--seed", str(SAMPLE_SEED), "--out", str(npz)]
        try:
            run(train, env, f"train --preset {preset}")
            run(sample, env, f"sample {preset}")
        except CheckError as error:
            print(f"{preset}: FAILED, {error}", flush=True)
            continue
        hashes[preset] = images_sha256(npz)
        hashes[f"{preset} weights"] = weights_sha256(out)
        print(f"{preset}: {hashes[preset]} ({time.perf_counter() - start:.1f} s)", flush=True)
    return hashes


def comparison(old: dict[str, str], new: dict[str, str]) -> tuple[str, bool]:
    """The markdown table ``preset | old | new | same`` and whether every preset is the same."""
    lines = ["| preset | old | new | same |", "|---|---|---|---|"]
    all_same = True
    for preset in list(old) + [name for name in new if name not in old]:
        a, b = old.get(preset, "missing"), new.get(preset, "missing")
        same = preset in old and preset in new and a == b
        all_same &= same
        lines.append(f"| {preset} | {a[:16]} | {b[:16]} | {'yes' if same else 'NO'} |")
    return "\n".join(lines), all_same


def read_hashes(path: Path) -> dict[str, str]:
    """A ``{preset: sha256}`` JSON file written by this script."""
    try:
        hashes = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CheckError(f"{path}: not a readable JSON file ({error})") from None
    if not isinstance(hashes, dict) or not all(isinstance(v, str) for v in hashes.values()):
        raise CheckError(f"{path}: not a {{preset: sha256}} file")
    return hashes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, help="the source tree to run (holds src/ganforge)")
    parser.add_argument("--json", type=Path, help="write {preset: sha256} here")
    parser.add_argument("--against", type=Path, help="a stored result to compare with")
    parser.add_argument(
        "--compare", type=Path, nargs=2, metavar=("OLD", "NEW"), help="compare two stored results"
    )
    parser.add_argument("--presets", nargs="+", help="these presets only (default: all)")
    parser.add_argument("--data-root", help="where the datasets live (else $GANFORGE_DATA)")
    parser.add_argument("--work", type=Path, help="keep the runs here (default: a temp folder)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter to run")
    args = parser.parse_args(argv)
    if (args.src is None) == (args.compare is None):
        parser.error("give either --src PATH or --compare OLD.json NEW.json")
    return args


def check(args: argparse.Namespace) -> int:
    """Run (or read) the hashes and compare them; the exit status."""
    if args.compare:
        old, new = read_hashes(args.compare[0]), read_hashes(args.compare[1])
    else:
        old = read_hashes(args.against) if args.against else None
        src = args.src.expanduser().resolve()
        env = child_environment(src, args.data_root)
        presets = check_source(args.python, src, env)
        unknown = sorted(set(args.presets or []) - set(presets))
        if unknown:
            raise CheckError(f"unknown presets {unknown}; {src} has {presets}")
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="identical-") as scratch:
            work = args.work or Path(scratch)
            work.mkdir(parents=True, exist_ok=True)
            new = hash_presets(args.python, src, env, args.presets or presets, work)
        print(f"{len(args.presets or presets)} presets in {time.perf_counter() - start:.0f} s")
        if args.json:
            args.json.write_text(json.dumps(new, indent=1) + "\n")
        if old is None:
            return 0 if len(new) == 2 * len(args.presets or presets) else 1
    table, all_same = comparison(old, new)
    print(table)
    return 0 if all_same else 1


def main(argv: list[str] | None = None) -> int:
    try:
        return check(parse_args(argv))
    except CheckError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
