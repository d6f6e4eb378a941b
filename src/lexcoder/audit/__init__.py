"""Find the human coding errors: out-of-fold audit, ranked review queue, reviewed corrections.

Typical use::

    from lexcoder.audit import audit_run, apply_review
    result = audit_run("runs/exp1")                 # writes label_issues.csv + audit_summary.json
    apply_review("runs/exp1", "reviewed.csv", reviewer="A. Coder", ledger="corrections.csv")
    # then: lexcoder run my.toml --corrections corrections.csv --out runs/exp2
    compare_runs("runs/exp1", "runs/exp2")          # writes corrections_report.md/.json into runs/exp2

These functions never rebuild the run's report (stages do not call each other): ``lexcoder audit`` and
``lexcoder corrections ...`` do that afterwards, and in Python :func:`lexcoder.report.build_report` does.
Categorical variables (``[data] class_columns``) are audited beside the 0/1 labels: their queue rows name
the class the model suggests instead, and a reviewer keeps the given class or changes it (see
:mod:`lexcoder.audit.queue` and :mod:`lexcoder.ledger`).

The corrections ledger lives in the data layer, :mod:`lexcoder.ledger`; its names are re-exported here for
code written before it moved.
"""
from __future__ import annotations

from ..ledger import (LEDGER_COLUMNS, append_ledger, apply_ledger, check_corrections, read_ledger,
                      review_entries, training_table)
from .compare import compare_runs
from .crossfit import audit_folds, out_of_fold_class_proba, out_of_fold_proba
from .queue import (CLASS_QUEUE_COLUMNS, QUEUE_COLUMNS, ClassScores, build_queue, conflict_mask, select,
                    suggested_classes)
from .scoring import RANKERS, class_noise_estimates, noise_estimates, score_classes, score_pairs, self_confidence
from .workflow import AuditResult, ReviewResult, apply_review, audit_run

__all__ = [
    "AuditResult", "CLASS_QUEUE_COLUMNS", "ClassScores", "LEDGER_COLUMNS", "QUEUE_COLUMNS", "RANKERS", "ReviewResult",
    "append_ledger", "class_noise_estimates", "compare_runs", "out_of_fold_class_proba", "score_classes",
    "suggested_classes",
    "apply_ledger", "apply_review", "audit_folds", "audit_run", "build_queue", "conflict_mask",
    "noise_estimates", "out_of_fold_proba", "read_ledger", "check_corrections", "review_entries",
    "score_pairs", "select", "self_confidence", "training_table",
]
