"""The GAN hacks on the ``dcgan`` preset, 3 seeds each, against the plain ``dcgan``.

Each run is ``ganforge train --preset dcgan --seed S FLAGS --out RUNS/NAME-sS``: the preset's
own settings (5 epochs of full MNIST, FID every 500 iterations, the final evaluation on 10,000
samples with standing BatchNorm statistics) with one hack switched on. The baseline is the
standing-statistics column of ``benchmarks/standing-statistics.json`` (the plain ``dcgan``,
seeds 0, 1, 2, on the same kind of machine).

Not a test: 15 runs of about 7 minutes each on a 2-core CPU. ``run`` trains whatever is not
trained yet (an interrupted run is resumed); ``table`` writes the table of the runs trained so
far (``.md``, and ``.json`` with every run)::

    python benchmarks/hacks.py run --runs runs/hacks
    python benchmarks/hacks.py table --runs runs/hacks --out benchmarks/hacks
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import time_to_quality

#: Each hack's name (its runs' folder prefix) and its flags: one setting of each, the usual
#: one (Chintala et al.'s "How to train a GAN"; TTUR: Heusel et al. 2017 with the 4:1 ratio of
#: Zhang et al.'s SAGAN, around the preset's 1e-3 in the log).
HACKS = {
    "real-label-0.9": ["--real-label", "0.9"],
    "flip-labels-0.05": ["--flip-labels", "0.05"],
    "instance-noise-0.1": ["--instance-noise", "0.1"],
    "noise-normal": ["--noise", "normal"],
    "ttur-g5e-4-d2e-3": ["--lr-g", "5e-4", "--lr-d", "2e-3"],
}
SEEDS = (0, 1, 2)
BASELINE = Path(__file__).with_name("standing-statistics.json")


def run(args: argparse.Namespace) -> None:
    for name in args.hacks:
        for seed in args.seeds:
            flags = ["--preset", "dcgan", "--seed", str(seed), *HACKS[name]]
            time_to_quality.train_or_resume(args.runs / f"{name}-s{seed}", flags)


def _scores(run: Path) -> dict:
    samples = json.loads((run / "eval.json").read_text())["samples"]
    keys = ("fid", "precision", "recall", "classes_covered")
    return {"run": str(run), **{key: samples[key] for key in keys}}


def _mean_sd(values: list[float], digits: int) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def _row(name: str, flags: str, runs: list[dict]) -> str:
    fids = ", ".join(f"{r['fid']:.2f}" for r in runs)
    return (
        f"| {name} | {flags} | {fids} | {_mean_sd([r['fid'] for r in runs], 2)} | "
        f"{_mean_sd([r['precision'] for r in runs], 3)} | "
        f"{_mean_sd([r['recall'] for r in runs], 3)} | "
        f"{_mean_sd([r['classes_covered'] for r in runs], 1)} |"
    )


def table(args: argparse.Namespace) -> None:
    baseline = [{"run": r["run"], **r["standing"]} for r in json.loads(BASELINE.read_text())]
    lines = [
        "| hack | flags | FID at seeds 0, 1, 2 | FID | precision | recall | classes ≥ 2% |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        _row("none (`dcgan`)", "", baseline),
    ]
    runs = {"none": baseline}
    for name, flags in HACKS.items():
        done = [args.runs / f"{name}-s{s}" for s in SEEDS]
        done = [_scores(r) for r in done if (r / "eval.json").is_file()]
        if done:
            runs[name] = done
            lines.append(_row(name, f"`{' '.join(flags)}`", done))
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(runs, indent=1) + "\n")
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
