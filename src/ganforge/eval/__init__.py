"""How good a generator is: the evaluator classifiers shipped for MNIST and Fashion-MNIST
(:mod:`~ganforge.eval.classifier`), the sample-quality metrics in their feature space
(:mod:`~ganforge.eval.metrics`), and scoring a run or a file of samples
(:mod:`~ganforge.eval.scoring`, ``ganforge eval``).

This package does not import :mod:`ganforge.training`.
"""

from ganforge.eval.classifier import Evaluator, load_evaluator, train_evaluator
from ganforge.eval.metrics import ReferenceSet, all_scores, quick_scores
from ganforge.eval.scoring import (
    ROWS,
    format_table,
    metric_rows,
    npz_images,
    reference_set,
    save_run_evaluation,
    score_run,
    score_source,
)

__all__ = [
    "ROWS",
    "Evaluator",
    "ReferenceSet",
    "all_scores",
    "format_table",
    "load_evaluator",
    "metric_rows",
    "npz_images",
    "quick_scores",
    "reference_set",
    "save_run_evaluation",
    "score_run",
    "score_source",
    "train_evaluator",
]
