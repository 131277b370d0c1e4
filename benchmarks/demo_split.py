"""Where the time of ``make demo`` goes, on a fresh clone: install, data, each training's steps,
its side work, its start-up, final evaluation and report, and the comparison.

Not a test (it installs and trains for about a quarter of an hour). It runs ``make demo`` in
CLONE (a fresh ``git clone`` of this repository, so the install is a first install), stamps
every line of its output with the time it arrived, and splits the whole by the lines
``make`` prints before each command; each training's ``summary.json`` splits its own time::

    git clone -q . /tmp/demo-clone && python benchmarks/demo_split.py /tmp/demo-clone \\
        --out benchmarks/demo-split.json

The data cache under ``GANFORGE_DATA`` is left as the caller has it: point it at an empty
folder for a first run's numbers (the evaluation caches are then built by the first run).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from time_to_quality import machine


def stamped_run(command: list[str], cwd: Path) -> list[tuple[float, str]]:
    start = time.perf_counter()
    lines = []
    with subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        for line in process.stdout:
            lines.append((time.perf_counter() - start, line.rstrip("\n")))
            print(f"{lines[-1][0]:7.1f}  {lines[-1][1]}", flush=True)
    if process.returncode:
        raise SystemExit(f"make demo failed with status {process.returncode}")
    lines.append((time.perf_counter() - start, "<end>"))
    return lines


def split(lines: list[tuple[float, str]], clone: Path) -> dict:
    def first(prefix: str) -> float:
        return next(t for t, line in lines if prefix in line)

    total = lines[-1][0]
    fetch = first("ganforge data fetch mnist")
    trainings = [
        (t, line.split("--preset ")[1].split()[0], line.split("--out ")[1].split()[0])
        for t, line in lines
        if line.startswith("== ganforge train")
    ]
    compare = first("== ganforge compare")
    parts: dict[str, float] = {"install": fetch, "data": trainings[0][0] - fetch}
    ends = [t for t, _, _ in trainings[1:]] + [compare]
    for (start, preset, out), end in zip(trainings, ends, strict=True):
        summary = json.loads((clone / out / "summary.json").read_text())
        steps, wall = summary["train_time_s"], summary["wall_time_s"]
        parts[f"{preset}: training steps"] = steps
        parts[f"{preset}: side work during training"] = wall - steps
        parts[f"{preset}: final evaluation"] = summary["final_evaluation_s"]
        parts[f"{preset}: start-up, report and the rest"] = (
            end - start - wall - summary["final_evaluation_s"]
        )
        parts[f"{preset}: peak memory MB"] = summary["peak_memory_mb"]
    parts["compare"] = total - compare
    seconds = {k: v for k, v in parts.items() if not k.endswith("MB")}
    steps = parts["install"] + sum(v for k, v in seconds.items() if k.endswith("training steps"))
    return {
        "total_s": round(total, 1),
        "parts_s": {k: round(v, 1) for k, v in parts.items()},
        "all_but_install_and_steps_s": round(total - steps, 1),
        "all_but_install_and_steps_fraction": round((total - steps) / total, 4),
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clone", type=Path, help="a fresh clone of this repository")
    parser.add_argument("--out", type=Path, help="write the split here as JSON")
    args = parser.parse_args()
    lines = stamped_run(["make", "demo"], args.clone)
    result = split(lines, args.clone)
    for name, value in result["parts_s"].items():
        print(f"{name:45s} {value:8.1f}")
    print(
        f"total {result['total_s']:.0f} s; all but the install and the training steps: "
        f"{result['all_but_install_and_steps_s']:.0f} s "
        f"({100 * result['all_but_install_and_steps_fraction']:.1f}%)"
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
