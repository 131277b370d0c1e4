"""``ganforge compare``: a Markdown table and a bar chart of finished runs, evaluating any that
has not been scored with the same number of samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganforge.eval import ROWS, score_run
from ganforge.eval.inception import INCEPTION
from ganforge.files import read_json
from ganforge.report.page import build_report
from ganforge.report.plots import plot_comparison, plot_fid_against_time
from ganforge.steplog import read_step_log

COMPARED = ("fid", "kid", "inception_score", "precision", "recall", "coverage", "classes_covered")


COMPARE_COLUMNS = [row for row in ROWS if row[0] in COMPARED]


def _cells(scores: dict[str, Any]) -> list[str]:
    return [
        "n/a" if scores.get(k) is None else fmt.format(scores[k]) for k, _, fmt in COMPARE_COLUMNS
    ]


def compare_runs(
    run_dirs: list[Path],
    chart: Path | None,
    num: int = 10_000,
    trust_code: bool = False,
    time_chart: Path | None = None,
) -> str:
    """A Markdown table of runs (evaluating any that has no ``eval.json`` yet), with the floor
    and ceiling, a per-preset summary when a preset has several runs, and a bar chart; with
    ``time_chart``, also FID against training seconds, one line per run (from the evaluations
    during training)."""
    rows, evaluations = [], []
    for run in run_dirs:
        config = read_json(run / "config.json")
        summary = read_json(run / "summary.json")
        eval_path = run / "eval.json"
        evaluation = read_json(eval_path) if eval_path.is_file() else {}
        # Inception scores are not comparable with the evaluator's: those runs are scored again.
        if evaluation.get("num") != num or evaluation.get("evaluator") == INCEPTION:
            evaluation = score_run(run, num=num, seed=config.get("seed", 0), trust_code=trust_code)
            build_report(run)  # its page shows the new scores
        evaluations.append(evaluation)
        rows.append(
            {
                "name": run.name,
                "preset": config["preset"],
                "loss": config["loss"],
                "steps": summary["steps"],
                "wall": summary["wall_time_s"],
                **evaluation["samples"],
            }
        )
    titles = ["run", "preset", "loss", "steps", "wall time"] + [t for _, t, _ in COMPARE_COLUMNS]
    lines = ["| " + " | ".join(titles) + " |", "|" + " --- |" * len(titles)]
    for row in rows:
        head = [row["name"], row["preset"], row["loss"], str(row["steps"]), f"{row['wall']:.0f} s"]
        lines.append("| " + " | ".join(head + _cells(row)) + " |")
    reference = next((e for e in evaluations if "floor" in e), None)
    if reference is not None:
        for key, title in (
            ("floor", "real images (floor)"),
            ("ceiling", "uniform noise (ceiling)"),
        ):
            lines.append("| " + " | ".join([title, "", "", "", "", *_cells(reference[key])]) + " |")
    evaluators = sorted({str(e.get("evaluator")) for e in evaluations})
    lines.append("")
    lines.append(
        f"Evaluator: {', '.join(evaluators)}; {num} samples per run against the test split."
    )

    by_preset: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_preset.setdefault(row["preset"], []).append(row)
    if any(len(group) > 1 for group in by_preset.values()):
        lines += [
            "",
            "| preset | runs | FID mean ± std (min–max) | precision mean | recall mean |",
            "| --- | --- | --- | --- | --- |",
        ]
        for preset, group in by_preset.items():
            fids = [r["fid"] for r in group if r.get("fid") is not None]
            if not fids:  # scored on pixels: no FID to summarise
                continue
            mean = sum(fids) / len(fids)
            std = (sum((f - mean) ** 2 for f in fids) / max(1, len(fids) - 1)) ** 0.5
            precision = sum(r["precision"] for r in group) / len(group)
            recall = sum(r["recall"] for r in group) / len(group)
            lines.append(
                f"| {preset} | {len(group)} | {mean:.2f} ± {std:.2f} "
                f"({min(fids):.2f}–{max(fids):.2f}) | {precision:.3f} | {recall:.3f} |"
            )
    if chart is not None:
        plot_comparison(rows, chart)
    if time_chart is not None:
        curves = {run.name: read_step_log(run / "metrics.jsonl") for run in run_dirs}
        if not plot_fid_against_time(curves, time_chart):
            lines += ["", "No run evaluated itself during training: no FID-against-time chart."]
    return "\n".join(lines)
