"""Statistics reviewers ask for: bootstrap confidence intervals, agreement coefficients, calibration.

Plain functions over numpy arrays (cleanlab style); :mod:`lexcoder.evaluate` assembles them into
``metrics.json``.
"""
from .agreement import agreement, cohen_kappa, gwet_ac1, krippendorff_alpha
from .bootstrap import bootstrap_counts, bootstrap_difference, bootstrap_metrics, confusion_counts, count_metrics
from .calibration import expected_calibration_error, reliability_curve

__all__ = ["agreement", "cohen_kappa", "gwet_ac1", "krippendorff_alpha", "bootstrap_counts", "bootstrap_difference",
           "bootstrap_metrics", "confusion_counts", "count_metrics", "expected_calibration_error",
           "reliability_curve"]
