"""The GAN hacks on the ``dcgan`` preset, 3 seeds each, against the plain ``dcgan``.

Each run is ``ganforge train --preset dcgan --seed S FLAGS --out RUNS/NAME-sS``: the preset's
own settings (5 epochs of full MNIST, FID every 500 iterations, the final evaluation on 10,000
samples with standing BatchNorm statistics) with one hack switched on, or none for the baseline.

Not a test: 18 runs of 7 to 10 minutes each on a 2-core CPU. ``run`` trains whatever is not
trained yet (an interrupted run is resumed); ``table`` writes the table of the runs trained so
far (``.md``, and ``.json`` with every run)::

    python benchmarks/hacks.py run --runs runs/hacks
    python benchmarks/hacks.py table --runs runs/hacks --out benchmarks/hacks

The project's machines change between sessions and take their run folders with them, and one
seed's FID moves between two CPUs: ``table`` keeps the runs recorded in ``OUT.json`` by earlier
sessions, each with its machine, and compares each hack with the baseline of its own machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import UTC, datetime
from pathlib import Path

import time_to_quality

#: Each run's name (its folders' prefix) and its flags: the plain preset, then one setting of
#: each hack, the usual one (Chintala et al.'s "How to train a GAN"; TTUR: Heusel et al. 2017
#: with the 4:1 ratio of Zhang et al.'s SAGAN, around the preset's 1e-3 in the log).
HACKS = {
    "baseline": [],
    "real-label-0.9": ["--real-label", "0.9"],
    "flip-labels-0.05": ["--flip-labels", "0.05"],
    "instance-noise-0.1": ["--instance-noise", "0.1"],
    "noise-normal": ["--noise", "normal"],
    "ttur-g5e-4-d2e-3": ["--lr-g", "5e-4", "--lr-d", "2e-3"],
}
SEEDS = (0, 1, 2)


def run(args: argparse.Namespace) -> None:
    for name in args.hacks:
        for seed in args.seeds:
            flags = ["--preset", "dcgan", "--seed", str(seed), *HACKS[name]]
            time_to_quality.train_or_resume(args.runs / f"{name}-s{seed}", flags)


def _scores(folder: Path, name: str, seed: int) -> dict:
    samples = json.loads((folder / "eval.json").read_text())["samples"]
    keys = ("fid", "precision", "recall", "classes_covered")
    return {
        "hack": name,
        "seed": seed,
        "run": str(folder),
        **{key: samples[key] for key in keys},
        "machine": time_to_quality.run_machine(folder),
    }


def recorded_runs(runs_folder: Path, record: Path) -> list[dict]:
    """Every run: those in ``record`` (an earlier table's ``.json``), then those in
    ``runs_folder``, which replace a recorded run of the same hack, seed and machine."""
    runs = {}
    if record.is_file():
        for entry in json.loads(record.read_text())["runs"]:
            key = entry["hack"], entry["seed"], time_to_quality.machine_name(entry["machine"])
            runs[key] = entry
    for name in HACKS:
        for seed in SEEDS:
            folder = runs_folder / f"{name}-s{seed}"
            if (folder / "eval.json").is_file():
                entry = _scores(folder, name, seed)
                runs[name, seed, time_to_quality.machine_name(entry["machine"])] = entry
    return list(runs.values())


def _mean_sd(values: list[float | None], digits: int) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def table(args: argparse.Namespace) -> None:
    every_run = recorded_runs(args.runs, args.out.with_suffix(".json"))
    machines = {time_to_quality.machine_name(r["machine"]): r["machine"] for r in every_run}
    lines = [
        "| machine | hack | flags | FID at seeds | FID | FID against the baseline | precision "
        "| recall | classes ≥ 2% |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    groups: dict[tuple[str, str], list[dict]] = {}
    for entry in sorted(every_run, key=lambda r: r["seed"]):
        machine = time_to_quality.machine_name(entry["machine"])
        groups.setdefault((machine, entry["hack"]), []).append(entry)
    for machine in machines:
        baseline = [r["fid"] for r in groups.get((machine, "baseline"), [])]
        for name, flags in HACKS.items():
            runs = groups.get((machine, name))
            if not runs:
                continue
            fids = [r["fid"] for r in runs]
            against = "–"
            if baseline and name != "baseline":
                against = f"{statistics.mean(fids) - statistics.mean(baseline):+.2f}"
            shown_flags = f"`{' '.join(flags)}`" if flags else ""
            lines.append(
                f"| {machine} | {name} | {shown_flags} | "
                + ", ".join(f"{r['seed']}: {r['fid']:.2f}" for r in runs)
                + f" | {_mean_sd(fids, 2)} | {against} | "
                f"{_mean_sd([r['precision'] for r in runs], 3)} | "
                f"{_mean_sd([r['recall'] for r in runs], 3)} | "
                f"{_mean_sd([r['classes_covered'] for r in runs], 1)} |"
            )
    lines.append("")
    lines += [time_to_quality.machine_line(info) for info in machines.values()]
    record = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "runs": every_run}
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="train the runs not trained yet")
    run_parser.add_argument("--runs", type=Path, default=Path("runs/hacks"))
    run_parser.add_argument("--hacks", nargs="+", choices=HACKS, default=list(HACKS))
    run_parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    table_parser = commands.add_parser("table", help="the table of the runs trained so far")
    table_parser.add_argument("--runs", type=Path, default=Path("runs/hacks"))
    table_parser.add_argument("--out", type=Path, default=Path("benchmarks/hacks"))
    args = parser.parse_args()
    run(args) if args.command == "run" else table(args)


if __name__ == "__main__":
    main()
