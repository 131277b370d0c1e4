"""Issue 26's measurements: fine-tuning against training from scratch on 100 images, the
memorisation check by inversion (the projection table), and the cost of gradient accumulation.

Not a test: about an hour of trainings and projections on 2 cores, one at a time (each on
both cores). Parts, each a list of ``ganforge`` commands (``--dry-run`` prints them):

* ``transfer-emoji``: the ``colour`` preset on 100 Noto emoji of one category
  (``--dataset emoji-google --classes CATEGORY --train-size 100``; ``--emoji-category``,
  ``animals-and-nature`` by default, whose 31 held-out images put the FID floor at 37;
  ``people-and-body`` holds out 77), from a run on all
  Twemoji (``--emoji-source``: the colour benchmark's long run of the colour preset) against
  from scratch, the same ``--time-budget``, DiffAugment in both (the preset's), an EMA of 0.99
  (the preset's 0.999 averages over more iterations than a short run has), 3 seeds
  (``--emoji-steps N``: N iterations each instead, the same for both arms); each
  run's evaluation projects ``--inversion`` training and held-out images (100);
* ``transfer-mnist``: the ``fast`` preset with DiffAugment and batch 64 (of 100 images) on
  100 images of digits 5-9, from a run on digits 0-4 (trained here, 240 s) against from
  scratch, 3 seeds;
* ``projection``: ``ganforge eval --inversion 100`` (100 training and 100 held-out images, or as
  many as the held-out split has) on a ``dcgan`` run (300 s here), the given ``fast`` run and
  ``--emoji-source``; then the cases where copying is expected: the transfer runs, trained on
  100 images, and a ``fast`` run on 100 images of digits 5-9 without augmentation (180 s);
* ``accumulation``: the colour preset on Twemoji at ``--accumulate`` 1, 2 and 4, at batch 64
  (150 iterations) and 512 (20), 3 rounds in turn; the process's peak resident memory and
  images per second of training steps, from each run's ``summary.json``.

::

    python benchmarks/fine_tuning.py run --runs runs/i26 --parts transfer-emoji transfer-mnist \\
        projection accumulation --emoji-source runs/colour-long/colour-lr2e-4-32px-s0 \\
        --fast-run runs/fast-s0
    python benchmarks/fine_tuning.py table --runs runs/i26 --out benchmarks/fine-tuning
    python benchmarks/fine_tuning.py run --runs runs/i26-people --parts transfer-emoji \\
        --emoji-source runs/colour-long/colour-lr2e-4-32px-s0 --emoji-category people-and-body \\
        --emoji-steps 1000 --inversion 40
    python benchmarks/fine_tuning.py table --runs runs/i26-people \\
        --out benchmarks/fine-tuning-people
    python benchmarks/fine_tuning.py figures --runs runs/i26 --out docs/assets/fine-tuning
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import time_to_quality
from PIL import Image

SEEDS = (0, 1, 2)
QUIET = ["--quiet", "--eval-every", "0", "--final-eval-num", "0"]
INVERSION = 100
TRANSFERS = {
    "emoji": [
        *("--preset", "colour", "--dataset", "emoji-google"),
        *("--classes", "{category}", "--train-size", "100"),
        *("--time-budget", "150", "--ema", "0.99"),
        # The rate the colour preset had when these transfers ran (it is 1e-3 since 2026-12-07).
        *("--lr", "2e-4"),
    ],
    "mnist": [
        *("--preset", "fast", "--classes", "5,6,7,8,9", "--train-size", "100"),
        *("--time-budget", "90", "--augment", "diffaugment", "--batch-size", "64"),
    ],
}
MNIST_SOURCE = ["--preset", "fast", "--classes", "0,1,2,3,4", "--time-budget", "240"]
DCGAN_RUN = ["--preset", "dcgan", "--time-budget", "300"]
#: 100 images without augmentation, for long: where copying is expected.
MNIST_100_PLAIN = [
    *("--preset", "fast", "--classes", "5,6,7,8,9", "--train-size", "100"),
    *("--batch-size", "64", "--time-budget", "180"),
]
ARMS = ("finetune", "scratch")
ACCUMULATION = {64: 150, 512: 20}  # batch size: iterations
ROUNDS = 3


def ganforge(*args: str) -> list[str]:
    return [sys.executable, "-m", "ganforge", *args]


def commands(args: argparse.Namespace) -> list[tuple[list[str], Path | None]]:
    """Every command of the parts asked for, in order, each with the file its output goes to
    (an evaluation's JSON), or ``None``."""
    runs: Path = args.runs
    plan: list[tuple[list[str], Path | None]] = []

    def train(out: str, *flags: str, seed: int = 0) -> None:
        plan.append(
            (ganforge("train", *flags, "--seed", str(seed), *QUIET, "--out", str(runs / out)), None)
        )

    def evaluate(run: Path, name: str) -> None:
        command = ganforge("eval", str(run), "--inversion", str(args.inversion), "--json")
        plan.append((command, runs / f"{name}.eval.json"))

    for part in args.parts:
        if part.startswith("transfer-"):
            data = part.removeprefix("transfer-")
            source = args.emoji_source if data == "emoji" else runs / "mnist-source"
            if data == "mnist":
                train("mnist-source", *MNIST_SOURCE)
            flags = [flag.format(category=args.emoji_category) for flag in TRANSFERS[data]]
            if data == "emoji" and args.emoji_steps:  # equal iterations instead of equal time
                budget = flags.index("--time-budget")
                flags[budget : budget + 2] = ["--max-steps", str(args.emoji_steps)]
            for seed in SEEDS:
                train(f"{data}-finetune-s{seed}", *flags, "--init-from", str(source), seed=seed)
                train(f"{data}-scratch-s{seed}", *flags, seed=seed)
            for seed in SEEDS:
                for arm in ARMS:
                    evaluate(runs / f"{data}-{arm}-s{seed}", f"{data}-{arm}-s{seed}")
        elif part == "projection":
            train("dcgan-300s", *DCGAN_RUN)
            for run in (runs / "dcgan-300s", args.fast_run, args.emoji_source):
                evaluate(run, f"proj-{run.name}")
            train("mnist100-plain", *MNIST_100_PLAIN)
            evaluate(runs / "mnist100-plain", "proj-mnist100-plain")
        elif part == "accumulation":
            for round_ in range(1, ROUNDS + 1):
                for batch, steps in ACCUMULATION.items():
                    for k in (1, 2, 4):
                        train(
                            f"accum/b{batch}-k{k}-r{round_}",
                            *(
                                "--preset",
                                "colour",
                                "--dataset",
                                "emoji",
                                "--batch-size",
                                str(batch),
                            ),
                            *("--accumulate", str(k), "--max-steps", str(steps)),
                            *("--sample-every", "100000"),
                        )
    return plan


def run(args: argparse.Namespace) -> None:
    for command, output in commands(args):
        print(" ".join(command), f"> {output}" if output else "", flush=True)
        if args.dry_run:
            continue
        with open(output or "/dev/null", "w") as stdout:
            subprocess.run(command, stdout=stdout, stderr=subprocess.DEVNULL, check=True)


def _mean_sd(values: list[float], digits: int = 2) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    spread = statistics.stdev(values)
    each = ", ".join(f"{v:.{digits}f}" for v in values)
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f} ({each})"


def _median_range(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def _finished(path: Path) -> bool:
    """Whether an evaluation has written its JSON (the file exists from its start)."""
    return path.is_file() and path.stat().st_size > 0


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _histogram(scores: dict) -> str:
    """The classes the evaluator gives the images, the three most frequent."""
    shares = sorted(scores["class_histogram"].items(), key=lambda kv: -kv[1])
    return ", ".join(f"{name} {share:.2f}" for name, share in shares[:3])


def table(args: argparse.Namespace) -> None:
    runs: Path = args.runs
    record: dict = {
        "machine": time_to_quality.machine(),
        **{part: {} for part in ("transfer", "projection", "accumulation")},
    }
    lines = [time_to_quality.machine_line(record["machine"])]
    section = [
        "",
        "## Transfer: fine-tuned against from scratch, the same time budget",
        "",
        "| data | arm | FID | precision | recall | inversion ratio (train / held-out) "
        "| iterations | classes of the samples (seed 0) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for data in TRANSFERS:
        for arm in ARMS:
            names = [f"{data}-{arm}-s{seed}" for seed in SEEDS]
            names = [name for name in names if _finished(runs / f"{name}.eval.json")]
            if not names:  # the seeds evaluated so far: the table says which
                continue
            results = [_read(runs / f"{name}.eval.json") for name in names]
            steps = [_read(runs / name / "summary.json")["steps"] for name in names]
            column = {
                key: [r["samples"][key] for r in results] for key in ("fid", "precision", "recall")
            }
            # An evaluation may leave the inversion out (`run` always asks for it).
            ratios = [r["inversion"]["ratio"] for r in results if "inversion" in r]
            floor = results[0]["floor"]
            record["transfer"][f"{data}-floor"] = {
                **{k: floor[k] for k in ("num", "fid", "precision", "recall")},
                "classes": _histogram(floor),
            }
            record["transfer"][f"{data}-{arm}"] = {
                **column,
                "inversion_ratio": ratios,
                "steps": steps,
            }
            label = arm
            if len(names) < len(SEEDS):
                label += f" (seeds {', '.join(name.rsplit('-s', 1)[1] for name in names)})"
            rows.append(
                f"| {data} | {label} | {_mean_sd(column['fid'])} | {_mean_sd(column['precision'])} "
                f"| {_mean_sd(column['recall'])} | {_mean_sd(ratios) if ratios else '-'} "
                f"| {', '.join(map(str, steps))} | {_histogram(results[0]['samples'])} |"
            )
    for data in TRANSFERS:
        floor = record["transfer"].get(f"{data}-floor")
        if floor:
            rows.append(
                f"\n{data}: the floor, the {floor['num']} training images themselves scored the "
                f"same way: FID {floor['fid']:.2f}, precision {floor['precision']:.3f}, "
                f"recall {floor['recall']:.3f}; their classes by the evaluator: {floor['classes']}."
            )
    lines += section + rows if rows else []
    section = [
        "",
        "## Projection: 100 training and 100 held-out images (fewer where fewer are held out)",
        "",
        "| run | images each side | train distance | held-out distance | ratio | s per image |",
        "|---|---|---|---|---|---|",
    ]
    rows = []
    transfers = [runs / f"{data}-{arm}-s0.eval.json" for data in TRANSFERS for arm in ARMS]
    projected = sorted(runs.glob("proj-*.eval.json")) + transfers
    for path in filter(_finished, projected):
        inverted = _read(path).get("inversion")
        if inverted is None:
            continue
        name = path.name.removesuffix(".eval.json").removeprefix("proj-")
        record["projection"][name] = inverted
        rows.append(
            f"| {name} | {inverted['num']} | {inverted['train_distance']:.4f} "
            f"| {inverted['test_distance']:.4f} | {inverted['ratio']:.3f} "
            f"| {inverted['seconds_per_image']:.2f} |"
        )
    lines += section + rows if rows else []
    section = [
        "",
        "## Accumulation: the colour preset on Twemoji, 3 rounds",
        "",
        "| batch | K | images per second (median of 3) | peak resident memory, MB (median of 3) |",
        "|---|---|---|---|",
    ]
    rows = []
    for batch in ACCUMULATION:
        for k in (1, 2, 4):
            summaries = [
                _read(path / "summary.json")
                for path in sorted((runs / "accum").glob(f"b{batch}-k{k}-r*"))
                if (path / "summary.json").is_file()
            ]
            if not summaries:
                continue
            speed = [s["images_per_s"] for s in summaries]
            memory = [s["peak_memory_mb"] for s in summaries]
            record["accumulation"][f"b{batch}-k{k}"] = {
                "images_per_s": speed,
                "peak_memory_mb": memory,
            }
            rows.append(f"| {batch} | {k} | {_median_range(speed)} | {_median_range(memory)} |")
    lines += section + rows if rows else []
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print("\n".join(lines))


def figures(args: argparse.Namespace) -> None:
    """The seed-0 grids of each transfer arm and the inversion grids of the projection runs."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for data in TRANSFERS:
        grids = [args.runs / f"{data}-{arm}-s0" / "samples" / "final.png" for arm in ARMS]
        if all(grid.is_file() for grid in grids):
            images = [Image.open(grid).convert("RGB") for grid in grids]
            time_to_quality.side_by_side(images, gap=8).save(f"{args.out}-{data}.png")
        for arm in ARMS:
            inversion = args.runs / f"{data}-{arm}-s0" / "inversion.png"
            if inversion.is_file():
                shutil.copyfile(inversion, f"{args.out}-inversion-{data}-{arm}.png")
    projected = (args.runs / "dcgan-300s", args.runs / "mnist100-plain")
    for run in (*projected, args.fast_run, args.emoji_source):
        if run and (run / "inversion.png").is_file():
            shutil.copyfile(run / "inversion.png", f"{args.out}-inversion-{run.name}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands_ = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "table", "figures"):
        sub = commands_.add_parser(name)
        sub.add_argument("--runs", type=Path, required=True)
        sub.add_argument("--emoji-source", type=Path)
        sub.add_argument("--fast-run", type=Path)
        if name == "run":
            sub.add_argument(
                "--parts",
                nargs="+",
                required=True,
                choices=["transfer-emoji", "transfer-mnist", "projection", "accumulation"],
            )
            sub.add_argument("--dry-run", action="store_true")
            sub.add_argument("--emoji-category", default="animals-and-nature")
            sub.add_argument(
                "--emoji-steps",
                type=int,
                help="the emoji arms train this many iterations instead of 150 s (both arms "
                "have the same networks, so the same time, and a shared machine cannot skew it)",
            )
            sub.add_argument("--inversion", type=int, default=INVERSION, help="images a side")
        else:
            sub.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    {"run": run, "table": table, "figures": figures}[args.command](args)


if __name__ == "__main__":
    main()
