"""Issue 26's measurements: fine-tuning against training from scratch on 100 images, the
memorisation check by inversion (the projection table), and the cost of gradient accumulation.

Not a test: about an hour of trainings and projections on 2 cores. Parts, each a list of
``ganforge`` commands (``--dry-run`` prints them), run one at a time on both cores, or
``--parallel 2`` at a time on one thread each (a training and its evaluation stay in order):

* ``transfer-emoji``: the ``colour`` preset on 100 Noto emoji of one category
  (``--dataset emoji-google --classes CATEGORY --train-size 100 --train-subset spread``:
  spread over the category's files, which are sorted by subcategory, as its held-out images
  are; ``--emoji-category``, ``people-and-body`` by default, 386 images of which 77 are held
  out), from a run on all Twemoji (``--emoji-source``: the colour benchmark's 15-minute run of
  the preset) against from scratch, for the same iterations (``--emoji-steps``, 1,000: both
  arms have the same networks, so the same time, and a shared machine cannot skew it),
  DiffAugment in all (the preset's), an EMA of 0.99 (the preset's 0.999 averages over more
  iterations than a short run has), 3 seeds, an in-training FID every 250 iterations for the
  curves; each run's evaluation projects ``--inversion`` training and held-out images (100,
  or as many as are held out);
* ``transfer-mnist``: the ``fast`` preset with DiffAugment and batch 64 (of 100 images) on
  100 images of digits 5-9, 2,000 iterations, from a ``fast`` run on digits 0-4 (trained
  here, the preset's 3 epochs) against from scratch, 3 seeds;
* both transfers have a third arm, fine-tuned with the discriminator's first 2 blocks frozen
  (``--freeze-d 2``, FreezeD);
* ``projection``: ``ganforge eval --inversion 100`` (100 training and 100 held-out images, or as
  many as the held-out split has) on a ``dcgan`` run (300 s here), the given ``fast`` run and
  ``--emoji-source``; then the cases where copying is expected: the transfer runs, trained on
  100 images, and a ``fast`` run on 100 images of digits 5-9 without augmentation (180 s);
* ``accumulation``: the colour preset on Twemoji at ``--accumulate`` 1, 2 and 4, at batch 64
  (150 iterations) and 512 (20), 3 rounds in turn; the process's peak resident memory and
  images per second of training steps, from each run's ``summary.json``.

The transfer tables of 2026-12-06 (``benchmarks/fine-tuning.md`` and
``fine-tuning-people.md``: the first 100 images of a category, the preset at lr 2e-4 and its
source from the colour benchmark's long run, 150 s or 1,000 iterations) came from this file
at commit 3d32807.

::

    python benchmarks/fine_tuning.py run --runs runs/i26 --parts projection accumulation \\
        --emoji-source runs/colour-long/colour-lr2e-4-32px-s0 --fast-run runs/fast-s0
    python benchmarks/fine_tuning.py table --runs runs/i26 --out benchmarks/fine-tuning
    python benchmarks/fine_tuning.py run --runs runs/i26-transfer --parallel 2 \\
        --parts transfer-mnist
    python benchmarks/fine_tuning.py run --runs runs/i26-transfer --parallel 2 \\
        --parts transfer-emoji --emoji-source runs/colour-15min/colour-bf16-32px-s0 --inversion 40
    python benchmarks/fine_tuning.py table --runs runs/i26-transfer \\
        --out benchmarks/fine-tuning-transfer
    python benchmarks/fine_tuning.py figures --runs runs/i26-transfer \\
        --out docs/assets/fine-tuning-transfer
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
INVERSION = 100
#: An in-training FID (2,000 samples) every this many iterations: the transfer's curves.
CURVE_EVERY = 250
TRANSFERS = {
    "emoji": [
        *("--preset", "colour", "--dataset", "emoji-google"),
        *("--classes", "{category}", "--train-size", "100", "--train-subset", "spread"),
        *("--max-steps", "{emoji_steps}", "--ema", "0.99"),
    ],
    "mnist": [
        *("--preset", "fast", "--classes", "5,6,7,8,9", "--train-size", "100"),
        *("--max-steps", "2000", "--augment", "diffaugment", "--batch-size", "64"),
    ],
}
#: Each arm's flags on top of the transfer's; ``{source}``: the run it starts from.
ARMS = {
    "finetune": ["--init-from", "{source}"],
    "finetune-freezed2": ["--init-from", "{source}", "--freeze-d", "2"],
    "scratch": [],
}
MNIST_SOURCE = ["--preset", "fast", "--classes", "0,1,2,3,4"]
DCGAN_RUN = ["--preset", "dcgan", "--time-budget", "300"]
#: 100 images without augmentation, for long: where copying is expected.
MNIST_100_PLAIN = [
    *("--preset", "fast", "--classes", "5,6,7,8,9", "--train-size", "100"),
    *("--batch-size", "64", "--time-budget", "180"),
]
ACCUMULATION = {64: 150, 512: 20}  # batch size: iterations
ROUNDS = 3


def ganforge(*args: str) -> list[str]:
    return [sys.executable, "-m", "ganforge", *args]


#: One command and the file its output goes to (an evaluation's JSON), or ``None``.
Command = tuple[list[str], Path | None]


def commands(args: argparse.Namespace) -> list[list[list[Command]]]:
    """Every command of the parts asked for, as stages run in order, each a list of chains
    that may run side by side (a chain's commands run in order: a training, its evaluation)."""
    runs: Path = args.runs
    stages: list[list[list[Command]]] = []

    def train(out: str, *flags: str, seed: int = 0, curve: bool = False) -> Command:
        every = str(CURVE_EVERY if curve else 0)
        quiet = ["--quiet", "--eval-every", every, "--final-eval-num", "0"]
        return ganforge(
            "train", *flags, "--seed", str(seed), *quiet, "--out", str(runs / out)
        ), None

    def evaluate(run: Path, name: str) -> Command:
        command = ganforge("eval", str(run), "--inversion", str(args.inversion), "--json")
        return command, runs / f"{name}.eval.json"

    def alone(*chain: Command) -> None:
        stages.append([list(chain)])

    for part in args.parts:
        if part.startswith("transfer-"):
            data = part.removeprefix("transfer-")
            source = args.emoji_source if data == "emoji" else runs / "mnist-source"
            if data == "mnist":
                alone(train("mnist-source", *MNIST_SOURCE))
            fill = {"category": args.emoji_category, "emoji_steps": args.emoji_steps}
            flags = [flag.format(**fill) for flag in TRANSFERS[data]]
            chains = []
            for seed in SEEDS:
                for arm, extra in ARMS.items():
                    name = f"{data}-{arm}-s{seed}"
                    arm_flags = [flag.format(source=source) for flag in extra]
                    run_ = train(name, *flags, *arm_flags, seed=seed, curve=True)
                    chains.append([run_, evaluate(runs / name, name)])
            stages.append(chains)
        elif part == "projection":
            alone(train("dcgan-300s", *DCGAN_RUN))
            for run in (runs / "dcgan-300s", args.fast_run, args.emoji_source):
                alone(evaluate(run, f"proj-{run.name}"))
            alone(
                train("mnist100-plain", *MNIST_100_PLAIN),
                evaluate(runs / "mnist100-plain", "proj-mnist100-plain"),
            )
        elif part == "accumulation":  # one at a time: the timings
            for round_ in range(1, ROUNDS + 1):
                for batch, steps in ACCUMULATION.items():
                    for k in (1, 2, 4):
                        alone(
                            train(
                                f"accum/b{batch}-k{k}-r{round_}",
                                *("--preset", "colour", "--dataset", "emoji"),
                                *("--batch-size", str(batch), "--accumulate", str(k)),
                                *("--max-steps", str(steps), "--sample-every", "100000"),
                            )
                        )
    return stages


def _run_chain(chain: list[Command], dry_run: bool) -> None:
    for command, output in chain:
        print(" ".join(command), f"> {output}" if output else "", flush=True)
        if dry_run:
            continue
        with open(output or "/dev/null", "w") as stdout:
            subprocess.run(command, stdout=stdout, stderr=subprocess.DEVNULL, check=True)


def run(args: argparse.Namespace) -> None:
    for stage in commands(args):
        if args.parallel > 1:
            chains = [(chain,) for chain in stage]
            time_to_quality.one_thread_each(
                chains, lambda chain: _run_chain(chain, args.dry_run), args.parallel
            )
        else:  # one at a time, on every core
            for chain in stage:
                _run_chain(chain, args.dry_run)


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


def _curves(folders: list[Path]) -> list[tuple[int, list[float]]]:
    """The in-training FIDs of runs trained alike: ``(step, [FID of each run])`` at the steps
    every run evaluated at."""
    by_run = []
    for folder in folders:
        records = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines() if x]
        by_run.append({r["step"]: r["fid"] for r in records if "fid" in r})
    steps = sorted(set.intersection(*(set(run) for run in by_run))) if by_run else []
    return [(step, [run[step] for run in by_run]) for step in steps]


def table(args: argparse.Namespace) -> None:
    runs: Path = args.runs
    record: dict = {
        "machine": time_to_quality.machine(),
        **{part: {} for part in ("transfer", "projection", "accumulation")},
    }
    lines = [time_to_quality.machine_line(record["machine"])]
    section = [
        "",
        "## Transfer: fine-tuned against from scratch, the same iterations",
        "",
        "| data | arm | FID | KID | precision | recall | inversion ratio (train / held-out) "
        "| iterations | classes of the samples (seed 0) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    curves: list[str] = []
    header: list[str] = []
    for data in TRANSFERS:
        fids: dict[str, dict[str, float]] = {}  # arm: seed: FID
        for arm in ARMS:
            names = [f"{data}-{arm}-s{seed}" for seed in SEEDS]
            names = [name for name in names if _finished(runs / f"{name}.eval.json")]
            if not names:  # the seeds evaluated so far: the table says which
                continue
            seeds = [name.rsplit("-s", 1)[1] for name in names]
            results = [_read(runs / f"{name}.eval.json") for name in names]
            steps = [_read(runs / name / "summary.json")["steps"] for name in names]
            column = {
                key: [r["samples"][key] for r in results]
                for key in ("fid", "kid", "precision", "recall")
            }
            fids[arm] = dict(zip(seeds, column["fid"], strict=True))
            # An evaluation may leave the inversion out (`run` always asks for it).
            ratios = [r["inversion"]["ratio"] for r in results if "inversion" in r]
            floor = results[0]["floor"]
            record["transfer"][f"{data}-floor"] = {
                **{k: floor[k] for k in ("num", "fid", "kid", "precision", "recall")},
                "classes": _histogram(floor),
            }
            curve = _curves([runs / name for name in names])
            record["transfer"][f"{data}-{arm}"] = {
                **column,
                "seeds": seeds,
                "inversion_ratio": ratios,
                "steps": steps,
                "curve": curve,
            }
            label = arm if len(names) == len(SEEDS) else f"{arm} (seeds {', '.join(seeds)})"
            rows.append(
                f"| {data} | {label} | {_mean_sd(column['fid'])} | {_mean_sd(column['kid'], 3)} "
                f"| {_mean_sd(column['precision'])} | {_mean_sd(column['recall'])} "
                f"| {_mean_sd(ratios) if ratios else '-'} "
                f"| {', '.join(map(str, steps))} | {_histogram(results[0]['samples'])} |"
            )
            if curve:
                curves.append(
                    f"| {data} | {arm} | "
                    + " | ".join(f"{_mean_sd(fid, 1)}" for _, fid in curve)
                    + " |"
                )
                if len(curve) > len(header):  # the longest run's evaluations
                    header = [str(step) for step, _ in curve]
        for arm, by_seed in fids.items():
            scratch = fids.get("scratch", {})
            shared = [seed for seed in by_seed if seed in scratch]
            if arm != "scratch" and shared:
                each = ", ".join(f"{by_seed[seed] / scratch[seed]:.2f}" for seed in shared)
                rows.append(f"| {data} | {arm} / scratch, FID per seed | {each} | | | | | | |")
    for data in TRANSFERS:
        floor = record["transfer"].get(f"{data}-floor")
        if floor:
            rows.append(
                f"\n{data}: the floor, the {floor['num']} training images themselves scored the "
                f"same way: FID {floor['fid']:.2f}, KID {floor['kid']:.3f}, precision "
                f"{floor['precision']:.3f}, recall {floor['recall']:.3f}; their classes by the "
                f"evaluator: {floor['classes']}."
            )
    if curves:
        rows += [
            "",
            f"FID during training (2,000 samples, every {CURVE_EVERY} iterations), mean ± sd "
            "over the seeds:",
            "",
            "| data | arm | " + " | ".join(header) + " |",
            "|---|---|" + "---|" * len(header),
            *curves,
        ]
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


def _curve_chart(runs: Path, out: Path) -> None:
    """One panel per transfer: each arm's in-training FID against iterations, a line a seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        data for data in TRANSFERS if (runs / f"{data}-scratch-s0" / "metrics.jsonl").is_file()
    ]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, data in zip(axes[0], panels, strict=True):
        for i, arm in enumerate(ARMS):
            folders = [runs / f"{data}-{arm}-s{seed}" for seed in SEEDS]
            for seed, folder in enumerate(f for f in folders if (f / "metrics.jsonl").is_file()):
                steps, fids = zip(*[(step, fid[0]) for step, fid in _curves([folder])], strict=True)
                ax.plot(steps, fids, color=f"C{i}", alpha=0.8, label=arm if seed == 0 else None)
        ax.set(title=data, xlabel="iterations", ylabel="FID (2,000 samples)", yscale="log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("wrote", out)


def figures(args: argparse.Namespace) -> None:
    """The seed-0 grids of each transfer arm side by side, the transfer's FID against
    iterations, and the inversion grids of the projection runs."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _curve_chart(args.runs, Path(f"{args.out}-curves.png"))
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
            sub.add_argument("--emoji-category", default="people-and-body")
            sub.add_argument(
                "--emoji-steps",
                type=int,
                default=1000,
                help="the emoji arms' iterations (all arms have the same networks, so the same "
                "time, and a shared machine cannot skew it)",
            )
            sub.add_argument(
                "--parallel",
                type=int,
                default=1,
                help="commands at a time (above 1: each on one thread)",
            )
            sub.add_argument("--inversion", type=int, default=INVERSION, help="images a side")
        else:
            sub.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    {"run": run, "table": table, "figures": figures}[args.command](args)


if __name__ == "__main__":
    main()
