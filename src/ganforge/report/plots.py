"""Plots of a run and of a comparison: loss curves, FID over training, the class histogram, and
the bar chart of ``ganforge compare``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ganforge.files import atomic_write_bytes


def _smooth(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_losses(records: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """Plot a GAN's D and G losses (raw, faint, and a moving average) and D's outputs against
    the iteration; for a VAE, −ELBO and its two terms (nats per image)."""
    vae = any("kl" in r for r in records)
    records = [r for r in records if ("loss" if vae else "d_loss") in r]  # not evaluations
    steps = [r["step"] for r in records]
    fig = _figure(9, 3.4)
    loss_ax, score_ax = fig.subplots(1, 2)
    window = max(1, len(records) // 50)
    curves = (("d_loss", "tab:blue"), ("g_loss", "tab:orange"))
    if vae:
        curves = (("loss", "tab:blue"), ("reconstruction", "tab:orange"))
    for key, colour in curves:
        values = [r[key] for r in records]
        loss_ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.6)
        label = "−ELBO" if key == "loss" else key.replace("_", " ")
        loss_ax.plot(steps, _smooth(values, window), color=colour, label=label)
    loss_ax.set(xlabel="iteration", ylabel="nats per image" if vae else "loss", title="losses")
    loss_ax.legend()
    outputs = (("kl", "KL(q(z|x) ‖ p(z))"),) if vae else (("d_real", "D(x)"), ("d_fake", "D(G(z))"))
    for key, label in outputs:
        score_ax.plot(steps, _smooth([r[key] for r in records], window), label=label)
    what = "the KL term" if vae else "discriminator outputs"
    score_ax.set(xlabel="iteration", title=f"{what} (moving average)")
    score_ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save_figure(fig, path)


def _save_figure(fig, path: Path) -> None:
    """Write a figure atomically: a kill never leaves half a picture."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png")
    atomic_write_bytes(path, buffer.getvalue())


def _figure(width: float, height: float):
    # A bare Figure renders to a file without pyplot or a backend, so the caller's (a
    # notebook's inline one, say) is left as it was.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def plot_augmentation_probability(records: list[dict[str, Any]], path: Path) -> bool:
    """ADA's p and its overfitting heuristic r_t against the iteration; False when the run
    used no ADA."""
    points = [r for r in records if "ada_p" in r]
    if not points:
        return False
    fig = _figure(8, 3.4)
    p_ax, r_ax = fig.subplots(1, 2)
    steps = [r["step"] for r in points]
    p_ax.plot(steps, [r["ada_p"] for r in points], color="tab:green")
    p_ax.set(xlabel="iteration", title="augmentation probability p", ylim=(0, 1))
    window = max(1, len(points) // 50)
    r_ax.plot(steps, _smooth([r["ada_r"] for r in points], window), label="r_t")
    r_ax.set(xlabel="iteration", title="E[sign(D(real))] (moving average)", ylim=(-1, 1))
    fig.tight_layout()
    _save_figure(fig, path)
    return True


def plot_fid(records: list[dict[str, Any]], path: Path) -> bool:
    """Plot FID and the classes covered against the iteration; False when the log has none."""
    points = [r for r in records if "fid" in r]
    if not points:
        return False
    fig = _figure(8, 3.4)
    fid_ax, class_ax = fig.subplots(1, 2)
    steps = [r["step"] for r in points]
    fid_ax.plot(steps, [r["fid"] for r in points], marker="o", color="tab:red")
    evaluator = points[-1].get("evaluator", "evaluator")
    fid_ax.set(xlabel="iteration", ylabel=f"FID ({evaluator})", title="FID during training")
    fid_ax.set_yscale("log")
    class_ax.plot(steps, [r["classes_covered"] for r in points], marker="o")
    class_ax.set(xlabel="iteration", title="classes holding ≥ 2% of samples", ylim=(0, None))
    fig.tight_layout()
    _save_figure(fig, path)
    return True


def plot_fid_against_time(curves: dict[str, list[dict[str, Any]]], path: Path) -> bool:
    """FID against the training seconds spent to reach it (the steps alone, log-log), one line
    per run (``curves``: run name → its step log); False when no run logged both."""
    lines = {
        name: [(r["train_time_s"], r["fid"]) for r in records if "fid" in r and "train_time_s" in r]
        for name, records in curves.items()
    }
    lines = {name: points for name, points in lines.items() if points}
    if not lines:
        return False
    fig = _figure(6, 3.8)
    ax = fig.subplots()
    for name, points in lines.items():
        seconds, fids = zip(*sorted(points), strict=True)
        ax.plot([max(s, 1e-3) for s in seconds], fids, marker="o", label=name)
    ax.set(xlabel="training seconds (steps alone)", ylabel="FID", title="FID against time")
    ax.set_xscale("log")
    ax.set_yscale("log")
    if len(lines) > 1:
        ax.legend(fontsize="small")
    fig.tight_layout()
    _save_figure(fig, path)
    return True


def plot_class_histogram(histogram: dict[str, float], path: Path) -> None:
    """Bar chart of the fraction of samples the evaluator puts in each class."""
    fig = _figure(6, 3.4)
    ax = fig.subplots()
    names = list(histogram)
    ax.bar(range(len(names)), [histogram[n] for n in names], color="tab:blue")
    ax.axhline(1 / len(names), color="gray", linestyle="--", label="uniform")
    ax.axhline(0.02, color="tab:red", linestyle=":", label="2%")
    ax.set_xticks(range(len(names)), names, rotation=45 if len(names) > 10 else 0)
    ax.set(ylabel="fraction of samples", title="predicted classes of the samples")
    ax.legend()
    fig.tight_layout()
    _save_figure(fig, path)


def plot_comparison(rows: list[dict[str, Any]], path: Path) -> None:
    """Bars of FID, precision and recall, one group per run."""
    fig = _figure(4 + 1.2 * len(rows), 3.6)
    fid_ax, pr_ax = fig.subplots(1, 2)
    names = [row["name"] for row in rows]
    positions = list(range(len(rows)))
    fid_ax.bar(positions, [row.get("fid") or 0 for row in rows], color="tab:red")
    fid_ax.set_xticks(positions, names, rotation=30, ha="right")
    fid_ax.set(title="FID ↓", ylabel="FID (evaluator features)")
    width = 0.4
    pr_ax.bar(
        [p - width / 2 for p in positions],
        [row.get("precision") or 0 for row in rows],
        width,
        label="precision",
    )
    pr_ax.bar(
        [p + width / 2 for p in positions],
        [row.get("recall") or 0 for row in rows],
        width,
        label="recall",
    )
    pr_ax.set_xticks(positions, names, rotation=30, ha="right")
    pr_ax.set(title="precision and recall ↑", ylim=(0, 1))
    pr_ax.legend()
    fig.tight_layout()
    _save_figure(fig, path)
