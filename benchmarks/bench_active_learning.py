"""Which texts to code next? Replaying the coding of a fully coded corpus (like ASReview's simulation mode).

Protocol (ToS, bundled: 17,383 sentences, 9 labels of 0.2-2.9% prevalence; document-level parts from the
authors' ``fold`` column): fold 0 (10 Terms of Service) is the fixed test part; folds 1-4 are the *pool*
whose codes are hidden until a strategy asks for them (the experts' codes play the coders). Each run starts
from the same seed batch of 100 texts (``lexcoder next``'s cold start: TF-IDF clusters, sampled in
proportion) and then adds batches chosen by one strategy until the number of coded texts reaches each point
of the schedule; at every point the model is retrained on the coded texts and scored on the test part
(macro-F1 over the labels); the whole pool closes every curve. Every strategy runs with the same 5 seeds (the seed batch and every random
choice follow the seed).

Strategies: ``random`` (the baseline), ``uncertainty`` (closest to the decision threshold, rare labels
weighted up), ``rare`` (the likeliest positives of the labels with fewer than 100 coded positives, in turn),
``diversity`` (one text per TF-IDF cluster, least-covered clusters first) and ``auto`` (``lexcoder next``'s
default mix: 40% uncertainty, 30% rare, 20% diversity, 10% random). All are
:func:`lexcoder.active.choose_batch`, the function ``lexcoder next`` calls.

Model: lexcoder's TF-IDF family (word 1-2-grams, min_df 2, sublinear tf; one class-balanced logistic
regression per label, C = 10), with the vocabulary fitted once on the pool's texts (no codes are used for
it) and liblinear's dual solver (the same optimum, ten times faster when there are more features than
texts) so that the 5 x 5 runs fit in minutes; decision threshold 0.5 for every model (class-balanced
weights put the boundary there), so that no strategy gains from threshold tuning. A label without a coded
positive yet is predicted 0.

The *saving*: the number of coded texts at which a strategy's mean curve first comes within 0.02 macro-F1
of the model trained on the whole pool (linear interpolation between schedule points), divided by the
number random needs. Goal: <= 40%.

    nice -n 10 .venv/bin/python benchmarks/bench_active_learning.py               # ToS, 5 seeds, 2 processes
    .venv/bin/python benchmarks/bench_active_learning.py --seeds 1 --schedule 100,300,1000 --jobs 1   # smoke
    nice -n 10 .venv/bin/python benchmarks/bench_active_learning.py --dataset echr --seeds 3 --max-pool 8000 \
        --schedule 100,200,300,500,750,1000,1500,2000,3000,4000,5000,6500          # ECHR argument types
    nice -n 10 .venv/bin/python benchmarks/bench_active_learning.py --dataset indian --seeds 3 \
        --schedule 100,200,300,500,750,1000,1500,2000,3000,4000,5000,6500          # Indian roles (multi-class)

ECHR and Indian roles (``--dataset``): ECHR's pool is the authors' train + val judgments, its test part their
test judgments, with the 7 argument types of 265+ positives as labels; the Indian rhetorical roles (one of 7
per sentence, the authors' folds as for ToS) are a categorical variable: one class-balanced multinomial
logistic regression, macro-F1 over the 7 classes on the likeliest class, and ``choose_batch`` gets the class
probabilities (``class_probs``: margin uncertainty, rare classes). ``--max-pool`` / ``--max-test`` keep whole
documents in a seeded random order up to that many texts (the CPU budget).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per process: the runs are the parallel unit
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402

import lexcoder  # noqa: E402
from lexcoder.active import choose_batch  # noqa: E402
from lexcoder.active.strategies import text_vectors  # noqa: E402
from lexcoder.demo import TOS_LABELS, demo_data_path  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SHARED = Path(__file__).resolve().parents[1] / "../shared/data"
STRATEGIES = ("random", "uncertainty", "rare", "diversity", "auto")
SCHEDULE = (100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 4000, 5000, 6500, 8000, 10000, 12000)
WITHIN = 0.02
THRESHOLD = 0.5


@dataclass
class Task:
    """Everything one simulated run needs (sent to a worker process)."""

    texts: list[str]
    Xm: sp.csr_matrix       # model features of pool + test (pool rows first)
    Xg: sp.csr_matrix       # near-duplicate / cluster vectors of the pool
    Y: np.ndarray           # pool codes
    Y_test: np.ndarray
    n_pool: int
    labels: list[str]
    schedule: list[int]
    multiclass: bool = False  # Y holds one class index per text (Indian roles); ``labels`` are the classes


#: The categorical variable's name in the multi-class simulation (what ``choose_batch`` calls it).
VARIABLE = "role"


def load(dataset: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(pool, test, labels) of a data set, split by documents; for ``indian`` the labels are the 7 roles and
    the pool's and test part's ``label`` column holds each sentence's one role."""
    if dataset == "tos":
        df = pd.read_csv(demo_data_path())
        return df[df["fold"] != 0].reset_index(drop=True), df[df["fold"] == 0].reset_index(drop=True), list(TOS_LABELS)
    if dataset == "indian":  # the authors' document-level folds: fold 0 is the test part, as for ToS
        df = pd.read_csv(SHARED / "indian_sc_rhetorical_roles/texts.csv.gz")
        return (df[df["fold"] != 0].reset_index(drop=True), df[df["fold"] == 0].reset_index(drop=True),
                sorted(df["label"].astype(str).unique()))
    df = pd.read_csv(SHARED / "echr_arguments/paragraphs.csv.gz")
    labels = [c for c in ["subsumption", "precedent_ecthr", "prop_necessity_appropriateness", "decision_of_ecthr",
                          "prop_legal_basis", "prop_legitimate_aim", "consensus_of_parties"] if c in df.columns]
    return (df[df["split"] != "test"].reset_index(drop=True), df[df["split"] == "test"].reset_index(drop=True),
            labels)


def shrink(df: pd.DataFrame, max_texts: int | None, group: str, seed: int = 0) -> pd.DataFrame:
    """Whole documents (``group``) in a seeded random order until ``max_texts`` texts: a smaller part that
    keeps every document's texts together (the CPU budget of the ECHR run)."""
    if not max_texts or len(df) <= max_texts:
        return df
    docs = np.random.default_rng(seed).permutation(df[group].unique())
    sizes = df.groupby(group).size().loc[docs].cumsum()
    return df[df[group].isin(sizes.index[sizes <= max_texts])].reset_index(drop=True)


def codes(df: pd.DataFrame, labels: list[str], multiclass: bool) -> np.ndarray:
    """(n, labels) 0/1 codes, or (n,) class indices of the multi-class data set."""
    if multiclass:
        return df["label"].astype(str).map({c: i for i, c in enumerate(labels)}).to_numpy().astype(int)
    return df[labels].to_numpy().astype(int)


def fit_predict(X: sp.csr_matrix, Y: np.ndarray, rows: np.ndarray, targets: sp.csr_matrix,
                multiclass: bool = False, k: int = 0) -> np.ndarray:
    """Probabilities for ``targets`` from per-label class-balanced logistic regressions on ``rows`` (or
    one multinomial one over ``k`` classes)."""
    if multiclass:
        return fit_predict_classes(X, Y, rows, targets, k)
    P = np.zeros((targets.shape[0], Y.shape[1]))
    for j in range(Y.shape[1]):
        y = Y[rows, j]
        if y.min() == y.max():  # no positive (or no negative) coded yet: the constant it has seen
            P[:, j] = float(y[0])
            continue
        clf = LogisticRegression(C=10.0, class_weight="balanced", solver="liblinear", dual=True, max_iter=2000)
        P[:, j] = clf.fit(X[rows], y).predict_proba(targets)[:, 1]
    return P


def fit_predict_classes(X: sp.csr_matrix, y: np.ndarray, rows: np.ndarray, targets: sp.csr_matrix,
                        k: int) -> np.ndarray:
    """(n_targets, k) class probabilities of a class-balanced multinomial logistic regression on ``rows``;
    classes not coded yet get probability 0."""
    P = np.zeros((targets.shape[0], k))
    seen = np.unique(y[rows])
    if len(seen) == 1:
        P[:, seen[0]] = 1.0
        return P
    clf = LogisticRegression(C=10.0, class_weight="balanced", max_iter=300).fit(X[rows], y[rows])
    P[:, clf.classes_] = clf.predict_proba(targets)
    return P


def macro_f1(Y: np.ndarray, P: np.ndarray) -> float:
    """Macro-F1 over the labels (0/1 codes at :data:`THRESHOLD`) or, for class indices ``Y`` (1-d), over
    the classes (the likeliest class)."""
    if Y.ndim == 1:
        return float(f1_score(Y, P.argmax(axis=1), average="macro", labels=np.arange(P.shape[1]), zero_division=0))
    return float(f1_score(Y, (P >= THRESHOLD).astype(int), average="macro", zero_division=0))


def positives(task: Task, coded: np.ndarray) -> np.ndarray:
    """Coded positives per label, or coded texts per class."""
    if task.multiclass:
        return np.bincount(task.Y[coded], minlength=len(task.labels))
    return task.Y[coded].sum(axis=0)


def simulate(task: Task, strategy: str, seed: int) -> dict:
    """One run: the seed batch, then batches by ``strategy`` up to each schedule point; F1 at every point."""
    t0 = time.perf_counter()
    pool_X, test_X = task.Xm[:task.n_pool], task.Xm[task.n_pool:]
    coded = np.zeros(0, dtype=int)
    curve = []
    for size in task.schedule:
        uncoded = np.setdiff1d(np.arange(task.n_pool), coded)
        need = min(size, task.n_pool) - len(coded)
        if size >= task.n_pool:  # the last point: everything coded, whatever the strategy
            coded = np.arange(task.n_pool)
        elif need > 0:
            coded = np.concatenate([coded, pick(task, strategy if len(coded) else "cold_start", coded, uncoded,
                                                need, seed, pool_X)])
        P_test = fit_predict(pool_X, task.Y, coded, test_X, task.multiclass, len(task.labels))
        curve.append({"coded": int(len(coded)), "macro_f1": macro_f1(task.Y_test, P_test),
                      "positives": positives(task, coded).astype(int).tolist()})
    seconds = round(time.perf_counter() - t0, 1)
    print(f"  {strategy} seed {seed}: {seconds:.0f} s", flush=True)
    return {"strategy": strategy, "seed": seed, "curve": curve, "seconds": seconds}


def pick(task: Task, strategy: str, coded: np.ndarray, uncoded: np.ndarray, n: int, seed: int,
         pool_X: sp.csr_matrix) -> np.ndarray:
    """The next ``n`` pool rows by ``strategy`` (:func:`lexcoder.active.choose_batch`)."""
    kwargs = {}
    if strategy not in ("random", "diversity", "cold_start"):
        P = fit_predict(pool_X, task.Y, coded, pool_X[uncoded], task.multiclass, len(task.labels))
        if task.multiclass:  # a categorical variable: margin uncertainty and rare classes
            kwargs = {"class_probs": {VARIABLE: (task.labels, P)},
                      "class_counts": {VARIABLE: dict(zip(task.labels, positives(task, coded).tolist()))}}
        else:
            kwargs = {"probs": P, "thresholds": np.full(len(task.labels), THRESHOLD), "labels": task.labels,
                      "n_positive": positives(task, coded)}
    batch = choose_batch([task.texts[i] for i in uncoded], n, coded_texts=[task.texts[i] for i in coded],
                         strategy=strategy, seed=seed + len(coded), vectors=(task.Xg[uncoded], task.Xg[coded]),
                         **kwargs)
    return uncoded[batch["row"].to_numpy()]


def needed(points: list[tuple[int, float]], target: float) -> float | None:
    """Coded texts at which a curve first reaches ``target`` (linear interpolation), None if it never does."""
    for (n0, f0), (n1, f1) in zip([(0, 0.0), *points[:-1]], points):
        if f1 >= target:
            return float(n1) if f1 == f0 or n0 == 0 else n0 + (target - f0) / (f1 - f0) * (n1 - n0)
    return None


def summarise(runs: list[dict], full_f1: float, n_pool: int) -> dict:
    target = full_f1 - WITHIN
    out = {}
    for strategy in STRATEGIES:
        mine = [r for r in runs if r["strategy"] == strategy]
        if not mine:
            continue
        sizes = [p["coded"] for p in mine[0]["curve"]]
        F = np.array([[p["macro_f1"] for p in r["curve"]] for r in mine])
        mean = F.mean(axis=0)
        per_seed = [needed(list(zip(sizes, f)), target) for f in F]
        sd = F.std(axis=0, ddof=1) if len(F) > 1 else np.zeros(len(sizes))
        out[strategy] = {"coded": sizes, "mean_f1": mean.round(4).tolist(), "sd_f1": sd.round(4).tolist(),
                         "needed": needed(list(zip(sizes, mean)), target),
                         "needed_per_seed": per_seed, "seconds": sum(r["seconds"] for r in mine)}
    base = out.get("random", {}).get("needed")
    for strategy, s in out.items():
        s["relative_to_random"] = None if base is None or s["needed"] is None else round(s["needed"] / base, 3)
        s["share_of_pool"] = None if s["needed"] is None else round(s["needed"] / n_pool, 3)
    return out


def plot(summary: dict, full_f1: float, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    for strategy, s in summary.items():
        x, m, sd = np.array(s["coded"]), np.array(s["mean_f1"]), np.array(s["sd_f1"])
        ax.plot(x, m, marker="o", ms=3, label=strategy)
        ax.fill_between(x, m - sd, m + sd, alpha=0.15)
    ax.axhline(full_f1, color="black", lw=0.8, label=f"whole pool ({full_f1:.3f})")
    ax.axhline(full_f1 - WITHIN, color="black", lw=0.8, ls="--", label=f"within {WITHIN}")
    ax.set_xscale("log")
    ax.set_xlabel("coded texts (log scale)")
    ax.set_ylabel("test macro-F1 (mean ± sd over seeds)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def coverage(reps: int, n: int) -> dict:
    """Coverage of ``lexcoder estimate``'s 95% PPI++ intervals for gold samples drawn by ``lexcoder sample``.

    As ``bench_ppi_coverage.py`` does for simple random samples: a TF-IDF model trained on ToS fold 0
    (thresholds tuned on fold 1) codes the corpus, folds 2-4 (true prevalences known); each repetition draws
    a gold sample of ``n`` texts by each design (:func:`lexcoder.active.sampling.draw_sample` on the
    model's strata), hands it to :func:`lexcoder.estimate.estimate_prevalence` as a ``lexcoder sample`` file
    (design, stratum and inclusion-probability columns, no weight column named: the estimate decides) and
    checks whether each label's interval holds the truth; for the stratified designs also ppi_py's weighted
    Wald interval (``coverage_weighted_wald``: what the estimate used for unequal probabilities before its
    design-based interval).
    """
    from lexcoder.active.provenance import DESIGN_COLUMN, INCLUSION_COLUMN, STRATUM_COLUMN
    from lexcoder.active.sampling import DESIGNS, draw_sample, probability_strata
    from lexcoder.estimate import estimate_prevalence
    from lexcoder.estimate.intervals import ppi_mean
    df = pd.read_csv(demo_data_path())
    labels = list(TOS_LABELS)
    train, val, corpus = df[df["fold"] == 0], df[df["fold"] == 1], df[df["fold"] >= 2].reset_index(drop=True)
    model = lexcoder.build_model("tfidf").fit(train["text"].tolist(), train[labels].to_numpy())
    thresholds = lexcoder.choose_thresholds(val[labels].to_numpy(), model.predict_proba(val["text"].tolist()))
    P = model.predict_proba(corpus["text"].tolist())
    coded = pd.DataFrame({"id": corpus["id"].astype(str)} | {f"{lab}_prob": P[:, j] for j, lab in enumerate(labels)})
    truth = corpus[labels].mean().to_numpy()
    strata = probability_strata(P, thresholds)
    out = {}
    for design in DESIGNS:
        hits, widths, positives, methods, old_hits = [], [], [], set(), []
        for rep in range(reps):
            rows, p = draw_sample(strata, n, design=design, seed=rep)
            # as `lexcoder sample` writes it: design, stratum ("all" for random) and inclusion probability
            gold = corpus.iloc[rows][["id", *labels]].assign(
                id=lambda g: g["id"].astype(str), **{DESIGN_COLUMN: design, INCLUSION_COLUMN: p,
                                                     STRATUM_COLUMN: strata[rows] if design != "random" else "all"})
            est = estimate_prevalence(coded, gold, labels)
            hits.append(((est["ppi_low"] <= truth) & (truth <= est["ppi_high"])).to_numpy())
            widths.append((est["ppi_high"] - est["ppi_low"]).to_numpy())
            positives.append(gold[labels].sum().to_numpy())
            methods |= set(est["method"])
            if design != "random":  # the interval used before the design-based one: ppi_py's weighted Wald
                gold_probs = gold[["id"]].merge(coded, on="id")
                wald = [ppi_mean(gold[lab].to_numpy(float), gold_probs[f"{lab}_prob"].to_numpy(),
                                 coded[f"{lab}_prob"].to_numpy(), weights=1 / p) for lab in labels]
                old_hits.append([w.low <= t <= w.high for w, t in zip(wald, truth)])
        out[design] = {"coverage": dict(zip(labels, np.mean(hits, axis=0).round(3).tolist())),
                       "mean_width": dict(zip(labels, np.mean(widths, axis=0).round(4).tolist())),
                       "mean_gold_positives": dict(zip(labels, np.mean(positives, axis=0).round(1).tolist())),
                       "methods": sorted(methods)}
        if old_hits:
            out[design]["coverage_weighted_wald"] = dict(zip(labels, np.mean(old_hits, axis=0).round(3).tolist()))
        print(f"{design:<11} coverage {min(out[design]['coverage'].values()):.3f}-"
              f"{max(out[design]['coverage'].values()):.3f}  mean width "
              f"{np.mean(list(out[design]['mean_width'].values())):.4f}", flush=True)
    return {"corpus": len(corpus), "n": n, "reps": reps, "load_average": list(os.getloadavg()),
            "true_prevalence": dict(zip(labels, truth.round(4).tolist())),
            "designs": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=["tos", "echr", "indian"], default="tos")
    ap.add_argument("--max-pool", type=int, default=None, help="keep whole documents up to this many pool texts")
    ap.add_argument("--max-test", type=int, default=None, help="keep whole documents up to this many test texts")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--schedule", default=",".join(map(str, SCHEDULE)), help="coded-text counts to score at")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--coverage", type=int, default=0, metavar="REPS",
                    help="instead: coverage of the estimate's intervals for `lexcoder sample` designs (REPS samples)")
    ap.add_argument("--gold-size", type=int, default=1000, help="--coverage: gold sample size")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.coverage:
        result = coverage(args.coverage, args.gold_size) | {"wall_seconds": round(time.perf_counter() - t0, 1)}
        out = args.out or RESULTS / "active_learning_sample_coverage.json"
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")
        return
    result = simulation(args) | {"wall_seconds": round(time.perf_counter() - t0, 1),
                                 "load_average_end": list(os.getloadavg())}
    name = {"tos": "", "echr": "_echr", "indian": "_indian"}[args.dataset]
    out = args.out or RESULTS / f"active_learning{name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    full_f1, summary = result["full_pool_macro_f1"], result["summary"]
    plot(summary, full_f1, out.with_suffix(".png"), f"{args.dataset.upper()}: pool {result['pool']:,} texts, test "
         f"{result['test']:,}, {len(result['labels'])} {'classes' if args.dataset == 'indian' else 'labels'}, "
         f"{args.seeds} seeds")
    print(f"whole pool ({result['pool']:,} texts): macro-F1 {full_f1:.3f}; target {result['target_macro_f1']:.3f}")
    print(f"{'strategy':<12} {'needed':>8} {'vs random':>10}  " + " ".join(f"{n:>6}" for n in result["schedule"]))
    for s, v in summary.items():
        need = "—" if v["needed"] is None else f"{v['needed']:,.0f}"
        rel = "—" if v["relative_to_random"] is None else f"{v['relative_to_random']:.0%}"
        print(f"{s:<12} {need:>8} {rel:>10}  " + " ".join(f"{f:6.3f}" for f in v["mean_f1"]))
    print(f"wrote {out} and {out.with_suffix('.png')} ({result['wall_seconds']:.0f} s)")


def simulation(args: argparse.Namespace) -> dict:
    """Every strategy x seed run on the data set, summarised (the JSON written, less the timings)."""
    load_start = list(os.getloadavg())
    pool, test, labels = load(args.dataset)
    group = {"tos": "doc_id", "echr": "doc_id", "indian": "group"}[args.dataset]
    full_sizes = (len(pool), len(test))
    pool, test = shrink(pool, args.max_pool, group), shrink(test, args.max_test, group)
    multiclass = args.dataset == "indian"
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    Xm = sp.vstack([vec.fit_transform(pool["text"]), vec.transform(test["text"])]).tocsr()
    texts = pool["text"].astype(str).tolist()
    Y, Y_test = codes(pool, labels, multiclass), codes(test, labels, multiclass)
    # the whole pool closes every curve (there all strategies meet the reference model), so that the texts a
    # strategy needs are known even where it reaches the target only after the last schedule point
    schedule = sorted({min(int(s), len(pool)) for s in args.schedule.split(",")} | {len(pool)})
    task = Task(texts, Xm, text_vectors(texts), Y, Y_test, len(pool), labels, schedule, multiclass)
    full_f1 = macro_f1(Y_test, fit_predict(Xm[:len(pool)], Y, np.arange(len(pool)), Xm[len(pool):],
                                           multiclass, len(labels)))
    jobs = [(s, seed) for seed in range(args.seeds) for s in args.strategies.split(",")]
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:
        runs = list(ex.map(simulate, [task] * len(jobs), *zip(*jobs)))
    return {"dataset": args.dataset, "labels": labels, "multiclass": multiclass, "pool": len(pool),
            "test": len(test), "unshrunk_pool_and_test": list(full_sizes),
            "pool_positives": dict(zip(labels, positives(task, np.arange(len(pool))).tolist())),
            "full_pool_macro_f1": round(full_f1, 4), "target_macro_f1": round(full_f1 - WITHIN, 4),
            "schedule": schedule, "seeds": args.seeds, "summary": summarise(runs, full_f1, len(pool)), "runs": runs,
            "load_average_start": load_start, "lexcoder": lexcoder.__version__, "platform": platform.platform(),
            "cpus": os.cpu_count()}

if __name__ == "__main__":
    main()
