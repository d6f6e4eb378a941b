"""Share of each class of a categorical variable in a coded corpus: naive, classical and PPI++ estimates
whose intervals hold for all the variable's classes at once.

Each class ``c`` is estimated as the prevalence of the indicator ``1[class == c]``: the human codes of the
gold sample give the indicator, the model's probability of ``c`` (``<variable>_prob_<class>``; or
``1[<variable>_pred == c]`` with ``yhat="pred"``) its prediction. Two choices differ from 0/1 labels:

* **One power-tuning weight per variable.** PPI++ weighs the predictions by a ``lambda`` tuned from the
  data; here one ``lambda`` minimises the summed variance of the k shares (ppi_py's default for a
  d-dimensional mean, ``lam_optim_mode="overall"``), not one per class. With one shared ``lambda`` the k
  PPI++ point estimates sum to exactly 1 whenever the model's class probabilities of each text sum to 1
  (as ``lexcoder predict`` writes them; every class's column is required) and with ``yhat="pred"``; the
  naive and classical points sum to 1 as well. Against one ``lambda`` per class this cost at most 2.6%
  of interval width on the Indian rhetorical roles. Points are clipped to [0, 1], which can break the sum
  only when a class's estimate falls outside [0, 1] (a tiny class the model over-codes).
* **Simultaneous intervals (default).** A researcher reads all k shares of a variable together, so the k
  intervals are built to cover all k true shares at once with probability ``1 - alpha``: each is the
  interval at level ``1 - alpha/k`` (Bonferroni). Bonferroni needs no assumption about how the k
  estimates depend on each other; the sharper alternatives gain little here (Šidák's level
  ``(1 - alpha)^(1/k)`` differs in the fourth decimal for k = 7; a max-|z| critical value from the
  estimated covariance of the shares needs a normal approximation that is poor for small classes). The
  coverage of all classes at once is measured in ``benchmarks/bench_ppi_coverage.py --dataset indian``:
  94.4-96.0% for the 7 rhetorical roles (500 gold samples of 300 or 1,000 sentences, two seeds), against
  72-75% for 95% intervals per class.
  ``simultaneous=False`` gives each class its own ``1 - alpha`` interval.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .intervals import power_tuning_lambda
from .prevalence import MIN_GOLD_POSITIVES, Design, gold_groups, reliability, three_estimates
from .tables import YhatKind, check_classes, class_output_columns, match_gold_classes, require_columns


def estimate_shares(corpus: pd.DataFrame, gold: pd.DataFrame, variables: dict[str, list[str]], *,
                    id_column: str = "id", by: str | None = None, weight_column: str | None = None,
                    alpha: float = 0.05, yhat: YhatKind = "prob", simultaneous: bool = True,
                    min_positives: int = MIN_GOLD_POSITIVES, names: tuple[str, str] = ("corpus", "gold")
                    ) -> pd.DataFrame:
    """Share of each class of each categorical variable in a coded corpus: naive, classical and PPI++.

    Parameters
    ----------
    corpus : pd.DataFrame
        Every text of the target corpus, coded by ``lexcoder predict`` (``<variable>_pred`` and
        ``<variable>_prob_<class>`` per class).
    gold : pd.DataFrame
        A random sample of the corpus coded by humans: ``id_column`` and one column per variable holding
        one of its classes (text or numbers; ``1`` and ``1.0`` are the same class, as at training).
    variables : dict of str to list of str
        Each variable with the run's classes (e.g. ``{"role": ["Argument", "Facts", ...]}``).
    id_column, by, weight_column, min_positives, names
        As in :func:`lexcoder.estimate.estimate_prevalence`; ``min_positives`` applies to the human-coded
        texts of each class.
    alpha : float, default 0.05
        Error level. With ``simultaneous`` the k intervals of a variable cover all k true shares at once
        with probability at least ``1 - alpha`` (each at ``1 - alpha/k``, Bonferroni).
    yhat : {"prob", "pred"}, default "prob"
        Model output used by PPI: the class probabilities or ``1[<variable>_pred == class]``.
    simultaneous : bool, default True
        False gives each class its own ``1 - alpha`` interval (for a question about one class only).

    Returns
    -------
    pd.DataFrame
        One row per (group,) variable and class: ``variable``, ``class``, ``n_corpus``, ``n_gold``,
        ``gold_positives`` (human-coded texts of that class), ``naive``, ``classical``, ``ppi`` each
        with ``_low``/``_high`` (clipped to [0, 1]), ``method`` (interval and simultaneity), ``reliable``
        and ``note``. The naive share counts the texts whose ``<variable>_pred`` is the class (the mean
        class probability if the corpus has no ``_pred`` column).

    Raises
    ------
    DataError
        A table lacks a column (e.g. a ``<variable>_prob_<class>`` of the corpus), a gold cell is empty or
        not one of the run's classes, ids are duplicated or unmatched, or inclusion probabilities are not
        in (0, 1].
    """
    variables = {v: [str(c) for c in classes] for v, classes in variables.items()}
    outputs = [c for v, cl in variables.items() for c in class_output_columns(v, cl, yhat)]
    require_columns(corpus, [id_column, *outputs] + ([by] if by else []), names[0],
                    "Code the corpus first with `lexcoder predict` (in Python: lexcoder.predict_file) with the "
                    "run whose classes these are; it adds <variable>_pred and <variable>_prob_<class>.")
    matched = match_gold_classes(corpus, gold, variables, id_column=id_column, yhat=yhat,
                                 extra_columns=(by,) if by else (), names=names)
    rows = []
    for key, c_part, g_part, design, finite in gold_groups(corpus, gold, matched, id_column=id_column, by=by,
                                                           weight_column=weight_column, names=names):
        for variable, classes in variables.items():
            Y, H, H_corpus, naive = _matrices(variable, classes, c_part, g_part, yhat=yhat, name=names[0])
            rows += [key | {"variable": variable} | row for row in share_estimates(
                Y, H, H_corpus, naive, classes=classes, design=design, alpha=alpha, simultaneous=simultaneous,
                finite_population=finite, min_positives=min_positives)]
    return pd.DataFrame(rows)


def _matrices(variable: str, classes: list[str], corpus: pd.DataFrame, gold: pd.DataFrame, *, yhat: YhatKind,
              name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gold indicators ``Y`` (n, k), gold model outputs ``H`` (n, k), corpus model outputs (N, k) and what
    the naive estimate averages (N, k: the model's codes where the corpus has them) for one variable."""
    Y = _indicators(gold[variable], classes)
    pred = f"{variable}_pred"
    if yhat == "pred":
        H_corpus = _indicators(corpus[pred], classes, name)
        return Y, _indicators(gold[pred], classes, name), H_corpus, H_corpus
    probs = class_output_columns(variable, classes, "prob")
    H_corpus = corpus[probs].to_numpy(float)
    naive = _indicators(corpus[pred], classes, name) if pred in corpus.columns else H_corpus
    return Y, gold[probs].to_numpy(float), H_corpus, naive


def _indicators(values: pd.Series, classes: list[str], name: str | None = None) -> np.ndarray:
    """One 0/1 column per class. ``name``: the values are the model's codes from that table, read as class
    names first (a CSV turns classes written as numbers into numbers) and refused if not a class."""
    if name is not None:
        values = check_classes(values, classes, column=str(values.name), name=name,
                               fix="Code the corpus with `lexcoder predict` and the run whose classes these are.")
    return (np.asarray(values, dtype=object)[:, None] == np.asarray(classes, dtype=object)[None, :]).astype(float)


def share_estimates(Y: np.ndarray, H: np.ndarray, H_corpus: np.ndarray, naive_codes: np.ndarray, *,
                    classes: list[str], design: Design = (None, None), alpha: float = 0.05,
                    simultaneous: bool = True, finite_population: bool = False,
                    min_positives: int = MIN_GOLD_POSITIVES) -> list[dict]:
    """The naive, classical and PPI++ estimates of the k class shares of one variable, from arrays.

    Parameters
    ----------
    Y : np.ndarray, shape (n, k)
        Human codes of the gold rows as class indicators (one 1 per row).
    H : np.ndarray, shape (n, k)
        Model outputs for the gold rows (class probabilities, or indicators of the predicted class).
    H_corpus : np.ndarray, shape (N, k)
        Model outputs for every corpus row.
    naive_codes : np.ndarray, shape (N, k)
        What the naive estimate averages (indicators of the predicted class, or ``H_corpus``).
    classes : list of str
        The k class names, in column order.
    design : (weights, strata), default (None, None)
        Inverse inclusion probabilities of the gold rows (None for a uniform random sample) and their design
        strata (None unless stratified): see :func:`~lexcoder.estimate.prevalence.three_estimates`.
    alpha : float, default 0.05
        Error level, for all k classes at once (``simultaneous``) or for each.
    simultaneous : bool, default True
        Each interval at ``1 - alpha/k`` (Bonferroni) so that all k hold at once with ``1 - alpha``.
    finite_population : bool, default False
        The gold rows were drawn from this corpus: intervals for the shares in it (see
        :func:`~lexcoder.estimate.intervals.ppi_mean_adjusted`).
    min_positives : int, default :data:`MIN_GOLD_POSITIVES`
        Classes with fewer human-coded texts are flagged.

    Returns
    -------
    list of dict
        One per class: ``class``, ``n_corpus``, ``n_gold``, ``gold_positives``, the three estimates with
        ``_low``/``_high``, ``method``, ``reliable``, ``note``. The PPI++ estimates share one power-tuning
        weight (:func:`~lexcoder.estimate.intervals.power_tuning_lambda` over all k columns).
    """
    k, n = len(classes), len(Y)
    level = alpha / k if simultaneous else alpha
    scope = f"all {k} classes at once (Bonferroni: each at alpha/{k})" if simultaneous else "each class on its own"
    lam = power_tuning_lambda(Y, H, H_corpus, weights=design[0]) if n >= 2 else None
    rows = []
    for j, value in enumerate(classes):
        fields = three_estimates(Y[:, j], H[:, j], H_corpus[:, j], naive_codes[:, j], design, alpha=level,
                                 finite_population=finite_population, lam=lam)
        fields["method"] = f"{fields['method']}; {scope}" if fields["method"] else ""
        count = int(Y[:, j].sum())
        rows.append({"class": value, "n_corpus": len(H_corpus), "n_gold": n, "gold_positives": count} | fields
                    | reliability(count, n, min_positives, what=f"text(s) of class {value!r}"))
    return rows
