"""The colour benchmark: Twemoji (``--dataset emoji``, 1,529 training images in 9 categories) at
32 px, every setting given the same training time, 3 seeds each, scored by the shipped emoji
evaluator on 10,000 samples against the 381 held-out test images.

Not a test: tens of runs of minutes each. Two runs train at a time, each on one thread
(``OMP_NUM_THREADS=1``). Equal time is made robust to whatever else the machine is doing:
``calibrate`` trains each setting for ``--seconds`` beside the anchor (``radford-dcgan`` at the
same size), both at once, so both see the same load, and records its speed as a ratio of the
anchor's; ``run`` then gives each setting the iterations that the anchor's ``--anchor-steps``
take in time (``--anchor-steps`` times the ratio; ``--minutes M`` sets the anchor's iterations
to those of M minutes at its calibrated speed), with an in-training evaluation of 2,000
samples at every eighth of the run for the FID-against-time chart. Settings:

* ``radford-dcgan``: Radford et al.'s networks with the assignment's dcgan recipe;
* ``radford-hinge``: the same networks with hinge loss, spectral norm and DiffAugment
  (``radford-hinge-bf16``: in bf16);
* ``colour``: the ``colour`` preset (residual networks, hinge loss, spectral norm,
  DiffAugment); ``colour-bf16``: the same in bf16 autocast; ``--size 64`` repeats settings
  at 64 px; ``radford-dcgan-bf16``: the anchor's setting in bf16 (with ``colour-bf16``, what
  ``--precision auto`` trains on a CPU with native bf16);
* ``colour-lr2e-4``: the preset before 2026-12-07, at Miyato et al.'s rate (``-bf16``: in
  bf16), and the screening that chose its rate of 1e-3: ``colour-lr2e-3``,
  ``colour-lr-d-2e-3``, ``colour-batch32``, ``colour-translation``,
  ``colour-color-translation`` (:data:`SETTINGS` says each one's flags);
* the screening at 15 minutes, in bf16: ``colour-decay-bf16`` (``--lr-decay linear``, over
  as many epochs as its budget spans), ``colour-width2-bf16`` and ``colour-g-width2-bf16``
  (twice the channels in both networks, in G alone), ``colour-width2-decay-bf16`` (both),
  ``colour-lr5e-4-bf16``, ``colour-ncritic2-bf16``, ``colour-xflip-bf16``,
  ``colour-translation-bf16`` and ``colour-cond-bf16`` (``--conditioning projection``);
* ``peer``: pytorch/examples' ``dcgan/main.py`` (``--peer PATH``: its file, not part of
  ganforge) on the same training images at 64 px, its whole process timed (start-up included)
  and scored the same way: its last ``netG_epoch_*.pth`` is read into ganforge's ``radford``
  generator, the same network (:func:`peer_generator`);
* ``dropped-alpha`` and ``composited``: the transparency pair, the colour preset on black: the
  training images converted as Pillow's ``convert("RGB")`` does (the alpha dropped, what lay
  under transparent pixels kept) against alpha-compositing onto black (``--background
  black``), both scored against the test images composited onto black.

::

    python benchmarks/colour.py prepare --runs runs/colour
    python benchmarks/colour.py calibrate --runs runs/colour --settings radford-hinge colour
    python benchmarks/colour.py run --runs runs/colour --settings radford-dcgan colour \\
        --seeds 0 1 2 --anchor-steps 400
    python benchmarks/colour.py calibrate --runs runs/colour --size 64 --settings peer \\
        --peer /path/to/examples/dcgan/main.py
    python benchmarks/colour.py table --runs runs/colour --out benchmarks/colour
    python benchmarks/colour.py figures --runs runs/colour --out docs/assets/colour
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import time_to_quality
import torch
from PIL import Image

from ganforge.data import emoji_folder, load_dataset, resolve_data_root, to_uint8
from ganforge.data.emoji import TEST_EVERY
from ganforge.nets.radford import RadfordGenerator
from ganforge.sampling import generate

SEEDS = (0, 1, 2)
#: The ``colour`` preset as it was before 2026-12-07, at Miyato et al.'s rate: the short budget,
#: the bf16 pair, the transparency pair and the first 64 px rows ran with it.
COLOUR_BEFORE = ["--preset", "colour", "--lr", "2e-4"]
#: Radford et al.'s networks with the hinge-sn recipe and DiffAugment (in fp32 and in bf16).
RADFORD_HINGE = ["--preset", "hinge-sn", "--architecture", "radford", "--augment", "diffaugment"]
#: The ``colour`` preset with DiffAugment's translation alone.
COLOUR_TRANSLATION = ["--preset", "colour", "--augment-policy", "translation"]
#: The ``colour`` preset with twice the channels in both networks.
WIDTH2 = ["--preset", "colour", "--g-width", "2", "--d-width", "2"]
#: ganforge's settings: ``ganforge train`` flags over the common ones of :func:`setting_flags`.
SETTINGS: dict[str, list[str]] = {
    "radford-dcgan": ["--preset", "dcgan", "--architecture", "radford"],
    "radford-dcgan-bf16": ["--preset", "dcgan", "--architecture", "radford", "--precision", "bf16"],
    "radford-hinge": RADFORD_HINGE,
    "radford-hinge-bf16": [*RADFORD_HINGE, "--precision", "bf16"],
    "colour": ["--preset", "colour"],
    "colour-bf16": ["--preset", "colour", "--precision", "bf16"],
    # The screening of 2026-12-07 that chose the preset's rate, and the preset before it.
    "colour-lr2e-4": COLOUR_BEFORE,
    "colour-lr2e-4-bf16": [*COLOUR_BEFORE, "--precision", "bf16"],
    "colour-lr2e-3": ["--preset", "colour", "--lr", "2e-3"],
    "colour-lr-d-2e-3": ["--preset", "colour", "--lr-d", "2e-3"],
    "colour-batch32": ["--preset", "colour", "--batch-size", "32"],
    "colour-translation": COLOUR_TRANSLATION,
    "colour-color-translation": ["--preset", "colour", "--augment-policy", "color,translation"],
    # Calibrated only: at 0.43 and 0.76 of the anchor's speed, too slow for these budgets.
    "colour-width2": WIDTH2,
    "colour-g-width2": ["--preset", "colour", "--g-width", "2"],
    # The screening of width on a CPU with AMX, where bf16 makes wider networks cheaper.
    "colour-width2-bf16": [*WIDTH2, "--precision", "bf16"],
    "colour-g-width2-bf16": ["--preset", "colour", "--g-width", "2", "--precision", "bf16"],
    # SNGAN's linear decay of the rates to 0, over the budget (see train_one).
    "colour-decay-bf16": ["--preset", "colour", "--lr-decay", "linear", "--precision", "bf16"],
    "colour-width2-decay-bf16": [*WIDTH2, "--lr-decay", "linear", "--precision", "bf16"],
    # The rate chosen at ~1,000 iterations, halved for the ~6,000 of 15 minutes; two D steps.
    "colour-lr5e-4-bf16": ["--preset", "colour", "--lr", "5e-4", "--precision", "bf16"],
    "colour-ncritic2-bf16": ["--preset", "colour", "--n-critic", "2", "--precision", "bf16"],
    # Against D's overfitting over ~260 epochs: mirrored images, and translation alone (the
    # better augmentation on average at 870 iterations).
    "colour-xflip-bf16": ["--preset", "colour", "--xflip", "--precision", "bf16"],
    "colour-translation-bf16": [*COLOUR_TRANSLATION, "--precision", "bf16"],
    # Conditioned on the 9 categories: class-conditional BatchNorm in G, a projection D.
    "colour-cond-bf16": [
        "--preset",
        "colour",
        "--conditioning",
        "projection",
        "--precision",
        "bf16",
    ],
    "composited": [*COLOUR_BEFORE, "--background", "black"],
    "dropped-alpha": [*COLOUR_BEFORE, "--background", "black", "--dataset", "{dropped}"],
}
PEER = "peer"
#: Settings that compute what another does, so train at its calibrated speed.
SAME_SPEED = {
    name: "colour"
    for name in (
        "colour-lr2e-4",
        "colour-lr2e-3",
        "colour-lr-d-2e-3",
        "colour-translation",
        "colour-color-translation",
        "composited",
        "dropped-alpha",
    )
} | {
    "colour-lr2e-4-bf16": "colour-bf16",
    "colour-decay-bf16": "colour-bf16",
    "colour-lr5e-4-bf16": "colour-bf16",
    "colour-xflip-bf16": "colour-bf16",
    "colour-translation-bf16": "colour-bf16",
    "colour-width2-decay-bf16": "colour-width2-bf16",
}
ANCHOR = "radford-dcgan"
#: Twemoji's training images, in batches of 64: ganforge's epoch drops the last incomplete
#: one (23 iterations), the peer's keeps it (24).
TRAIN_IMAGES, BATCH = 1529, 64
PEER_BATCHES = -(-TRAIN_IMAGES // BATCH)
#: In-training evaluations per run (besides the final one).
EVALUATIONS = 8
PEER_NOISE_DIM = 100
EVAL_NUM = 10_000
#: The folders ``prepare`` writes under ``RUNS/folders``: the training split as the peer reads
#: it (RGB PNGs composited onto white, as ganforge's runs see them), and converted the old way.
FOLDERS = {"white": "emoji-train-white", "dropped": "emoji-train-dropped-alpha"}


def run_name(setting: str, size: int, seed: int) -> str:
    return f"{setting}-{size}px-s{seed}"


def training_files() -> list[tuple[str, Path]]:
    """``(category, file)`` of every Twemoji training image, in the order of the ``emoji``
    dataset's train split (each category's files sorted, every ``TEST_EVERY``-th held out)."""
    root = emoji_folder("emoji", resolve_data_root())
    files = []
    for category in sorted(p for p in root.iterdir() if p.is_dir()):
        for rank, path in enumerate(sorted(category.glob("*.png")), start=1):
            if rank % TEST_EVERY:
                files.append((category.name, path))
    return files


def prepare(args: argparse.Namespace) -> None:
    """Write the peer's folder and the dropped-alpha folder of the training split."""
    train = load_dataset("emoji", "train", image_shape=(3, 64, 64))  # composited onto white
    files = training_files()
    assert len(files) == len(train), "the file order must be the dataset's"
    for key, name in FOLDERS.items():
        folder = args.runs / "folders" / name
        for (category, path), image in zip(files, train.images, strict=True):
            out = folder / category / path.name
            out.parent.mkdir(parents=True, exist_ok=True)
            if key == "white":
                Image.fromarray(image.permute(1, 2, 0).numpy()).save(out)
            else:  # what ganforge did before compositing, and what ImageFolder still does
                Image.open(path).convert("RGB").save(out)
        print(f"wrote {folder}")


def setting_flags(args: argparse.Namespace, setting: str, seed: int) -> list[str]:
    """``ganforge train`` flags of a setting, before its length."""
    dropped = f"folder:{args.runs / 'folders' / FOLDERS['dropped']}"
    flags = ["--dataset", "emoji", "--image-size", str(args.size), "--precision", "fp32"]
    flags += [flag.format(dropped=dropped) for flag in SETTINGS[setting]]
    return [*flags, "--seed", str(seed)]


def calibration_file(args: argparse.Namespace) -> Path:
    return args.runs / f"calibration-{args.size}px.json"


def anchor_steps(args: argparse.Namespace, speeds: dict) -> float:
    """The budget in anchor iterations: ``--anchor-steps``, or the anchor's iterations in
    ``--minutes`` at its median calibrated speed (measured beside each setting, as it runs)."""
    if args.minutes is None:
        return args.anchor_steps
    return args.minutes * 60 * statistics.median(s["anchor_it_s"] for s in speeds.values())


def iterations(args: argparse.Namespace, setting: str) -> int:
    """The iterations that the anchor's budget takes, in time, buys ``setting``."""
    speeds = json.loads(calibration_file(args).read_text())
    setting = SAME_SPEED.get(setting, setting)
    ratio = speeds[setting]["ratio"] if setting != ANCHOR else 1.0
    return max(1, round(anchor_steps(args, speeds) * ratio))


def train_one(args: argparse.Namespace, setting: str, seed: int) -> str:
    out = args.runs / run_name(setting, args.size, seed)
    steps = iterations(args, setting)
    if setting == PEER:
        return train_peer(args, out, seed, epochs=max(1, round(steps / PEER_BATCHES)))
    flags = setting_flags(args, setting, seed)
    every = max(1, steps // args.evaluations) if args.evaluations else 0
    flags += ["--max-steps", str(steps), "--eval-every", str(every)]
    if "--lr-decay" in flags:  # its rates fall over the epochs: as many as the budget spans
        flags += ["--epochs", str(-(-steps // (TRAIN_IMAGES // BATCH)))]
    flags += ["--eval-num", "2000", "--final-eval-num", str(EVAL_NUM)]
    time_to_quality.train_or_resume(out, flags)
    if setting == "dropped-alpha" and not (out / "eval-emoji.json").is_file():
        # A folder run is scored on pixels; score it as the others are, on the emoji test set.
        result = subprocess.run(
            [ganforge(), "eval", str(out), "--dataset", "emoji", "--json"],
            check=True,
            capture_output=True,
            text=True,
        )
        (out / "eval-emoji.json").write_text(result.stdout)
    return str(out)


def ganforge() -> str:
    return str(Path(sys.executable).with_name("ganforge"))


def peer_command(args: argparse.Namespace, out: Path, seed: int, epochs: int) -> list[str]:
    folder = args.runs / "folders" / FOLDERS["white"]
    command = [sys.executable, str(args.peer), "--dataset", "folder", "--dataroot", str(folder)]
    command += ["--imageSize", str(args.size), "--workers", "0", "--niter", str(epochs)]
    return [*command, "--manualSeed", str(seed + 1), "--outf", str(out)]  # its 0 is "random"


def train_peer(args: argparse.Namespace, out: Path, seed: int, epochs: int) -> str:
    """pytorch/examples' DCGAN for ``epochs`` (its length in epochs only), its last epoch's
    generator scored."""
    if (out / "eval.json").is_file():
        return str(out)
    last = out / f"netG_epoch_{epochs - 1}.pth"
    if last.is_file():  # trained before but not scored: score it (its time is not known)
        seconds = None
    else:
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with open(out / "peer.log", "w") as log:
            command = peer_command(args, out, seed, epochs)
            subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
        seconds = time.perf_counter() - start
    epochs = sorted(out.glob("netG_epoch_*.pth"), key=lambda p: int(p.stem.split("_")[-1]))
    generator = peer_generator(epochs[-1], args.size)
    images = to_uint8(generate(generator, EVAL_NUM, PEER_NOISE_DIM, seed=seed, noise="normal"))
    samples = out / "samples.npz"
    np.savez_compressed(samples, images=images.permute(0, 2, 3, 1).numpy())
    result = subprocess.run(
        [ganforge(), "eval", str(samples), "--dataset", "emoji", "--seed", str(seed), "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    (out / "eval.json").write_text(result.stdout)
    summary = {"epochs": len(epochs), "seconds": seconds, "checkpoint": epochs[-1].name}
    (out / "summary.json").write_text(json.dumps(summary) + "\n")
    (out / "machine.json").write_text(json.dumps(time_to_quality.machine(), indent=1) + "\n")
    return str(out)


def peer_generator(path: Path, size: int) -> RadfordGenerator:
    """The peer's saved generator as a ``radford`` generator: the same layers in the same order
    (``ConvTranspose`` and ``BatchNorm`` of 512-256-128-64 channels at 64 px), so its tensors
    are read by position; shapes are checked one by one. The peer's last ``ConvTranspose`` has
    no bias where ``radford``'s has one: it is set to zero, the same function."""
    generator = RadfordGenerator(PEER_NOISE_DIM, (3, size, size))
    theirs = list(torch.load(path, map_location="cpu", weights_only=True).values())
    ours = generator.state_dict()
    last = list(ours)[-1]
    if len(theirs) == len(ours) - 1 and last.endswith("bias"):
        theirs.append(torch.zeros_like(ours[last]))
    assert len(theirs) == len(ours), f"{path}: {len(theirs)} tensors, radford has {len(ours)}"
    for (name, mine), tensor in zip(ours.items(), theirs, strict=True):
        assert mine.shape == tensor.shape, f"{name}: {tuple(tensor.shape)} ≠ {tuple(mine.shape)}"
    generator.load_state_dict(dict(zip(ours, theirs, strict=True)))
    return generator.eval()


def run(args: argparse.Namespace) -> None:
    jobs = [(s, seed) for s in args.settings for seed in args.seeds]
    for done in time_to_quality.one_thread_each(
        jobs, lambda s, seed: train_one(args, s, seed), args.parallel
    ):
        print("done", done, flush=True)


def measure_speed(args: argparse.Namespace, setting: str) -> float:
    """Iterations per second of ``setting`` over ``--seconds`` (the peer: over its whole
    process, start-up included, as its runs are timed)."""
    out = args.runs / "calibration" / f"{setting}-{args.size}px"
    shutil.rmtree(out, ignore_errors=True)
    if setting == PEER:
        out.mkdir(parents=True)
        start = time.perf_counter()
        with open(out / "peer.log", "w") as log:
            try:
                command = peer_command(args, out, 0, 100_000)
                subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=args.seconds)
            except subprocess.TimeoutExpired:
                pass
        done = sum(line.startswith("[") for line in (out / "peer.log").read_text().splitlines())
        return done / (time.perf_counter() - start)
    flags = setting_flags(args, setting, 0)
    flags += ["--time-budget", str(args.seconds), "--eval-every", "0", "--final-eval-num", "0"]
    subprocess.run([ganforge(), "train", "--quiet", *flags, "--out", str(out)], check=True)
    summary = json.loads((out / "summary.json").read_text())
    return summary["steps"] / summary["train_time_s"]


def calibrate(args: argparse.Namespace) -> None:
    """Each setting's speed beside the anchor's, both training at once."""
    record = calibration_file(args)
    speeds = json.loads(record.read_text()) if record.is_file() else {}
    for setting in args.settings:
        pair = [(setting,), (ANCHOR,)]
        mine, anchor = time_to_quality.one_thread_each(pair, lambda s: measure_speed(args, s))
        speeds[setting] = {"it_s": mine, "anchor_it_s": anchor, "ratio": mine / anchor}
        speeds[setting]["machine"] = time_to_quality.machine_name(time_to_quality.machine())
        print(f"{setting}: {mine:.3f} it/s beside {ANCHOR}'s {anchor:.3f}", flush=True)
        record.write_text(json.dumps(speeds, indent=1) + "\n")


def read(folder: Path) -> dict:
    """One run's row: final scores (10,000 samples), iterations and seconds."""
    scored = folder / ("eval-emoji.json" if (folder / "eval-emoji.json").is_file() else "eval.json")
    final = json.loads(scored.read_text())["samples"]
    summary = json.loads((folder / "summary.json").read_text())
    row = {
        "run": folder.name,
        "fid": final["fid"],
        "precision": final["precision"],
        "recall": final["recall"],
        "classes": final["classes_covered"],
        "histogram": final.get("class_histogram"),
        "machine": time_to_quality.machine_name(time_to_quality.run_machine(folder)),
    }
    if (folder / "metrics.jsonl").is_file():  # a ganforge run
        records = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines() if x]
        row["steps"] = summary["steps"]
        row["seconds"] = summary["train_time_s"]
        row["curve"] = [(r["step"], r["fid"]) for r in records if "fid" in r]
    else:  # the peer
        row["steps"] = f"{summary['epochs']} epochs"
        row["seconds"] = summary["seconds"]
        row["curve"] = []
    return row


def _cell(values: list[float], digits: int = 2) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def earlier_groups(args: argparse.Namespace) -> dict[str, list[dict]]:
    """The rows of ``--earlier``, an earlier ``table``'s JSON, of the settings asked for: runs
    whose folders are gone, compared with new ones (on the same CPU model; see the docs)."""
    if not args.earlier:
        return {}
    groups = json.loads(args.earlier.read_text())
    return {
        group: rows
        for group, rows in groups.items()
        if group.rsplit("-", 1)[0] in (args.settings or [group.rsplit("-", 1)[0]])
    }


def table(args: argparse.Namespace) -> None:
    groups = earlier_groups(args)
    for folder in sorted(args.runs.glob("*-s[0-9]*")):
        group = folder.name.rsplit("-s", 1)[0]  # NAME-SIZEpx of NAME-SIZEpx-sSEED
        setting = group.rsplit("-", 1)[0]
        if (folder / "summary.json").is_file() and setting in (args.settings or [setting]):
            groups.setdefault(group, []).append(read(folder))
    lines = [
        "| setting | runs | FID (emoji evaluator) | precision | recall | categories ≥ 2% "
        "| iterations | FID per seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in groups.items():
        steps = [r["steps"] for r in rows]
        fids = [r["fid"] for r in rows]
        lines.append(
            f"| {name} | {len(rows)} | {_cell(fids)} "
            f"| {_cell([r['precision'] for r in rows])} | {_cell([r['recall'] for r in rows])} "
            f"| {', '.join(str(r['classes']) for r in rows)} | {', '.join(map(str, steps))} "
            f"| {', '.join(f'{fid:.1f}' for fid in fids)} |"
        )
    lines += ["", "What the evaluator classifies seed 0's samples as, in % of 10,000:", ""]
    for name, rows in groups.items():
        shares = rows[0]["histogram"] or {}
        cells = ", ".join(f"{category} {100 * share:.0f}" for category, share in shares.items())
        lines.append(f"- {name}: {cells}")
    machines = sorted({r["machine"] for rows in groups.values() for r in rows})
    text = "\n".join(lines) + f"\n\nMachine: {'; '.join(machines)}.\n"
    print(text)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(groups, indent=1) + "\n")


def figures(args: argparse.Namespace) -> None:
    """The FID-against-seconds chart of the 32 px settings and their seed-0 grids side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    earlier = earlier_groups(args)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, setting in enumerate(args.settings):
        folders = [args.runs / run_name(setting, args.size, seed) for seed in SEEDS]
        # ganforge's finished runs (the peer's have no curve)
        rows = [
            read(f)
            for f in folders
            if (f / "metrics.jsonl").is_file() and (f / "summary.json").is_file()
        ]
        for seed, row in enumerate(rows or earlier.get(f"{setting}-{args.size}px", [])):
            steps, fids = zip(*row["curve"], strict=True)
            fraction = [step / row["steps"] for step in steps]  # each run trained its budget
            ax.plot(fraction, fids, color=f"C{i}", alpha=0.8, label=setting if seed == 0 else None)
    ax.set(
        xlabel="training time, as a fraction of the equal budget", ylabel="FID (emoji evaluator)"
    )
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out.with_name(args.out.name + "-fid-seconds.png"), dpi=110)
    grids = []
    for setting in args.settings:
        folder = args.runs / run_name(setting, args.size, 0)
        if not folder.is_dir():
            continue  # an earlier run's: its grid is in its own figure
        grid = folder / "samples" / "final.png"
        if not grid.is_file():
            grid = sorted(folder.glob("fake_samples_epoch_*.png"))[-1]  # the peer's
        grids.append(Image.open(grid).convert("RGB"))
    height = max(g.height for g in grids)
    grids = [g.resize((g.width * height // g.height, height)) for g in grids]
    strip = time_to_quality.side_by_side(grids, gap=8)
    strip.save(args.out.with_name(args.out.name + "-grids.png"))
    print("wrote", args.out.with_name(args.out.name + "-fid-seconds.png"), "and the grids")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("prepare", "calibrate", "run", "table", "figures"):
        sub = commands.add_parser(name)
        sub.add_argument("--runs", type=Path, default=Path("runs/colour"))
        if name in ("calibrate", "run", "figures"):
            sub.add_argument("--settings", nargs="+", default=["radford-dcgan", "colour"])
            sub.add_argument("--size", type=int, default=32)
            sub.add_argument("--anchor-steps", type=int, default=400)
            sub.add_argument("--peer", type=Path, help="pytorch/examples' dcgan/main.py")
        if name == "calibrate":
            sub.add_argument("--seconds", type=float, default=90.0)
        if name == "run":
            sub.add_argument(
                "--minutes", type=float, help="a budget in minutes (replaces --anchor-steps)"
            )
            sub.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
            sub.add_argument("--parallel", type=int, default=2)
            sub.add_argument("--evaluations", type=int, default=EVALUATIONS, help="0: none")
        if name in ("table", "figures"):
            sub.add_argument("--out", type=Path, required=True)
            sub.add_argument(
                "--earlier", type=Path, help="an earlier table's JSON: its rows of --settings too"
            )
        if name == "table":
            sub.add_argument("--settings", nargs="+", help="only these (default: every run)")
    args = parser.parse_args()
    commands = {"prepare": prepare, "calibrate": calibrate, "run": run}
    commands.update(table=table, figures=figures)
    commands[args.command](args)


if __name__ == "__main__":
    main()
