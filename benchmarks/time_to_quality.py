"""Time to quality: the training seconds each preset needs to first reach FID 50, 20, 10 and 5.

Not a test (it trains for minutes per run). ``run`` trains each preset at each seed, in turn in
this one process's machine (never two at once: they would share the CPU and slow each other),
with an evaluation of 10,000 samples on the shipped evaluator about every 1/16 of the run;
``table`` reads the runs' ``metrics.jsonl`` (FID beside the seconds of training steps so far,
evaluations excluded) and ``eval.json`` (the final 10,000-sample evaluation) and writes the
table with the median and the range over seeds, and the machine it ran on::

    python benchmarks/time_to_quality.py run --presets gan lsgan dcgan fast --seeds 0 1 2 \\
        --runs runs/ttq
    python benchmarks/time_to_quality.py table --runs runs/ttq --out benchmarks/time-to-quality

Extra ``ganforge train`` flags for every run go after ``--``; ``--label`` names such a variant
(its runs are ``<runs>/<label>-s<seed>``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import torch

from ganforge.config import build_config
from ganforge.training.schedule import steps_per_epoch

THRESHOLDS = (50, 20, 10, 5)
EVALUATIONS_PER_RUN = 16
EVAL_NUM = 10_000


def machine() -> dict:
    """The CPU and software the numbers come from (the project's machines vary)."""
    info = {
        "cpu": platform.processor() or "unknown",
        "cpus": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        text = cpuinfo.read_text()
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                info["cpu"] = value.strip()
            if key.strip() in ("cpu family", "model"):  # AMD family 25: Zen 3 (model 1) or 4 (17)
                info[key.strip().replace(" ", "_")] = int(value)
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                info["avx512_bf16"] = "avx512_bf16" in flags
                info["amx"] = "amx_tile" in flags
                break
    return info


def one_thread_each(jobs: list, work, parallel: int = 2) -> list:
    """``work(*job)`` for every job, ``parallel`` at a time, each child process on one thread."""
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by every child process
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda job: work(*job), jobs))


def side_by_side(images: list, gap: int):
    """``images`` (PIL images) in one row on white, top-aligned, ``gap`` pixels apart."""
    from PIL import Image

    width = sum(image.width for image in images) + gap * (len(images) - 1)
    strip = Image.new("RGB", (width, max(image.height for image in images)), "white")
    left = 0
    for image in images:
        strip.paste(image, (left, 0))
        left += image.width + gap
    return strip


def machine_name(info: dict) -> str:
    """A short name of a :func:`machine` record, for a table's column."""
    name = f"{info['cpu']} (family {info.get('cpu_family')}, model {info.get('model')})"
    return name.replace("(R)", "")


def machine_line(info: dict) -> str:
    """A table's line naming a machine of its runs (their threads can differ from run to run)."""
    fixed = {key: value for key, value in info.items() if key != "threads"}
    return f"Machine {machine_name(info)}: {json.dumps(fixed)}"


def run_machine(folder: Path) -> dict:
    """The machine ``folder``'s run finished on; this one for runs trained before runs said so
    (each session's runs are trained and tabulated on its one machine)."""
    recorded = folder / "machine.json"
    return json.loads(recorded.read_text()) if recorded.is_file() else machine()


def eval_every(preset: str, extra: list[str]) -> int:
    """About :data:`EVALUATIONS_PER_RUN` evaluations over the preset's run."""
    config = build_config(preset, overrides=_overrides(extra))
    per_epoch = steps_per_epoch(config.train_size or 50_000, config.batch_size, config.n_critic)
    steps = per_epoch * config.epochs
    if config.max_steps:
        steps = min(steps, config.max_steps)
    return max(1, steps // EVALUATIONS_PER_RUN)


def _overrides(extra: list[str]) -> dict:
    """The ``--flag value`` pairs of ``extra`` that change the run's length (for eval_every)."""
    values = {}
    for flag, value in itertools.pairwise(extra):
        key = flag.removeprefix("--").replace("-", "_")
        if key in ("epochs", "max_steps", "batch_size", "n_critic", "train_size"):
            values[key] = int(value)
    return values


def train_or_resume(out: Path, flags: list[str]) -> None:
    """``ganforge train FLAGS --out OUT``; the resume of an interrupted run in ``out``; nothing
    when ``out`` holds a finished run."""
    if (out / "summary.json").is_file():
        print(f"== {out}: done before")
        return
    command = [str(Path(sys.executable).with_name("ganforge")), "train", "--quiet"]
    if out.exists():  # an earlier try stopped early: continue it
        command += ["--resume", str(out)]
    else:
        command += [*flags, "--out", str(out)]
    print("==", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    # The project's machines change from session to session, and a benchmark spans sessions:
    # each run says which CPU it finished on, so that only runs of one machine are compared.
    (out / "machine.json").write_text(json.dumps(machine(), indent=1) + "\n")


def run(args: argparse.Namespace) -> None:
    for preset in args.presets:
        for seed in args.seeds:
            flags = ["--preset", preset, "--seed", str(seed)]
            flags += ["--eval-every", str(eval_every(preset, args.extra))]
            flags += ["--eval-num", str(EVAL_NUM), *args.extra]
            train_or_resume(args.runs / f"{args.label or preset}-s{seed}", flags)


def first_reached(records: list[dict], threshold: float) -> float | None:
    """The training seconds of the first evaluation at or below ``threshold`` (None: never)."""
    for record in records:
        if record["fid"] <= threshold:
            return record["train_time_s"]
    return None


def describe(values: list[float | None]) -> str:
    """Median and range over seeds; "never" for seeds that did not get there."""
    reached = [v for v in values if v is not None]
    if not reached:
        return "never"
    text = f"{statistics.median(reached):.0f} ({min(reached):.0f}–{max(reached):.0f})"
    missing = len(values) - len(reached)
    return text + (f", {missing} of {len(values)} never" if missing else "")


def read_run(folder: Path) -> dict:
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    evaluations = [r for r in records if "fid" in r and "train_time_s" in r]
    summary = json.loads((folder / "summary.json").read_text())
    final = json.loads((folder / "eval.json").read_text())["samples"]
    config = json.loads((folder / "config.json").read_text())
    return {
        "run": str(folder),
        "preset": config["preset"],
        "seed": config["seed"],
        "steps": summary["steps"],
        "train_time_s": summary["train_time_s"],
        "wall_time_s": summary["wall_time_s"],
        "peak_memory_mb": summary["peak_memory_mb"],
        "final_fid": final["fid"],
        "precision": final.get("precision"),
        "recall": final.get("recall"),
        "memorisation_ratio": final.get("memorisation_ratio"),
        "classes_covered": final.get("classes_covered"),
        "kl_uniform": final.get("kl_uniform"),
        "seconds_to_fid": {str(t): first_reached(evaluations, t) for t in THRESHOLDS},
        "curve": [(r["step"], r["train_time_s"], r["fid"]) for r in evaluations],
        "machine": run_machine(folder),
    }


def table(args: argparse.Namespace) -> None:
    runs = [read_run(folder.parent) for folder in sorted(args.runs.glob("*/eval.json"))]
    groups: dict[str, list[dict]] = {}
    for entry in runs:
        groups.setdefault(Path(entry["run"]).name.rsplit("-s", 1)[0], []).append(entry)
    header = (
        "| run | seeds | "
        + " | ".join(f"s to FID {t}" for t in THRESHOLDS)
        + " | final FID | precision | recall | train s | wall s |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for name, entries in groups.items():

        def spread(key: str, fmt: str, entries=entries) -> str:
            values = [e[key] for e in entries if e[key] is not None]
            middle = statistics.mean(values)
            if len(values) == 1:
                return fmt.format(middle)
            return f"{fmt.format(middle)} ± {fmt.format(statistics.stdev(values))}"

        cells = [describe([e["seconds_to_fid"][str(t)] for e in entries]) for t in THRESHOLDS]
        lines.append(
            f"| {name} | {', '.join(str(e['seed']) for e in entries)} | "
            + " | ".join(cells)
            + f" | {spread('final_fid', '{:.2f}')} | {spread('precision', '{:.3f}')} | "
            f"{spread('recall', '{:.3f}')} | {spread('train_time_s', '{:.0f}')} | "
            f"{spread('wall_time_s', '{:.0f}')} |"
        )
    # Each run on its own: the seeds behind the spreads, with the class balance beside FID.
    lines += [
        "",
        "| run | steps | train s | final FID | precision | recall | classes ≥ 2% "
        "| KL to uniform classes | memorisation ratio | peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in runs:
        lines.append(
            f"| {Path(e['run']).name} | {e['steps']} | {e['train_time_s']:.0f} | "
            f"{e['final_fid']:.2f} | {e['precision']:.3f} | {e['recall']:.3f} | "
            f"{e['classes_covered']} | {e['kl_uniform']:.4f} | "
            f"{e['memorisation_ratio']:.2f} | {e['peak_memory_mb']:.0f} |"
        )
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "thresholds": THRESHOLDS,
        "eval_num": EVAL_NUM,
        "runs": runs,
    }
    # The machines the runs ran on (each run records its own), not the one tabulating them.
    machines = {machine_name(e["machine"]): e["machine"] for e in runs}
    lines += ["", *(machine_line(info) for info in machines.values())]
    lines.append(f"{EVAL_NUM:,} samples per evaluation.")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="train the runs that are not done yet")
    run_parser.add_argument("--presets", nargs="+", required=True)
    run_parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    run_parser.add_argument("--runs", type=Path, default=Path("runs/ttq"))
    run_parser.add_argument("--label", help="name of this variant's runs (default: the preset)")
    run_parser.add_argument("extra", nargs="*", help="more ganforge train flags, after --")
    table_parser = commands.add_parser("table", help="tabulate the finished runs")
    table_parser.add_argument("--runs", type=Path, default=Path("runs/ttq"))
    table_parser.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    args = parser.parse_args()
    run(args) if args.command == "run" else table(args)


if __name__ == "__main__":
    main()
