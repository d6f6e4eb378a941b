"""Valid estimates from predicted codes: prediction-powered inference (PPI++) for prevalences, class shares and
regressions.

A model codes the whole corpus; humans code a random sample of it (the *gold* sample). The naive estimate
(the share of texts the model codes positive) is biased wherever the model errs; the classical estimate
(the share in the gold sample) is unbiased but wide. Prediction-powered inference combines both: the
model's average over the corpus, corrected by the average model error measured on the gold sample
(Angelopoulos et al. 2023, *Science*; power-tuned "PPI++", Angelopoulos, Duchi & Zrnic 2023,
arXiv:2311.01453). Point estimates and the power-tuning weight are those of ``ppi-python`` (``ppi_py``);
the tests check lexcoder's numbers against it.

Modules:

* :mod:`~lexcoder.estimate.intervals`: estimates and intervals of a mean over arrays (PPI, PPI++, the
  adjusted default, classical and naive);
* :mod:`~lexcoder.estimate.design`: the design-based interval for stratified gold samples with unequal
  inclusion probabilities (``lexcoder sample --design oversample``), used automatically;
* :mod:`~lexcoder.estimate.tables`: the corpus and gold tables, checked and matched by id;
* :mod:`~lexcoder.estimate.prevalence`: :func:`estimate_prevalence` (0/1 labels);
* :mod:`~lexcoder.estimate.shares`: :func:`estimate_shares` (the class shares of categorical variables);
* :mod:`~lexcoder.estimate.run`: :func:`estimate_run` (both, from a run and files);
* :mod:`~lexcoder.estimate.regression`: :func:`estimate_regression` and :func:`ppi_glm`.

Decisions, measured in ``benchmarks/bench_ppi_coverage.py`` (ToS, ECHR and Indian roles corpora with known truth):

* ``Yhat`` is the model's probability (``<label>_prob``) by default: same coverage as the 0/1 codes and
  narrower intervals for the frequent labels.
* ppi_py's normal-approximation interval under-covers labels with few positives in the gold sample; the
  default interval (:func:`ppi_mean_adjusted`) adds Agresti-Coull pseudo-observations and covers
  93-98% down to 0.2% prevalence with 300 gold rows.
* Class shares of a categorical variable: PPI++ on each class indicator with one power-tuning weight
  for all classes (the k points then sum to 1), and intervals that hold for all k classes at once
  (Bonferroni, each at alpha/k): all 7 Indian rhetorical roles at once in 94.4-96.0% of gold samples
  (300 or 1,000 rows; 95% target), against 72-75% for 95% intervals per class.
* Gold samples with unequal inclusion probabilities from a stratified design: a stratified estimator with
  per-stratum variances and per-stratum Agresti-Coull pseudo-rows (:mod:`~lexcoder.estimate.design`); ppi_py's
  weighted Wald interval covered rare labels in only 51-92% of oversampled ToS samples.
* Regressions (:func:`ppi_glm`) follow ppi_py's PPI++ OLS/logistic algorithm in vectorised numpy (ppi_py
  compiles numba loops on every start, 20-40 s).
"""
from __future__ import annotations

from .intervals import ppi_mean, ppi_mean_adjusted
from .prevalence import MIN_GOLD_POSITIVES, estimate_prevalence
from .regression import estimate_regression, ppi_glm
from .run import estimate_run
from .shares import estimate_shares

__all__ = ["MIN_GOLD_POSITIVES", "estimate_prevalence", "estimate_regression", "estimate_run", "estimate_shares",
           "ppi_glm", "ppi_mean", "ppi_mean_adjusted"]
