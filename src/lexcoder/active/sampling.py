"""The human-coded *gold* sample for ``lexcoder estimate``: how to draw it and how large to make it.

Designs (:func:`draw_sample`; every row gets its inclusion probability, the chance the design gave it):

- ``random``: a simple random sample of ``n`` of the ``N`` corpus texts (``pi = n / N`` for all);
- ``stratified``: the corpus cut into strata by the model's outputs (:func:`probability_strata`), each
  stratum sampled in proportion to its size (``pi_h = n_h / N_h``, nearly equal): a random sample that
  cannot by bad luck miss the texts the model codes positive;
- ``oversample``: the same strata, but a chosen share of the sample (default half) from the stratum of
  texts the model codes positive for some label, the rest in proportion over the other strata. Unequal
  inclusion probabilities: many more human-coded positives of rare labels for the same ``n``, and the
  estimate weights each row by ``1 / pi`` (``lexcoder estimate --weights inclusion_probability``, or
  automatically, see :mod:`lexcoder.active.provenance`). Every stratum gets at least one text, so no text
  has probability 0 (which no weight could correct). The estimate's interval for such samples is design-based
  (:mod:`lexcoder.estimate.design`: stratified, per-stratum variance and Agresti-Coull pseudo-rows). Measured
  (``benchmarks/bench_active_learning.py --coverage``, ToS, 1,000 texts, 300 samples): it covered the truth in
  95-100% of samples for all 9 labels (ppi_py's weighted Wald interval, used before: 51-92%), but the
  intervals were 13-25% wider than those of a ``stratified`` sample of the same size (which covered 93-97%):
  use this design to find more positives, ``stratified`` for the narrowest intervals (:data:`OVERSAMPLE_NOTE`).

Planning (:func:`plan_sample_size`) says before anyone codes how many texts give a target interval width.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..io import read_table, table_format, write_table
from ..predict import SPREADSHEET_FORMATS, chunk_inputs, predict_frame
from ..rundir import RunDir, check_output_file
from ..safety import neutralise_formulas as neutralise
from .provenance import DESIGN_COLUMN, INCLUSION_COLUMN, STRATUM_COLUMN
from .rounds import corpus_ids
from .strategies import allocate

log = logging.getLogger(__name__)

DESIGNS = ("random", "stratified", "oversample")
#: What ``sample`` says when it draws an oversampled gold sample (see the module docstring).
OVERSAMPLE_NOTE = ("Oversampled gold sample: `lexcoder estimate` corrects for its unequal inclusion probabilities "
                   "with a design-based interval (by stratum). In a simulation on the ToS corpus those intervals "
                   "covered the truth in 95-100% of samples but were 13-25% wider than those of a stratified "
                   "sample of the same size: for the narrowest intervals, draw with --design stratified.")
#: Expected human-coded positives per label below which ``lexcoder estimate`` flags an interval (its
#: ``MIN_GOLD_POSITIVES``): the plan asks for at least this many.
MIN_POSITIVES = 10


@dataclass(frozen=True)
class SampleResult:
    """What :func:`sample_file` wrote: the file, rows per stratum and the inclusion probabilities' range."""

    path: Path
    design: str
    rows: int
    corpus: int
    strata: dict[str, int]
    inclusion: tuple[float, float]


def probability_strata(probs: np.ndarray, thresholds: np.ndarray, *, n_strata: int = 4) -> np.ndarray:
    """A stratum per text from the model's outputs: how close it comes to being coded positive.

    ``r = max_j p_j / t_j`` over the labels (probability over threshold). Texts with ``r >= 1`` (coded
    positive for some label) form the stratum ``"positive"``; the others are cut into ``n_strata - 1``
    strata of (nearly) equal size by quantiles of ``r`` (``"low-1"`` lowest ... ). Fewer strata when there
    are too few texts or too few distinct values.

    Parameters
    ----------
    probs : (n_texts, n_labels) probabilities
    thresholds : (n_labels,) decision thresholds
    n_strata : at least 2

    Returns
    -------
    np.ndarray of str, shape (n_texts,)
    """
    if n_strata < 2:
        raise ConfigError(f"n_strata must be at least 2 (got {n_strata}).")
    P = np.asarray(probs, dtype=float)
    r = (P / np.clip(np.asarray(thresholds, dtype=float), 1e-9, None)).max(axis=1)
    out = np.where(r >= 1.0, "positive", "").astype(object)
    rest = np.flatnonzero(r < 1.0)
    if len(rest):
        ranks = pd.Series(r[rest]).rank(method="first").to_numpy() - 1
        bins = max(1, min(n_strata - 1, len(rest) // 2))
        out[rest] = [f"low-{int(b) + 1}" for b in np.floor(ranks * bins / len(rest))]
    return out


def draw_sample(strata: np.ndarray, n: int, *, design: str = "random", oversample: float = 0.5,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` rows by ``design``; their positions and inclusion probabilities.

    Parameters
    ----------
    strata : (N,) stratum of every corpus text (:func:`probability_strata`); ignored by ``random``
    n : sample size, 1 <= n <= N
    design : one of :data:`DESIGNS`
    oversample : ``oversample`` only: the share of the sample taken from the stratum ``"positive"``
    seed : seeds the draw

    Returns
    -------
    (rows, inclusion) : positions (sorted) and each one's inclusion probability ``n_h / N_h``
    """
    strata = np.asarray(strata, dtype=object)
    N = len(strata)
    if design not in DESIGNS:
        raise ConfigError(f"Unknown design {design!r}; choose one of {', '.join(DESIGNS)}.")
    if not 1 <= n <= N:
        raise ConfigError(f"The sample size must be between 1 and the corpus's {N:,} texts (got {n:,}).")
    if design == "random":
        strata = np.zeros(N, dtype=object)
    names, codes = np.unique(strata.astype(str), return_inverse=True)
    sizes = np.bincount(codes, minlength=len(names))
    if n < len(names):  # a stratum without a sampled text would have inclusion probability 0: no weight corrects that
        raise ConfigError(f"The {design} design needs at least one text per stratum: n = {n} is smaller than "
                          f"its {len(names)} strata. Take a larger sample, or the random design.")
    quota = _quota(names, sizes, n, design, oversample)
    rng = np.random.default_rng(seed)
    rows, inclusion = [], []
    for h, q in enumerate(quota):
        if q:
            members = np.flatnonzero(codes == h)
            rows.append(rng.choice(members, size=q, replace=False))
            inclusion.append(np.full(q, q / sizes[h]))
    rows_, incl = np.concatenate(rows), np.concatenate(inclusion)
    order = np.argsort(rows_)
    return rows_[order], incl[order]


def _quota(names: np.ndarray, sizes: np.ndarray, n: int, design: str, oversample: float) -> np.ndarray:
    """Texts per stratum: in proportion (random, stratified), or ``oversample`` of ``n`` from "positive"."""
    at_least_one = design != "random"
    if design != "oversample" or "positive" not in names:
        if design == "oversample":
            log.warning("No corpus text is coded positive for any label: the oversample design draws in "
                        "proportion to the strata.")
        return allocate(sizes, n, at_least_one=at_least_one)
    if not 0 < oversample < 1:
        raise ConfigError(f"The oversampled share must lie between 0 and 1 (got {oversample}).")
    pos = int(np.flatnonzero(names == "positive")[0])
    others = np.delete(np.arange(len(sizes)), pos)
    reserve = len(others) if at_least_one else 0  # one text for every other stratum
    n_pos = int(min(sizes[pos], max(1, round(oversample * n)), n - reserve))
    n_pos = max(n_pos, n - int(sizes[others].sum()))  # the other strata cannot hold the rest
    quota = np.zeros(len(sizes), dtype=int)
    quota[pos] = n_pos
    quota[others] = allocate(sizes[others], n - n_pos, at_least_one=at_least_one)
    return quota


def plan_sample_size(prevalence: float, *, width: float, alpha: float = 0.05, rho2: float = 0.0,
                     corpus_size: int | None = None, min_positives: int = MIN_POSITIVES) -> dict:
    """How many randomly drawn human-coded texts give a (1 - alpha) interval of ``width`` for one label.

    The formula (normal approximation; ``z = Phi^-1(1 - alpha/2)``, half-width ``h = width / 2``, ``p`` the
    label's prevalence):

    - *human codes only* (classical): the interval is ``p ± z sqrt(p (1 - p) / n)``, so about
      ``n = z^2 p (1 - p) / h^2`` texts;
    - *PPI++* (``lexcoder estimate``): the human codes ``Y`` are corrected by the model's output ``f``; with
      the power-tuned weight ``lambda = cov(Y, f) / var(f)`` the variance per text is
      ``s^2 = var(Y - lambda f) = p (1 - p) (1 - rho^2)``, ``rho`` the correlation of human codes and model
      output on texts the model never saw (the run's test split): ``(1 - rho^2)`` of the texts suffice.
      (The corpus-side term is left out: the corpus is much larger than the sample.);
    - lexcoder's intervals add ``k = z^2 / 2`` pseudo-texts coded 1 and ``k`` coded 0 (Agresti-Coull), which
      matters for rare labels: the squared half-width is ``z^2 (n s^2 + k q) / (n + 2k)^2`` with
      ``q = p^2 + (1 - p)^2``. Setting it to ``h^2`` gives a quadratic in ``n``, solved exactly (with
      ``s^2 = p (1 - p)`` for the classical size, ``p (1 - p) (1 - rho^2)`` for PPI++);
    - a finite corpus of ``N`` texts shrinks both: ``n / (1 + (n - 1) / N)``;
    - and the interval is only trustworthy with about ``min_positives`` human-coded positives:
      ``n_positives = min_positives / p``.

    ``recommended`` is the larger of the PPI++ size and ``n_positives``, capped at ``N``. ``rho`` is itself
    an estimate from the test split: plan with some slack. The formula assumes a simple random sample; the
    oversample design needs fewer texts for rare labels and more for frequent ones.

    Returns
    -------
    dict with ``prevalence``, ``rho2``, ``n_classical``, ``n_ppi``, ``n_positives``, ``recommended`` (ints,
    or None where the prevalence is 0 and no size reaches the target)
    """
    if not 0 < width < 1:
        raise ConfigError(f"The interval width must lie between 0 and 1, e.g. 0.02 for ±1 point (got {width}).")
    from scipy.stats import norm
    z = norm.ppf(1 - alpha / 2)
    p, rho2 = float(prevalence), float(np.clip(rho2, 0.0, 1.0))
    fpc = (lambda m: m / (1 + (m - 1) / corpus_size)) if corpus_size else (lambda m: m)  # noqa: E731
    n_classical = fpc(_adjusted_size(p * (1 - p), p, width / 2, z))
    n_ppi = fpc(_adjusted_size(p * (1 - p) * (1 - rho2), p, width / 2, z))
    n_pos = min_positives / p if p > 0 else math.inf
    recommended = max(n_ppi, n_pos)
    if corpus_size:
        recommended = min(recommended, corpus_size)
    up = lambda v: None if not math.isfinite(v) else int(math.ceil(v))  # noqa: E731
    return {"prevalence": p, "rho2": rho2, "n_classical": up(n_classical), "n_ppi": up(n_ppi),
            "n_positives": up(n_pos), "recommended": up(recommended)}


def _adjusted_size(s2: float, p: float, h: float, z: float) -> float:
    """The ``n`` solving ``z^2 (n s2 + k q) / (n + 2k)^2 = h^2`` (``k = z^2/2``, ``q = p^2 + (1-p)^2``)."""
    k, q, a = z * z / 2, p * p + (1 - p) ** 2, h * h / (z * z)
    b, c = 4 * k * a - s2, 4 * k * k * a - k * q
    return max((-b + math.sqrt(b * b - 4 * a * c)) / (2 * a), 1.0)


def plan_for_run(run_dir: str | Path, *, width: float, alpha: float = 0.05, corpus: pd.DataFrame | None = None,
                 labels: list[str] | None = None, min_positives: int = MIN_POSITIVES) -> pd.DataFrame:
    """:func:`plan_sample_size` for every label of a run, from its figures on texts it never saw.

    ``rho^2`` per label is the squared correlation of the human codes and the model's probabilities on the
    run's test split (out-of-fold rows in k-fold mode; the validation split if neither exists). The
    prevalence is the share of human-coded positives in those texts; when ``corpus`` holds ``<label>_prob``
    (coded by ``lexcoder predict``), the corpus's mean probability times the held-out texts' ratio of
    human share to mean probability (a ratio estimate: class-balanced models inflate the probabilities of
    rare labels about twofold). A given ``corpus`` also sets
    the finite-corpus correction and caps the sizes at its number of texts.

    Returns
    -------
    pd.DataFrame, one row per label: ``label``, ``prevalence_source`` and the fields of
    :func:`plan_sample_size`
    """
    run = RunDir(Path(run_dir))
    cfg = run.load_config()
    labels = labels or list(cfg.data.label_columns)
    if not labels:
        raise ConfigError(f"The run {run_dir} has no 0/1 labels: the plan covers prevalences of 0/1 labels.")
    held = _held_out(run, labels)
    rows = []
    for lab in labels:
        y, f = held[lab].to_numpy(float), held[f"{lab}_prob"].to_numpy(float)
        rho2 = float(np.corrcoef(y, f)[0, 1] ** 2) if y.std() > 0 and f.std() > 0 else 0.0
        if corpus is not None and f"{lab}_prob" in corpus.columns and f.mean() > 0:
            # ratio estimate: the corpus's mean probability, rescaled by how far the mean probability of the
            # held-out texts is from their human share (class-balanced models inflate rare labels' probabilities)
            p = float(pd.to_numeric(corpus[f"{lab}_prob"]).mean() * y.mean() / f.mean())
            source = "the corpus's mean model probability, rescaled on the run's held-out texts"
        else:
            p, source = float(y.mean()), f"the human codes of the run's {held['split'].iloc[0]} split"
        plan = plan_sample_size(p, width=width, alpha=alpha, rho2=rho2,
                                corpus_size=None if corpus is None else len(corpus), min_positives=min_positives)
        rows.append({"label": lab, "prevalence_source": source} | plan)
    return pd.DataFrame(rows)


def sample_file(run_dir: str | Path, corpus_path: str | Path, out_path: str | Path, *, n: int,
                design: str = "random", oversample: float = 0.5, n_strata: int = 4, seed: int = 0,
                text_column: str | None = None, id_column: str | None = None, overwrite: bool = False,
                neutralise_formulas: bool = True) -> SampleResult:
    """Draw the gold sample from a corpus and write it for coders.

    The file holds the id, the text, one empty column per label and categorical variable,
    :data:`~lexcoder.active.provenance.DESIGN_COLUMN`, ``STRATUM_COLUMN`` and
    :data:`~lexcoder.active.provenance.INCLUSION_COLUMN` (each row's inclusion probability). The strata
    come from the corpus's ``<label>_prob`` columns when it has them all (a corpus coded by
    ``lexcoder predict``), otherwise the run's model codes it first.

    Raises
    ------
    DataError, ConfigError
        A missing column, an empty or duplicate id, a sample larger than the corpus, an unknown design, or an
        output that is an input, lies in a run folder or exists (without ``overwrite``).
    """
    corpus_path, out_path = Path(corpus_path), Path(out_path)
    check_output_file(out_path, inputs=[corpus_path], overwrite=overwrite)
    run = RunDir(Path(run_dir))
    cfg = run.load_config()
    text_column, id_column = text_column or cfg.data.text_column, id_column or cfg.data.id_column or "id"
    corpus = read_table(corpus_path)
    ids = corpus_ids(corpus, id_column, text_column, corpus_path)
    if n > len(corpus):
        raise DataError(f"{corpus_path}: {n:,} texts asked for, but the corpus holds {len(corpus):,}.")
    strata = _corpus_strata(run, cfg, corpus, text_column, corpus_path, n_strata) if design != "random" \
        else np.zeros(len(corpus), dtype=object)
    rows, inclusion = draw_sample(strata, n, design=design, oversample=oversample, seed=seed)
    if design == "oversample":
        log.info(OVERSAMPLE_NOTE)
    table = pd.DataFrame({cfg.data.id_column or "id": ids.iloc[rows].to_numpy(),
                          cfg.data.text_column: corpus[text_column].iloc[rows].astype(str).to_numpy()})
    for col in cfg.data.coded_columns:
        table[col] = pd.Series([None] * len(table), dtype=object)
    table[DESIGN_COLUMN] = design
    table[STRATUM_COLUMN] = np.asarray(strata, dtype=object)[rows] if design != "random" else "all"
    table[INCLUSION_COLUMN] = inclusion
    safe = neutralise_formulas and table_format(out_path) in SPREADSHEET_FORMATS
    write_table(neutralise(table) if safe else table, out_path)
    counts = table[STRATUM_COLUMN].value_counts().sort_index().to_dict()
    return SampleResult(out_path, design, len(table), len(corpus), counts,
                        (float(inclusion.min()), float(inclusion.max())))


def _corpus_strata(run: RunDir, cfg, corpus: pd.DataFrame, text_column: str, path: Path, n_strata: int) -> np.ndarray:
    """Strata from the corpus's model outputs (its own ``<label>_prob`` columns, or the run's model's)."""
    labels = list(cfg.data.label_columns)
    if not labels:  # categorical variables only: the predicted class of the first one is the stratum
        variable = cfg.data.class_columns[0]
        if f"{variable}_pred" not in corpus.columns:
            corpus = corpus.assign(**_code(run, cfg, corpus, text_column, path))
        return corpus[f"{variable}_pred"].astype(str).to_numpy(dtype=object)
    columns = [f"{lab}_prob" for lab in labels]
    if all(c in corpus.columns for c in columns):
        log.info("Strata from the model outputs in %s (%s ...).", path, columns[0])
        probs = corpus[columns].apply(pd.to_numeric, errors="coerce").to_numpy()
        if np.isnan(probs).any():
            raise DataError(f"{path}: the columns {columns} must hold probabilities; some cells are empty or "
                            "not numbers. Code the corpus again with `lexcoder predict`.")
    else:
        probs = _code(run, cfg, corpus, text_column, path)[columns].to_numpy()
    thresholds = run.thresholds(cfg.model.kind, labels)
    return probability_strata(probs, thresholds, n_strata=n_strata)


def _code(run: RunDir, cfg, corpus: pd.DataFrame, text_column: str, path: Path) -> pd.DataFrame:
    """The run's model outputs for the corpus (as ``lexcoder predict`` adds them)."""
    labels = list(cfg.data.label_columns)
    model, thresholds, variables = run.load_models()
    inputs = chunk_inputs(corpus, cfg, text_column, source=str(path), first_row=1)
    return predict_frame(model, thresholds, labels, inputs, variables=variables, index=corpus.index)


def _held_out(run: RunDir, labels: list[str]) -> pd.DataFrame:
    """Human codes and model probabilities of the texts the model never trained on (test, cv, or val)."""
    preds = run.read_table(run.predictions)
    data = run.read_table(run.data)[["id", *labels]]
    joined = preds[["id", "split", *[f"{lab}_prob" for lab in labels]]].merge(data, on="id")
    for split in (("test", "cv"), ("val",)):
        part = joined[joined["split"].isin(split)]
        if len(part):
            return part
    raise DataError(f"{run.predictions} has no test, out-of-fold or validation rows to measure the model on.")
