"""What a run leaves for people to read: ``report.html`` (one self-contained page per run), the
plots on it, and ``ganforge compare``'s table and chart of several runs."""

from ganforge.report.compare import compare_runs
from ganforge.report.page import build_report
from ganforge.report.plots import plot_comparison, plot_losses

__all__ = ["build_report", "compare_runs", "plot_comparison", "plot_losses"]
