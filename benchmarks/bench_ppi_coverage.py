"""Do lexcoder's prevalence intervals cover the truth? Repeated human samples from a corpus whose codes are known.

Protocol (ToS data, bundled; ``--dataset echr`` does the same for the frequent ECHR argument types;
``--dataset indian``: the class shares of a categorical variable, see below): a TF-IDF model is trained on
ToS fold 0 with thresholds tuned on fold 1; the corpus is folds 2-4 (10,529 sentences, true prevalence
known). Each repetition draws a random "gold" sample of n corpus sentences (their expert codes play the human
coders) and computes every method's 95% interval for the corpus prevalence. Reported per label and n:
coverage (share of intervals containing the truth; 93-97% is the target for 500 repetitions), mean width,
and the mean number of positives in the gold sample.

Methods: naive = share of corpus sentences the model codes positive (its CLT interval ignores model
errors); classical = gold-sample mean with the CLT (Wald) interval; agresti_coull = gold only, adjusted;
ppi++ = ppi_py's power-tuned PPI (Wald interval); ppi++_ac = lexcoder's default (PPI++ point estimate,
Agresti-Coull-style adjusted interval), with the model probability as Yhat, and ppi++_ac(pred) with the
0/1 codes as Yhat.

Class shares (``--dataset indian``): the Indian Supreme Court rhetorical roles (7 classes, one per sentence).
A TF-IDF multinomial model is trained on the judgments of the authors' folds 0-1; the corpus is folds 2-4
(6,043 sentences, true role shares known). Each repetition draws a random gold sample of n corpus sentences
and computes lexcoder's class-share intervals (``lexcoder.estimate.shares.share_estimates``, the arrays
behind ``estimate_shares``) twice: per class (each at 95%) and simultaneous (the default; Bonferroni, each
at 1 - 0.05/7). Reported per class: coverage and mean width of the naive, classical and PPI++ intervals;
and for each method the *simultaneous* coverage, the share of repetitions in which all 7 intervals cover
their true shares at once (target >= 95% for the simultaneous intervals). PPI++ with one power-tuning
weight per class (``ppi++_own_lambda``) is shown for comparison with lexcoder's one weight per variable.

    .venv/bin/python benchmarks/bench_ppi_coverage.py               # 500 repetitions, n = 300 and 1000
    .venv/bin/python benchmarks/bench_ppi_coverage.py --reps 100 --sizes 500
    .venv/bin/python benchmarks/bench_ppi_coverage.py --dataset indian
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

import lexcoder
from lexcoder.demo import TOS_LABELS, demo_data_path
from lexcoder.estimate.intervals import METHODS, MeanCI, interval, ppi_mean_adjusted
from lexcoder.estimate.shares import share_estimates

RESULTS = Path(__file__).parent / "results"
ECHR = Path(__file__).resolve().parents[1] / "../shared/data/echr_arguments/paragraphs.csv.gz"
INDIAN = Path(__file__).resolve().parents[1] / "../shared/data/indian_sc_rhetorical_roles/texts.csv.gz"
ECHR_LABELS = ["subsumption", "precedent_ecthr", "prop_necessity_appropriateness", "decision_of_ecthr",
               "prop_legal_basis", "consensus_of_parties"]


def model_outputs() -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """True codes, probabilities and 0/1 codes of the corpus (ToS folds 2-4) from a fold-0 TF-IDF model."""
    df = pd.read_csv(demo_data_path())
    labels = ["unfair", *TOS_LABELS]
    train, val, corpus = df[df["fold"] == 0], df[df["fold"] == 1], df[df["fold"] >= 2]
    model = lexcoder.build_model("tfidf").fit(train["text"].tolist(), train[labels].to_numpy())
    th = lexcoder.choose_thresholds(val[labels].to_numpy(), model.predict_proba(val["text"].tolist()))
    P = model.predict_proba(corpus["text"].tolist())
    return labels, corpus[labels].to_numpy(), P, (P >= th).astype(float)


def model_outputs_echr() -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """ECHR: TF-IDF on the judgments of the authors' train split (thresholds on the last 20% of them);
    corpus = the val + test judgments (7,226 paragraphs)."""
    df = pd.read_csv(ECHR)
    train_docs = sorted(df.loc[df["split"] == "train", "doc_id"].unique())
    cut = int(0.8 * len(train_docs))
    train, val = df[df["doc_id"].isin(train_docs[:cut])], df[df["doc_id"].isin(train_docs[cut:])]
    corpus = df[df["split"] != "train"]
    model = lexcoder.build_model("tfidf").fit(train["text"].tolist(), train[ECHR_LABELS].to_numpy())
    th = lexcoder.choose_thresholds(val[ECHR_LABELS].to_numpy(), model.predict_proba(val["text"].tolist()))
    P = model.predict_proba(corpus["text"].tolist())
    return ECHR_LABELS, corpus[ECHR_LABELS].to_numpy(), P, (P >= th).astype(float)


def model_outputs_indian() -> tuple[list[str], pd.DataFrame]:
    """Indian rhetorical roles: a TF-IDF multinomial model trained on folds 0-1 codes folds 2-4 (the corpus).

    Returns the classes and the corpus as ``lexcoder predict`` writes it (``id``, ``role_pred``,
    ``role_prob_<class>``) plus the true role (``role``, known only in a simulation)."""
    df = pd.read_csv(INDIAN)
    train, corpus = df[df["fold"] <= 1], df[df["fold"] >= 2].reset_index(drop=True)
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):  # lbfgs on many BLAS threads crawls on a busy 2-core machine (85 s vs 5 s)
        model = lexcoder.build_model("tfidf").fit(train["text"].tolist(), train["label"].to_numpy())
        P = model.predict_proba(corpus["text"].tolist())
    classes = [str(c) for c in model.classes_]
    coded = pd.DataFrame({"id": corpus["id"].astype(str), "role": corpus["label"].astype(str),
                          "role_pred": np.asarray(classes, dtype=object)[P.argmax(axis=1)]})
    for j, c in enumerate(classes):
        coded[f"role_prob_{c}"] = P[:, j]
    return classes, coded


def simulate_shares(coded: pd.DataFrame, classes: list[str], *, n_gold: int, reps: int = 500, alpha: float = 0.05,
                    seed: int = 0) -> pd.DataFrame:
    """Coverage of lexcoder's class-share intervals where the truth is known.

    Each repetition draws ``n_gold`` corpus rows without replacement as the human-coded sample and computes
    the intervals of ``lexcoder.estimate.shares.share_estimates`` (what ``estimate_shares`` computes once
    the tables are matched) per class and simultaneous.

    Parameters
    ----------
    coded : pd.DataFrame
        The coded corpus (``role_pred``, ``role_prob_<class>``) with the true class in ``role``.
    classes : list of str
        The k classes.
    n_gold, reps, alpha, seed
        As in :func:`simulate_coverage`.

    Returns
    -------
    pd.DataFrame
        One row per (method, intervals) with ``intervals`` "per_class" (each at 1 - alpha) or
        "simultaneous" (each at 1 - alpha/k; for ``ppi++_own_lambda``: PPI++ tuned per class, AC-adjusted,
        at 1 - alpha/k): ``all_cover`` (share of repetitions in which all k intervals cover), and per
        class ``coverage_<class>`` and ``width_<class>``.
    """
    indicators = lambda v: (v.to_numpy()[:, None] == np.asarray(classes)[None, :]).astype(float)  # noqa: E731
    Y, naive = indicators(coded["role"]), indicators(coded["role_pred"])
    P = coded[[f"role_prob_{c}" for c in classes]].to_numpy(float)
    truth = Y.mean(axis=0)
    rng = np.random.default_rng(seed)
    bounds: dict[tuple[str, str], list[np.ndarray]] = {}
    for _ in range(reps):
        idx = rng.choice(len(coded), size=n_gold, replace=False)
        for scope, simultaneous in (("per_class", False), ("simultaneous", True)):
            rows = pd.DataFrame(share_estimates(Y[idx], P[idx], P, naive, classes=classes, alpha=alpha,
                                                simultaneous=simultaneous, finite_population=True))
            for m in ("naive", "classical", "ppi"):
                bounds.setdefault((m, scope), []).append(rows[[f"{m}_low", f"{m}_high"]].to_numpy().T)
        own = [ppi_mean_adjusted(Y[idx, j], P[idx, j], P[:, j], alpha=alpha / len(classes), finite_population=True)
               for j in range(len(classes))]
        bounds.setdefault(("ppi++_own_lambda", "simultaneous"), []).append(
            np.array([[c.low for c in own], [c.high for c in own]]))
    rows = []
    for (method, scope), b in bounds.items():
        low, high = np.array([x[0] for x in b]), np.array([x[1] for x in b])  # (reps, k)
        cover = (low <= truth) & (truth <= high)
        rows.append({"method": method, "intervals": scope, "all_cover": float(cover.all(axis=1).mean()),
                     **{f"coverage_{c}": float(cover[:, j].mean()) for j, c in enumerate(classes)},
                     **{f"width_{c}": float((high - low)[:, j].mean()) for j, c in enumerate(classes)}})
    return pd.DataFrame(rows)


def run_indian(args) -> None:
    """``--dataset indian``: coverage of the class-share intervals, one table per gold-sample size."""
    t0 = time.perf_counter()
    classes, coded = model_outputs_indian()
    truth = coded["role"].value_counts(normalize=True).reindex(classes)
    print(f"model trained ({time.perf_counter() - t0:.0f} s); corpus {len(coded):,} sentences", flush=True)
    results = []
    for n in args.sizes:
        table = simulate_shares(coded, classes, n_gold=n, reps=args.reps, seed=args.seed)
        results.append({"n_gold": n, "rows": table.to_dict(orient="records")})
        print_shares(table, classes, truth, n, args.reps)
        print(f"  n={n}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "ppi_coverage_shares", "reps": args.reps, "sizes": args.sizes, "seed": args.seed,
        "alpha": 0.05, "dataset": "indian", "classes": classes,
        "truth": {c: float(truth[c]) for c in classes},
        "corpus": f"Indian SC rhetorical roles, folds 2-4 ({len(coded):,} sentences); TF-IDF multinomial model "
                  "trained on folds 0-1",
        "seconds": round(time.perf_counter() - t0, 1), "platform": platform.platform(),
        "versions": {"lexcoder": lexcoder.__version__, "numpy": np.__version__, "pandas": pd.__version__},
        "results": results}, indent=2) + "\n", encoding="utf-8")
    print(f"Wrote {args.out} ({time.perf_counter() - t0:.0f} s)")


def print_shares(table: pd.DataFrame, classes: list[str], truth: pd.Series, n: int, reps: int) -> None:
    """Markdown: per class coverage and width (points) of each method, then the all-classes coverage."""
    t = table.set_index(["method", "intervals"])
    cols = [("naive", "per_class"), ("classical", "per_class"), ("ppi", "per_class"), ("classical", "simultaneous"),
            ("ppi", "simultaneous"), ("ppi++_own_lambda", "simultaneous")]
    names = ["naive", "classical", "PPI++", "classical simult.", "**PPI++ simult.**", "PPI++ own λ simult."]
    print(f"\nn = {n}: coverage (mean width in points) over {reps} random gold samples; 95% per class, "
          "simult. = Bonferroni (each at 1 - 0.05/7)")
    print("| class | share | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for c in classes:
        cells = [f"{t.loc[k, f'coverage_{c}']:.1%} ({100 * t.loc[k, f'width_{c}']:.2f})" for k in cols]
        print(f"| {c} | {truth[c]:.1%} | " + " | ".join(cells) + " |")
    print("| **all 7 at once** | | " + " | ".join(f"**{t.loc[k, 'all_cover']:.1%}**" for k in cols) + " |")


def simulate_coverage(y_corpus: np.ndarray, yhat_corpus: np.ndarray, *, n_gold: int, reps: int = 500,
                      alpha: float = 0.05, seed: int = 0, methods: tuple[str, ...] = METHODS) -> pd.DataFrame:
    """Check interval coverage where the truth is known: repeated random gold samples from a coded corpus.

    Each repetition draws ``n_gold`` corpus rows without replacement as the human-coded sample (their
    true codes from ``y_corpus``) and computes every method's interval for the corpus prevalence.

    Parameters
    ----------
    y_corpus : np.ndarray, shape (N,)
        True 0/1 codes of every corpus row (known only in a simulation).
    yhat_corpus : np.ndarray, shape (N,)
        Model outputs for every corpus row.
    n_gold : int
        Size of each simulated human-coded sample.
    reps : int, default 500
        Number of repetitions.
    alpha : float, default 0.05
        Error level.
    seed : int, default 0
        Seed of the sampling (every method sees the same gold samples).
    methods : tuple of str, default all of ``lexcoder.estimate.intervals.METHODS``
        Methods to compare.

    Returns
    -------
    pd.DataFrame
        One row per method: ``method``, ``coverage`` (share of intervals containing the truth),
        ``mean_width``, ``bias`` (mean estimate minus truth), ``rmse``, ``mean_gold_positives``, ``truth``.
    """
    y_corpus = np.asarray(y_corpus, dtype=float)
    yhat_corpus = np.asarray(yhat_corpus, dtype=float)
    truth = float(y_corpus.mean())
    rng = np.random.default_rng(seed)
    rows = {m: [] for m in methods}
    positives = []
    for _ in range(reps):
        idx = rng.choice(len(y_corpus), size=n_gold, replace=False)
        positives.append(y_corpus[idx].sum())
        for m in methods:
            rows[m].append(interval(m, y_corpus[idx], yhat_corpus[idx], yhat_corpus, alpha=alpha))
    return pd.DataFrame([_summarise(m, cis, truth, np.mean(positives)) for m, cis in rows.items()])


def _summarise(method: str, cis: list[MeanCI], truth: float, positives: float) -> dict:
    """Coverage, width, bias and RMSE of one method's intervals."""
    est = np.array([c.estimate for c in cis])
    low, high = np.array([c.low for c in cis]), np.array([c.high for c in cis])
    return {"method": method, "coverage": float(np.mean((low <= truth) & (truth <= high))),
            "mean_width": float(np.mean(high - low)), "bias": float(est.mean() - truth),
            "rmse": float(np.sqrt(np.mean((est - truth) ** 2))), "mean_gold_positives": float(positives),
            "truth": truth}


def run_label(y, p, pred, *, n: int, reps: int, seed: int) -> dict:
    """Coverage/width of every method for one label and gold-sample size (same gold samples for all)."""
    prob = simulate_coverage(y, p, n_gold=n, reps=reps, seed=seed,
                             methods=("classical", "agresti_coull", "ppi++", "ppi++_ac")).set_index("method")
    on_pred = simulate_coverage(y, pred, n_gold=n, reps=reps, seed=seed,
                                methods=("naive", "ppi++_ac")).set_index("method")
    row = {"prevalence": float(prob["truth"].iloc[0]), "gold_positives": float(prob["mean_gold_positives"].iloc[0]),
           "naive_bias": float(on_pred.loc["naive", "bias"])}
    for name, frame, method in [("naive", on_pred, "naive"), ("classical", prob, "classical"),
                                ("agresti_coull", prob, "agresti_coull"), ("ppi++_wald", prob, "ppi++"),
                                ("ppi++_ac", prob, "ppi++_ac"), ("ppi++_ac_pred", on_pred, "ppi++_ac")]:
        row[f"{name}_coverage"] = float(frame.loc[method, "coverage"])
        row[f"{name}_width"] = float(frame.loc[method, "mean_width"])
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=500, help="repetitions (gold samples) per label and size")
    ap.add_argument("--sizes", type=int, nargs="+", default=[300, 1000], help="gold-sample sizes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dataset", choices=["tos", "echr", "indian"], default="tos",
                    help="tos (bundled), echr (../shared/data/echr_arguments, frequent labels) or indian (class "
                         "shares of the 7 rhetorical roles, ../shared/data/indian_sc_rhetorical_roles)")
    ap.add_argument("--out", type=Path, help="JSON output (default: results/ppi_coverage[_echr|_indian].json)")
    args = ap.parse_args(argv)
    args.out = args.out or RESULTS / ("ppi_coverage.json" if args.dataset == "tos" else
                                      f"ppi_coverage_{args.dataset}.json")
    if args.dataset == "indian":
        return run_indian(args)
    t0 = time.perf_counter()
    labels, Y, P, pred = model_outputs() if args.dataset == "tos" else model_outputs_echr()
    rows = []
    for n in args.sizes:
        for j, lab in enumerate(labels):
            rows.append({"label": lab, "n_gold": n,
                         **run_label(Y[:, j], P[:, j], pred[:, j], n=n, reps=args.reps, seed=args.seed + j)})
            print(f"  n={n} {lab}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    print_table(table, args.reps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "ppi_coverage", "reps": args.reps, "sizes": args.sizes, "seed": args.seed, "alpha": 0.05,
        "corpus": ("ToS folds 2-4 (10,529 sentences); TF-IDF trained on fold 0, thresholds on fold 1"
                   if args.dataset == "tos" else "ECHR val+test judgments (7,226 paragraphs); TF-IDF trained "
                   "on 80% of the train judgments, thresholds on the other 20%"),
        "dataset": args.dataset,
        "seconds": round(time.perf_counter() - t0, 1), "platform": platform.platform(),
        "versions": {"lexcoder": lexcoder.__version__, "numpy": np.__version__, "pandas": pd.__version__},
        "rows": rows}, indent=2) + "\n", encoding="utf-8")
    print(f"Wrote {args.out} ({time.perf_counter() - t0:.0f} s)")


def print_table(table: pd.DataFrame, reps: int) -> None:
    pct = lambda v: f"{v:.1%}"  # noqa: E731
    print(f"\n95% intervals over {reps} random gold samples (coverage target 93-97%; width in points)")
    print("| n | label | prev. | gold pos. | naive cov. | classical cov. | AC cov. | PPI++ Wald cov. | "
          "**PPI++ AC cov.** | PPI++ AC (0/1 Yhat) cov. | width classical / AC / PPI++ AC |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for _, r in table.iterrows():
        print(f"| {r.n_gold} | {r.label} | {pct(r.prevalence)} | {r.gold_positives:.1f} | {pct(r.naive_coverage)} | "
              f"{pct(r.classical_coverage)} | {pct(r.agresti_coull_coverage)} | {pct(r['ppi++_wald_coverage'])} | "
              f"**{pct(r['ppi++_ac_coverage'])}** | {pct(r['ppi++_ac_pred_coverage'])} | "
              f"{100 * r.classical_width:.2f} / {100 * r.agresti_coull_width:.2f} / "
              f"{100 * r['ppi++_ac_width']:.2f} |")


if __name__ == "__main__":
    main()
