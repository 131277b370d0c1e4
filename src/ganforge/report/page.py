"""``report.html``: one self-contained page per run (every image embedded, no network needed).

It shows the config, the final grid, the grids over time on a timeline the reader can scrub or
step through, the loss curves, FID over training, the class histogram, and the final metric
table beside the floor (real images) and the ceiling (noise).
"""

from __future__ import annotations

import base64
import html
import json
from importlib import resources
from pathlib import Path
from typing import Any

from ganforge.eval import metric_rows
from ganforge.eval.projection import INVERSION_GRID
from ganforge.eval.scoring import NEAREST_GRID, inversion_line
from ganforge.files import atomic_write_text, read_json
from ganforge.report.plots import (
    plot_augmentation_probability,
    plot_class_histogram,
    plot_fid,
    plot_fid_against_time,
)
from ganforge.steplog import read_step_log

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ganforge run {name}</title>
<style>
{style}</style>
</head>
<body>
<h1>{name}</h1>
<p class="muted">{subtitle}</p>
{sections}
<script>
{script}
</script>
</body>
</html>
"""


def _asset(name: str) -> str:
    return (resources.files("ganforge.report") / "assets" / name).read_text()


def data_uri(path: Path) -> str:
    """A PNG file as a ``data:`` URI, so the page needs no file beside it."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _img(path: Path, alt: str, css: str) -> str:
    return f'<img class="{css}" alt="{html.escape(alt)}" src="{data_uri(path)}">'


def _metric_table(evaluation: dict[str, Any]) -> str:
    titles, metric_table = metric_rows(evaluation)
    head = "".join(f"<th>{title}</th>" for title in titles)
    rows = []
    for label, cells in metric_table:
        tds = "".join(f'<td class="num">{cell}</td>' for cell in cells)
        rows.append(f"<tr><th>{html.escape(label)}</th>{tds}</tr>")
    caption = (
        f"evaluator {html.escape(str(evaluation.get('evaluator')))}, "
        f"{evaluation['num']} samples against the {html.escape(evaluation['dataset'])} "
        "test split"
    )
    if evaluation.get("protocol"):  # Inception scores: the reference set, resize and weights
        caption = html.escape(evaluation["note"])
    return (
        f"<p class='muted'>{caption}</p><table><tr><th>metric</th>{head}</tr>"
        f"{''.join(rows)}</table>"
    )


def build_report(run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` from what the run folder holds; return its path."""
    config = read_json(run_dir / "config.json")
    summary_path = run_dir / "summary.json"
    summary = read_json(summary_path) if summary_path.is_file() else {}
    eval_path = run_dir / "eval.json"
    evaluation = read_json(eval_path) if eval_path.is_file() else None
    records = (
        read_step_log(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").is_file() else []
    )
    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    sections = []

    final = run_dir / "samples" / "final.png"
    if final.is_file():
        sections.append(
            f"<section><h2>Final samples</h2>{_img(final, 'final grid', 'grid')}</section>"
        )

    frames = sorted((run_dir / "samples").glob("step_*.png"))
    if final.is_file():
        frames.append(final)
    script = ""
    if frames:
        data = [
            {
                "label": "final" if f.name == "final.png" else f"iteration {int(f.stem[5:])}",
                "src": data_uri(f),
            }
            for f in frames
        ]
        payload = json.dumps(data).replace("</", "<\\/")
        sections.append(
            "<section><h2>Samples over training</h2>"
            "<p class='muted'>The same fixed noise at each point: drag the slider, use the buttons "
            "or the arrow keys.</p><div class='timeline'>"
            "<button id='frame-prev'>◀</button><input id='frame-slider' type='range' min='0' "
            f"max='{len(frames) - 1}' value='{len(frames) - 1}'><button id='frame-next'>▶</button>"
            "<button id='frame-play'>play</button><span id='frame-label'></span></div>"
            "<img id='frame' class='grid' alt='samples at one point of training'>"
            f"<script type='application/json' id='frames'>{payload}</script></section>"
        )
        script = _asset("timeline.js")

    warnings = [r["warning"] for r in records if "warning" in r]
    if warnings:
        items = "".join(f"<li>{html.escape(str(w))}</li>" for w in warnings)
        sections.append(f"<section><h2>Warnings during training</h2><ul>{items}</ul></section>")

    curves = run_dir / "loss_curve.png"
    if curves.is_file():
        sections.append(f"<section><h2>Losses</h2>{_img(curves, 'loss curves', 'plot')}</section>")
    if plot_augmentation_probability(records, plots / "ada_p.png"):
        drawn = _img(plots / "ada_p.png", "ADA's augmentation probability", "plot")
        sections.append(
            "<section><h2>ADA's augmentation probability p</h2><p class='muted'>p rises while "
            "D is surer of real images than the target r_t allows (it is overfitting), and "
            f"falls otherwise.</p>{drawn}</section>"
        )
    if plot_fid(records, plots / "fid_curve.png"):
        fid = _img(plots / "fid_curve.png", "FID during training", "plot")
        sections.append(f"<section><h2>FID during training</h2>{fid}</section>")
    if plot_fid_against_time({run_dir.name: records}, plots / "fid_time.png"):
        timed = _img(plots / "fid_time.png", "FID against training seconds", "plot")
        sections.append(f"<section><h2>FID against training time</h2>{timed}</section>")
    if evaluation is not None:
        histogram = evaluation["samples"].get("class_histogram")
        if histogram:
            plot_class_histogram(histogram, plots / "class_histogram.png")
            bars = _img(plots / "class_histogram.png", "class histogram", "plot")
            sections.append(f"<section><h2>Classes of the samples</h2>{bars}</section>")
        sections.append(f"<section><h2>Metrics</h2>{_metric_table(evaluation)}</section>")
        nearest = run_dir / NEAREST_GRID
        if nearest.is_file() and evaluation.get("nearest"):
            space = evaluation["nearest"]["space"]
            picture = _img(nearest, "samples beside their nearest training images", "grid")
            sections.append(
                "<section><h2>Is it copying?</h2><p class='muted'>Each row: a sample, then its "
                f"nearest training images ({space} space), nearest first. A sample that is one "
                f"of its neighbours, pixel for pixel, was copied.</p>{picture}</section>"
            )
        inverted = evaluation.get("inversion")
        if inverted:
            inversion = run_dir / INVERSION_GRID
            picture = (
                _img(inversion, "training, then held-out images beside their projections", "grid")
                if inversion.is_file()
                else ""
            )
            sections.append(
                "<section><h2>Is it copying? Inversion</h2><p class='muted'>"
                f"{html.escape(inversion_line(inverted))}. A ratio well below 1: the generator "
                "redraws its training images better than images it never saw. Each pair: an "
                "image, then the generator's closest image (training images first, then held-out "
                f"ones).</p>{picture}</section>"
            )
    else:
        sections.append(
            "<section><h2>Metrics</h2><p>Not evaluated yet: run "
            f"<code>ganforge eval {html.escape(str(run_dir))}</code>.</p></section>"
        )

    config_rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(json.dumps(v))}</td></tr>"
        for k, v in config.items()
    )
    sections.append(
        f"<section><details open><summary><h2 style='display:inline'>Config</h2>"
        f"</summary><table>{config_rows}</table></details></section>"
    )

    subtitle = f"preset {config.get('preset')}: {config.get('description', '')}"
    source = summary.get("init_from")
    if source:
        subtitle += (
            f" · started from {source['checkpoint']} (step {source['step']}, sha256 "
            f"{source['sha256'][:12]}…)"
        )
    if summary:
        subtitle += (
            f" · {summary['steps']} iterations in {summary['wall_time_s']:.0f} s "
            f"({summary['images_per_s']:.0f} images/s, {summary.get('device', '?')})"
        )
    page = PAGE.format(
        style=_asset("report.css"),
        name=html.escape(run_dir.name),
        subtitle=html.escape(subtitle),
        sections="\n".join(sections),
        script=script,
    )
    out = run_dir / "report.html"
    atomic_write_text(out, page)
    return out
