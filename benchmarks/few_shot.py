"""The few-shot benchmark: the dcgan networks trained on 100, 1,000 and 5,000 class-balanced
images of MNIST and Fashion-MNIST (``--train-subset balanced``: the first N/10 of each class),
without augmentation, with DiffAugment and with ADA, 3 seeds each, for a fixed number of
iterations of batch 64 (100 images cannot fill a batch of 128).

Not a test: 54 runs of minutes each, hours in all on a 2-core CPU. Fashion-MNIST needs
Debian's ``dataset-fashion-mnist`` (``ganforge data fetch fashion-mnist`` says how). ``run``
trains, one run at a time, whatever is not trained yet (an interrupted run is resumed), so the
benchmark can be spread over several sessions (``--datasets``, ``--sizes``, ``--augments`` and
``--seeds`` pick the runs, so a machine can take a share of them); ``table`` writes the FID,
recall and memorisation ratio of each cell (mean and standard deviation over seeds) from each
run's final 10,000-sample evaluation, and a chart of FID and memorisation ratio against the
number of images. The project's machines change between sessions and take their run folders
with them: ``table`` keeps the runs recorded in ``OUT.json`` by earlier sessions beside the runs
in ``--runs``, each with the CPU it ran on (a cell names its machine; compare cells of one
machine only)::

    python benchmarks/few_shot.py run --runs runs/few-shot
    python benchmarks/few_shot.py run --datasets mnist --sizes 100 --augments ada --seeds 0
    python benchmarks/few_shot.py table --runs runs/few-shot --out benchmarks/few-shot
    python benchmarks/few_shot.py grids --runs runs/few-shot --dataset fashion-mnist \
        --size 1000 --seed 0 --out docs/few-shot-fashion-mnist-1000.png
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from datetime import UTC, datetime
from pathlib import Path

import time_to_quality

DATASETS = ("mnist", "fashion-mnist")
SIZES = (100, 1_000, 5_000)
AUGMENTS = ("none", "diffaugment", "ada")
SEEDS = (0, 1, 2)
ITERATIONS = 2_000
BATCH_SIZE = 64


def label(dataset: str, size: int, augment: str) -> str:
    return f"{dataset}-{size}-{augment}"


def run(args: argparse.Namespace) -> None:
    for dataset, size, augment in itertools.product(args.datasets, args.sizes, args.augments):
        flags = ["--dataset", dataset, "--train-size", str(size), "--train-subset", "balanced"]
        flags += ["--augment", augment, "--batch-size", str(BATCH_SIZE)]
        # Iterations, not epochs, are fixed: a large --epochs leaves --max-steps to end the run.
        flags += ["--epochs", "100000", "--max-steps", str(args.iterations), "--eval-every", "0"]
        time_to_quality.run(
            argparse.Namespace(
                presets=["dcgan"],
                seeds=args.seeds,
                runs=args.runs,
                label=label(dataset, size, augment),
                extra=flags,
            )
        )


def _cell(runs: list[dict], key: str, digits: int = 2) -> str:
    values = [r[key] for r in runs]
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def recorded_runs(runs_folder: Path, record: Path | None) -> dict[str, dict]:
    """Every run by name: those in ``record`` (a table's ``.json`` from earlier sessions, whose
    run folders went with their machines), then those in ``runs_folder``, which win."""
    runs = {}
    if record is not None and record.is_file():
        runs = {Path(r["run"]).name: r for r in json.loads(record.read_text())["runs"]}
    for folder in sorted(runs_folder.glob("*/eval.json")):
        runs[folder.parent.name] = time_to_quality.read_run(folder.parent)
    return runs


def table(args: argparse.Namespace) -> None:
    lines = [
        "| data set | images | augment | seeds | FID | precision | recall | classes ≥ 2% "
        "| memorisation ratio | machine |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    record = args.out.with_suffix(".json") if args.out else None
    every_run = recorded_runs(args.runs, record)
    cells: dict[tuple[str, int, str], list[dict]] = {}
    machines: dict[str, dict] = {}
    for dataset, size, augment in itertools.product(DATASETS, SIZES, AUGMENTS):
        name = label(dataset, size, augment)
        runs = [every_run[f"{name}-s{seed}"] for seed in SEEDS if f"{name}-s{seed}" in every_run]
        if not runs:
            continue
        cells[dataset, size, augment] = runs
        names = sorted({time_to_quality.machine_name(r["machine"]) for r in runs})
        machines.update({time_to_quality.machine_name(r["machine"]): r["machine"] for r in runs})
        lines.append(
            f"| {dataset} | {size:,} | {augment} | {', '.join(str(r['seed']) for r in runs)} | "
            f"{_cell(runs, 'final_fid')} | {_cell(runs, 'precision', 3)} | "
            f"{_cell(runs, 'recall', 3)} | {_cell(runs, 'classes_covered', 1)} | "
            f"{_cell(runs, 'memorisation_ratio')} | {' + '.join(names)} |"
        )
    lines.append("")
    lines += [time_to_quality.machine_line(info) for info in machines.values()]
    text = "\n".join(lines)
    print(text)
    if args.out and cells:
        runs = [run for runs in cells.values() for run in runs]
        result = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "runs": runs}
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(text + "\n")
        chart(cells, args.out.with_suffix(".png"))


def chart(cells: dict[tuple[str, int, str], list[dict]], path: Path) -> None:
    """FID and memorisation ratio against the number of training images, one line per
    augmentation (mean over seeds, bars: the seeds' range), one row per data set (``cells``:
    the runs of each (data set, images, augmentation) that has any)."""
    from matplotlib import ticker
    from matplotlib.figure import Figure

    datasets = [d for d in DATASETS if any(key[0] == d for key in cells)]
    fig = Figure(figsize=(9, 3.4 * len(datasets)), dpi=100)
    axes = fig.subplots(len(datasets), 2, squeeze=False)
    for row, dataset in zip(axes, datasets, strict=True):
        for augment, colour in zip(AUGMENTS, ("tab:gray", "tab:blue", "tab:green"), strict=True):
            sizes = [n for n in SIZES if (dataset, n, augment) in cells]
            if not sizes:
                continue
            for ax, key in zip(row, ("final_fid", "memorisation_ratio"), strict=True):
                values = [[r[key] for r in cells[dataset, n, augment]] for n in sizes]
                means = [statistics.mean(v) for v in values]
                below = [m - min(v) for m, v in zip(means, values, strict=True)]
                above = [max(v) - m for m, v in zip(means, values, strict=True)]
                ax.errorbar(
                    sizes,
                    means,
                    yerr=[below, above],
                    marker="o",
                    capsize=3,
                    color=colour,
                    label=augment,
                )
        fid_ax, ratio_ax = row
        fid_ax.set(xscale="log", yscale="log", xlabel="training images", ylabel="FID")
        fid_ax.set_title(f"{dataset}: FID (test split)")
        ratio_ax.axhline(1.0, color="black", linewidth=0.6, linestyle=":")
        ratio_ax.set(xscale="log", xlabel="training images", ylabel="memorisation ratio")
        ratio_ax.set_title(f"{dataset}: memorisation (< 1: copying)")
        for ax in row:
            # Plain numbers on the log axes: 100, 1,000, 5,000 images; FID 5, 10, 20, 50.
            ax.set_xticks(SIZES, [f"{n:,}" for n in SIZES])
            ax.xaxis.set_minor_locator(ticker.NullLocator())
        fid_ax.yaxis.set_major_locator(ticker.FixedLocator([2, 5, 10, 20, 50, 100, 200]))
        fid_ax.yaxis.set_major_formatter(ticker.StrMethodFormatter("{x:g}"))
        fid_ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        fid_ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def grids(args: argparse.Namespace) -> None:
    """The last sample grids of one data set, size and seed, without augmentation, with
    DiffAugment and with ADA, side by side (left to right) in one PNG."""
    from PIL import Image

    name = f"step_{args.iterations:07d}.png"
    folders = [args.runs / f"{label(args.dataset, args.size, a)}-s{args.seed}" for a in AUGMENTS]
    images = [Image.open(folder / "samples" / name).convert("RGB") for folder in folders]
    time_to_quality.side_by_side(images, gap=10).save(args.out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="train the runs not trained yet")
    run_parser.add_argument("--runs", type=Path, default=Path("runs/few-shot"))
    run_parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    run_parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    run_parser.add_argument("--augments", nargs="+", default=list(AUGMENTS), choices=AUGMENTS)
    run_parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    run_parser.add_argument("--iterations", type=int, default=ITERATIONS)
    table_parser = commands.add_parser("table", help="the table of the runs trained so far")
    table_parser.add_argument("--runs", type=Path, default=Path("runs/few-shot"))
    table_parser.add_argument("--out", type=Path, help="write OUT.md, OUT.json and OUT.png")
    grids_parser = commands.add_parser("grids", help="one cell's final grids side by side")
    grids_parser.add_argument("--runs", type=Path, default=Path("runs/few-shot"))
    grids_parser.add_argument("--dataset", default="mnist", choices=DATASETS)
    grids_parser.add_argument("--size", type=int, default=1_000)
    grids_parser.add_argument("--seed", type=int, default=0)
    grids_parser.add_argument("--iterations", type=int, default=ITERATIONS)
    grids_parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args()
    {"run": run, "table": table, "grids": grids}[args.command](args)


if __name__ == "__main__":
    main()
