"""Do lexcoder's prevalence intervals cover the truth? Repeated human samples from a corpus whose codes are known.

Protocol (ToS data, bundled; ``--dataset echr`` does the same for the frequent ECHR argument types): a TF-IDF model is trained on ToS fold 0 with thresholds tuned on fold 1; the
corpus is folds 2-4 (10,529 sentences, true prevalence known). Each repetition draws a random "gold"
sample of n corpus sentences (their expert codes play the human coders) and computes every method's 95%
interval for the corpus prevalence. Reported per label and n: coverage (share of intervals containing the
truth; 93-97% is the target for 500 repetitions), mean width, and the mean number of positives in the gold
sample.

Methods: naive = share of corpus sentences the model codes positive (its CLT interval ignores model
errors); classical = gold-sample mean with the CLT (Wald) interval; agresti_coull = gold only, adjusted;
ppi++ = ppi_py's power-tuned PPI (Wald interval); ppi++_ac = lexcoder's default (PPI++ point estimate,
Agresti-Coull-style adjusted interval), with the model probability as Yhat, and ppi++_ac(pred) with the
0/1 codes as Yhat.

    .venv/bin/python benchmarks/bench_ppi_coverage.py               # 500 repetitions, n = 300 and 1000
    .venv/bin/python benchmarks/bench_ppi_coverage.py --reps 100 --sizes 500
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
from lexcoder.estimate.intervals import METHODS, MeanCI, interval

RESULTS = Path(__file__).parent / "results"
ECHR = Path(__file__).resolve().parents[1] / "../shared/data/echr_arguments/paragraphs.csv.gz"
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
    ap.add_argument("--dataset", choices=["tos", "echr"], default="tos",
                    help="tos (bundled) or echr (../shared/data/echr_arguments, frequent labels)")
    ap.add_argument("--out", type=Path, help="JSON output (default: results/ppi_coverage[_echr].json)")
    args = ap.parse_args(argv)
    args.out = args.out or RESULTS / ("ppi_coverage.json" if args.dataset == "tos" else "ppi_coverage_echr.json")
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
