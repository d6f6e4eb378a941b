"""Finding injected coding errors: the audit's rankings compared on the same out-of-fold probabilities.

For each data set and noise level, ``rate`` of every label's positives are flipped to 0 and as many
negatives to 1 (seeded); ONE cross-fitting (5 folds, group-aware; ``--kind tfidf`` or ``blend``) gives the
out-of-fold probabilities, and every ranking is scored on them (k = number of flips injected into a label):

* ``loss``        the ranking before issue 16: out-of-fold self-confidence, the queue sorted by it;
* ``calibrated``  lexcoder's default: the self-confidence after per-label temperature scaling (cross-fitted
                  on the folds); within a label and fold the same order as ``loss``, across labels comparable;
* ``interleave_*`` ``calibrated`` scores, labels taken in turn in proportion to weights: ``_cl``
                  confident learning's estimate of their wrong codes (the weights before);
                  ``_sum`` the sum of the calibrated P(code wrong) over the label's rows, i.e. the
                  expected wrong codes (``lexcoder audit``'s default order since issue 16);
                  ``_conf`` the same sum over the rows where P(code wrong) > 1/2 only;
* ``posterior``   the probability that the code is wrong (calibrated + confident-learning noise rates);
* ``cleanlab``    ``find_multilabel_issues_per_class(..., return_indices_ranked_by="self_confidence")`` as
                  documented (default ``prune_by_noise_rate``): its ranked list is what a reviewer sees;
                  when it holds fewer than k pairs the missing places count as misses; pooled, its flagged
                  pairs sorted by self-confidence;
* ``random``      a seeded random ranking.

Per label: precision@k, recall@k, PR-AUC. Over the whole queue (all labels pooled): precision of the top
20 and 50 and at K (all flips), and the *fair share*: the largest share of the top 50 taken by one label
next to that label's share of the injected errors (a ratio above 1 = it takes more than its share).
``--folds 5,10`` cross-fits each noisy data set once per fold count (P@k per setting; the whole-queue
figures on the first); ``--frequent-only`` cross-fits the frequent labels only (ToS: 3 of 9).
On the ORIGINAL data (no flips) the queue is built as ``lexcoder audit`` builds it: of its top 20 / 50, how
many rows are conflicting (near-)duplicates (certain problems) and the per-label composition of the rest
(real errors cannot be labelled here). ``--misses`` classifies the top-k pairs that are not injected flips by
what the source data says of them (:func:`explain_misses`). The machine load is recorded.

    nice -n 10 .venv/bin/python benchmarks/bench_audit.py [--datasets tos,echr] [--rates 0.02,0.05,0.1]
        [--kind tfidf|blend] [--params JSON] [--folds 5,10] [--frequent-only] [--docs 0,100] [--no-original]
        [--misses] [--cache DIR]
        [--quick]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

os.environ.setdefault("LEXCODER_PROGRESS", "0")
import lexcoder  # noqa: E402
from lexcoder.audit import audit_folds, audit_run, build_queue, noise_estimates, out_of_fold_proba, score_pairs  # noqa: E402
from lexcoder.audit.queue import conflict_groups  # noqa: E402
from lexcoder.audit.ranking import interleave  # noqa: E402
from lexcoder.audit.scoring import expected_errors  # noqa: E402
from lexcoder.demo import TOS_LABELS, demo_config, demo_data_path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ECHR = ROOT / "../shared/data/echr_arguments/paragraphs.csv.gz"
ECHR_LABELS = ["subsumption", "precedent_ecthr", "prop_necessity_appropriateness", "decision_of_ecthr",
               "prop_legal_basis", "prop_legitimate_aim", "consensus_of_parties"]
TOS_FREQUENT = ["limitation_of_liability", "unilateral_termination", "unilateral_change"]  # >= 200 positives


def load(name: str, docs: int | None = None, seed: int = 0) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Cleaned canonical table (id, text, group, dup_group, labels), its labels and its frequent labels.

    ``docs``: keep a seeded random sample of this many documents (judgments / Terms of Service).
    """
    if name == "tos":
        path, labels, frequent = demo_data_path(), TOS_LABELS, TOS_FREQUENT
    else:
        path, labels, frequent = ECHR, ECHR_LABELS, ECHR_LABELS
    cfg = lexcoder.config_from_dict({"data": {"path": str(path), "text_column": "text", "id_column": "id",
                                              "label_columns": labels, "group_column": "doc_id"}})
    df, _ = lexcoder.load_dataset(cfg.data)
    if docs:
        keep = np.random.default_rng(seed).choice(sorted(df["group"].unique()), docs, replace=False)
        df = df[df["group"].isin(keep)].reset_index(drop=True)
    df, _, _ = lexcoder.clean(df, labels)
    return df, labels, frequent


def inject(Y: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Mask of flipped pairs: per label ``rate`` of the positives and as many negatives (at least 1)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(Y.shape, dtype=bool)
    for j in range(Y.shape[1]):
        k = max(1, int(round(rate * Y[:, j].sum())))
        mask[rng.choice(np.flatnonzero(Y[:, j] == 1), k, replace=False), j] = True
        mask[rng.choice(np.flatnonzero(Y[:, j] == 0), k, replace=False), j] = True
    return mask


def at_k(order: np.ndarray, truth: np.ndarray, k: int) -> tuple[float, float]:
    """Precision@k and recall@k of a ranked index list (a list shorter than k counts misses)."""
    hits = truth[order[:k]].sum()
    return float(hits / k), float(hits / truth.sum())


def cleanlab_lists(Y: np.ndarray, P: np.ndarray) -> list[np.ndarray]:
    from cleanlab.multilabel_classification.filter import find_multilabel_issues_per_class
    lists, _, _ = find_multilabel_issues_per_class(labels=[list(np.flatnonzero(r)) for r in Y], pred_probs=P,
                                                   return_indices_ranked_by="self_confidence")
    return lists



# interleaving weights per label (expected wrong codes): confident learning's counts (the weights before),
# and the sum of the calibrated probabilities that the code is wrong (the sum over rows of 1 - calibrated
# self-confidence) -- and the same sum over the rows where that probability exceeds 1/2 only
INTERLEAVE_WEIGHTS = {
    "interleave_cl": lambda Y, P, ev: np.asarray([*expected_errors(Y, P, list(map(str, range(Y.shape[1])))).values()]),
    "interleave_sum": lambda Y, P, ev: ev["calibrated"].sum(axis=0),
    "interleave_conf": lambda Y, P, ev: np.where(ev["calibrated"] > 0.5, ev["calibrated"], 0).sum(axis=0),
}
METHODS = ("loss", "calibrated", *INTERLEAVE_WEIGHTS, "posterior", "cleanlab", "random")


def scores(Y: np.ndarray, P: np.ndarray, folds: np.ndarray) -> dict[str, np.ndarray]:
    """Per method, (n, n_labels) evidence that a code is wrong (higher = more suspect), same ``P``."""
    out = {m: 1 - score_pairs(Y, P, method=m, folds=folds)[0] for m in ("loss", "calibrated", "posterior")}
    return out


def pooled_order(method: str, ev: dict[str, np.ndarray], Y: np.ndarray, P: np.ndarray, labels: list[str],
                 cl_lists: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(rows, labels) of the whole queue in order (all pairs; a method's flagged set first where it has one)."""
    n, m = Y.shape
    if method == "random":
        flat = rng.permutation(n * m)
        return np.unravel_index(flat, (n, m))
    if method == "cleanlab":
        listed = np.zeros((n, m), dtype=bool)
        for j, rows in enumerate(cl_lists):
            listed[rows, j] = True
        key = np.where(listed, 0, 1).ravel()
        flat = np.lexsort((-ev["loss"].ravel(), key))
        return np.unravel_index(flat, (n, m))
    if method in INTERLEAVE_WEIGHTS:
        w = INTERLEAVE_WEIGHTS[method](Y, P, ev)
        r, c = np.nonzero(np.ones((n, m), dtype=bool))
        o = interleave(c, ev["calibrated"][r, c], w)
        return r[o], c[o]
    flat = np.argsort(-ev[method].ravel(), kind="stable")
    return np.unravel_index(flat, (n, m))


def evaluate(Y: np.ndarray, P: np.ndarray, flipped: np.ndarray, labels: list[str], seed: int, *,
             folds: np.ndarray | None = None) -> dict:
    """Per-label and pooled figures for every ranking on the same out-of-fold probabilities.

    ``folds``: the cross-fitting folds (the calibration of each fold is fitted on the others; default:
    seeded random folds). ``bench_audit_blend.py`` calls this too.
    """
    ev = scores(Y, P, folds)
    cl_lists = cleanlab_lists(Y, P)
    rng = np.random.default_rng(seed + 1)
    per_label = {}
    for j, lab in enumerate(labels):
        truth, k = flipped[:, j], int(flipped[:, j].sum())
        rest = np.argsort(-ev["loss"][:, j], kind="stable")
        cl = cl_lists[j]
        cl_rank = np.empty(len(truth))
        cl_rank[np.r_[cl, rest[~np.isin(rest, cl)]]] = np.arange(len(truth))
        rand = rng.random(len(truth))
        row = {"k": k}
        within = {"loss": ev["loss"][:, j], "calibrated": ev["calibrated"][:, j], "posterior": ev["posterior"][:, j],
                  "cleanlab": -cl_rank, "random": rand}
        for name, s in within.items():
            order = cl if name == "cleanlab" else np.argsort(-s, kind="stable")
            p, r = at_k(order, truth, k)
            row[name] = {"precision_at_k": p, "recall_at_k": r, "pr_auc": float(average_precision_score(truth, s))}
        hits = truth[cl].sum()
        row["cleanlab"].update(flagged=int(len(cl)), set_precision=float(hits / max(len(cl), 1)),
                               set_recall=float(hits / k))
        per_label[lab] = row
    pooled = {}
    share_of_errors = flipped.sum(axis=0) / flipped.sum()
    for name in METHODS:
        r, c = pooled_order(name, ev, Y, P, labels, cl_lists, rng)
        hit = flipped[r, c]
        top50 = np.bincount(c[:50], minlength=len(labels)) / 50
        worst = int(np.argmax(top50 / np.maximum(share_of_errors, 1e-9)))
        K = int(flipped.sum())
        pooled[name] = {"precision_top20": float(hit[:20].mean()), "precision_top50": float(hit[:50].mean()),
                        "precision_at_K": float(hit[:K].mean()), "K": K,
                        "largest_top50_share": float(top50.max()),
                        "largest_top50_share_label": labels[int(np.argmax(top50))],
                        "its_share_of_injected_errors": float(share_of_errors[int(np.argmax(top50))]),
                        "fair_share_ratio": float(top50[worst] / max(share_of_errors[worst], 1e-9)),
                        "fair_share_ratio_label": labels[worst]}
    return {"labels": per_label, "pooled": pooled,
            "noise_estimate": {lab: v["estimated_noise_rate"] for lab, v in noise_estimates(Y, P, labels).items()},
            "injected_noise_rate": {lab: float(flipped[:, j].mean()) for j, lab in enumerate(labels)}}


def means(block: dict, labels: list[str]) -> dict:
    out = {}
    for m in ("loss", "calibrated", "posterior", "cleanlab", "random"):
        for key in ("precision_at_k", "recall_at_k", "pr_auc"):
            out[f"{m}_{key}"] = float(np.mean([block["labels"][lab][m][key] for lab in labels]))
    return out


# ToS category -> its tag in `raw_tags` (tag = category + level: 1 fair, 2 potentially unfair, 3 clearly unfair;
# the 0/1 columns are 1 for levels 2 and 3 only: ../shared/data/tos_unfair_clauses/SOURCE.md)
TOS_TAGS = {"limitation_of_liability": "ltd", "unilateral_termination": "ter", "unilateral_change": "ch",
            "contract_by_using": "use", "content_removal": "cr", "jurisdiction": "j", "choice_of_law": "law",
            "arbitration": "a", "privacy_included": "pinc"}
MISS_KINDS = ("fair-level tag", "inside a coded passage", "code 0, untagged", "code 1, isolated")


def explain_misses(name: str, df: pd.DataFrame, Y0: np.ndarray, flipped: np.ndarray, score: np.ndarray,
                   labels: list[str], frequent: list[str], n_examples: int = 3) -> dict:
    """What the original data says of the top-k pairs that are NOT injected flips (the 'misses'), per label.

    Each miss is put in the first kind that fits, read from the source file (no judgement):
    ``fair-level tag`` (ToS only): coded 0 but tagged with the category at the *fair* level, so 0 by the
    data's definition although the text is about the category; ``inside a coded passage``: coded 1 and a
    neighbouring sentence/paragraph of its document (previous or next) coded 1 too, i.e. a list item or
    continuation judged in context; ``code 0, untagged`` and ``code 1, isolated``: the rest, the candidates
    for genuine coding errors of the original data. ``score``: (n, labels) evidence of a wrong code.
    """
    source = demo_data_path() if name == "tos" else ECHR
    order = "sent_index" if name == "tos" else "para_index"
    raw = pd.read_csv(source, usecols=["id", "doc_id", order, *(["raw_tags"] if name == "tos" else []), *labels],
                      dtype={"id": str})
    raw = raw.set_index("id").loc[df["id"].astype(str)]
    position = pd.Series(np.arange(len(raw)), index=pd.MultiIndex.from_arrays([raw["doc_id"], raw[order]]))
    out: dict = {"kinds": {k: 0 for k in MISS_KINDS}, "labels": {}}
    for j, lab in enumerate(labels):
        if lab not in frequent:
            continue
        k = int(flipped[:, j].sum())
        top = np.argsort(-score[:, j], kind="stable")[:k]
        kinds = {kind: [] for kind in MISS_KINDS}
        for i in top[~flipped[top, j]]:
            doc, at = raw["doc_id"].iloc[i], raw[order].iloc[i]
            near = [position.get((doc, at + d)) for d in (-1, 1)]
            coded_near = any(r is not None and Y0[r, j] == 1 for r in near)
            tags = str(raw["raw_tags"].iloc[i]).split() if name == "tos" else []
            if Y0[i, j] == 0 and f"{TOS_TAGS.get(lab)}1" in tags:
                kind = "fair-level tag"
            elif Y0[i, j] == 1 and coded_near:
                kind = "inside a coded passage"
            else:
                kind = "code 0, untagged" if Y0[i, j] == 0 else "code 1, isolated"
            kinds[kind].append(i)
        out["labels"][lab] = {"k": k, "misses": int(sum(map(len, kinds.values()))),
                              **{kind: len(rows) for kind, rows in kinds.items()},
                              "examples": {kind: [str(df["text"].iloc[i])[:160] for i in rows[:n_examples]]
                                           for kind, rows in kinds.items() if rows}}
        for kind, rows in kinds.items():
            out["kinds"][kind] += len(rows)
    out["misses"] = int(sum(out["kinds"].values()))
    return out


def original_queue(df: pd.DataFrame, labels: list[str], P: np.ndarray, folds: np.ndarray) -> dict:
    """Top 20 / 50 of the queue on the unmodified data, per method: conflicting duplicates and labels."""
    Y = df[labels].to_numpy().astype(int)
    groups = conflict_groups(df, labels)
    out = {"conflicting_pairs": int(len(groups)), "conflicting_exact_pairs": int(groups["exact"].sum())}
    for method, order in (("loss", "score"), ("calibrated", "score"), ("calibrated", "interleave"),
                          ("cleanlab", "score")):
        score, flagged = score_pairs(Y, P, method=method, folds=folds)
        q = build_queue(df, labels, P, score, flagged, np.zeros_like(flagged), groups=groups, order=order)
        name = method if order == "score" else "interleave"
        out[name] = {f"top{n}": {"conflicting_duplicates": int((q.head(n)["group"] != "").sum()),
                                 "labels_of_the_rest": q.head(n)[q.head(n)["group"] == ""]["label"]
                                 .value_counts().to_dict()} for n in (20, 50)}
        out[name]["queue_rows"] = int(len(q))
    return out


def time_full_audit() -> dict:
    """Wall time of `lexcoder audit` (5 folds, TF-IDF) on the whole ToS data set, after a demo run."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = demo_config()
        lexcoder.run_pipeline(cfg, Path(tmp) / "run")
        t0 = time.perf_counter()
        res = audit_run(Path(tmp) / "run", n_folds=5)
        seconds = time.perf_counter() - t0
        return {"rows": res.summary["n_rows"], "labels": len(TOS_LABELS), "seconds": round(seconds, 1),
                "queue_rows": len(res.queue)}


def crossfit(df: pd.DataFrame, Y: np.ndarray, labels: list[str], kind: str, seed: int, *, n_folds: int = 5,
             cache: Path | None = None, params: dict | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Folds and out-of-fold probabilities (computed once per setting), and the seconds they took.

    ``cache``: an ``.npz`` file to reuse them from (written after computing; the codes must match).
    """
    if cache is not None and cache.is_file():
        saved = np.load(cache)
        if np.array_equal(saved["Y"], Y):
            return saved["folds"], saved["P"], float(saved["seconds"])
    t0 = time.perf_counter()
    folds = audit_folds(df.assign(**{lab: Y[:, j] for j, lab in enumerate(labels)}), labels, n_folds=n_folds,
                        seed=seed)
    try:
        P = out_of_fold_proba(df["text"], Y, folds, label_names=labels, kind=kind, params=params)
    except Exception as err:  # noqa: BLE001 -- a benchmark: say which option failed and why, then stop
        if kind == "tfidf":
            raise
        raise SystemExit(f"--kind {kind} failed in cross-fitting ({type(err).__name__}: {err}). 'blend' needs "
                         "lexcoder.audit.crossfit to support it (issue 16, item 3) and the MiniLM weights.") from None
    seconds = time.perf_counter() - t0
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, Y=Y, folds=folds, P=P, seconds=seconds)
    return folds, P, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="tos,echr")
    ap.add_argument("--rates", default="0.02,0.05,0.1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kind", default="tfidf", choices=["tfidf", "blend"])
    ap.add_argument("--folds", default="5", help="cross-fitting fold counts to compare, e.g. 5,10 (the first "
                                                 "is the reference for the whole-queue figures)")
    ap.add_argument("--quick", action="store_true", help="ToS and ECHR samples (25 / 150 documents), 5%% only")
    ap.add_argument("--timing", action="store_true", help="also time the whole-ToS `lexcoder audit`")
    ap.add_argument("--no-original", action="store_true", help="skip the queue on the original data")
    ap.add_argument("--docs", default=None,
                    help="use a seeded sample of this many documents per data set (default: all), or one "
                         "number per data set, e.g. 0,100 (0: all)")
    ap.add_argument("--frequent-only", action="store_true",
                    help="cross-fit the frequent labels only (ToS: 3 of 9; a label's P@k barely depends on others)")
    ap.add_argument("--params", default=None,
                    help='settings of the cross-fitting model as JSON, e.g. \'{"C": 3}\' or \'{"ngram_max": 3}\' '
                         "(the TF-IDF variants of results/audit_oof_variants.json; default: lexcoder's defaults)")
    ap.add_argument("--misses", action="store_true",
                    help="classify the top-k pairs that are not injected flips by what the source data says of "
                         "them (fair-level tags, coded passages; frequent labels, first fold count)")
    ap.add_argument("--cache", default=None, help="folder to keep / reuse the out-of-fold probabilities in")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.quick:
        args.rates = "0.05"
    fold_counts = [int(k) for k in args.folds.split(",")]
    params = json.loads(args.params) if args.params else None
    out = Path(args.out or ROOT / f"benchmarks/results/audit_ranking{'_quick' if args.quick else ''}"
                                  f"{'' if args.kind == 'tfidf' else '_' + args.kind}.json")
    results = {"frequent_only": args.frequent_only,
               "protocol": "flip rate*positives 1->0 and as many 0->1 per label (seeded); group-aware "
                           f"cross-fitting ({', '.join(map(str, fold_counts))} folds), {args.kind}; k = flips "
                           "injected into the label; every ranking on the same out-of-fold probabilities",
               "seed": args.seed, "kind": args.kind, "params": params, "folds": fold_counts,
               "load_before": os.getloadavg(), "runs": [], "original": {}}
    names = args.datasets.split(",")
    docs_arg = (args.docs or "0").split(",")
    for d, name in enumerate(names):
        docs = int(docs_arg[min(d, len(docs_arg) - 1)]) or ((25 if name == "tos" else 150) if args.quick else None)
        df, labels, frequent = load(name, docs, args.seed)
        labels = frequent if args.frequent_only else labels
        Y0 = df[labels].to_numpy().astype(int)

        def cached(tag: str, K: int) -> Path | None:
            stem = f"{name}_{docs or 'all'}{'_frequent' if args.frequent_only else ''}"
            variant = "" if not params else "_" + hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
            return args.cache and Path(args.cache) / f"{stem}_{tag}_{args.kind}{variant}_K{K}_s{args.seed}.npz"
        if not args.no_original:
            folds0, P0, seconds = crossfit(df, Y0, labels, args.kind, args.seed, n_folds=fold_counts[0],
                                           cache=cached("original", fold_counts[0]), params=params)
            results["original"][name] = {**original_queue(df, labels, P0, folds0),
                                         "crossfit_seconds": round(seconds, 1)}
            print_original(name, results["original"][name])
        for rate in map(float, args.rates.split(",")):
            flipped = inject(Y0, rate, args.seed)
            Y = np.where(flipped, 1 - Y0, Y0)
            block = None
            for K in fold_counts:
                folds, P, seconds = crossfit(df, Y, labels, args.kind, args.seed, n_folds=K,
                                             cache=cached(f"r{rate}", K), params=params)
                b = evaluate(Y, P, flipped, labels, args.seed, folds=folds)
                setting = {"mean_frequent": means(b, frequent), "mean_all": means(b, labels), "pooled": b["pooled"],
                           "crossfit_seconds": round(seconds, 1), "load": os.getloadavg()}
                if block is None:
                    if args.misses:
                        b["misses"] = explain_misses(name, df, Y0, flipped, scores(Y, P, folds)["calibrated"],
                                                     labels, frequent)
                        print_misses(name, rate, b["misses"])
                    block = b
                    block.update(dataset=name, rate=rate, rows=len(df), documents=int(df["group"].nunique()),
                                 crossfit_seconds=round(seconds, 1), load=os.getloadavg(),
                                 mean_all=means(b, labels), mean_frequent=means(b, frequent), frequent=frequent,
                                 settings={})
                block["settings"][f"folds{K}"] = setting
            results["runs"].append(block)
            print_row(block)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=2))
    if args.timing:
        results["full_tos_audit"] = time_full_audit()
    results["load_after"] = os.getloadavg()
    out.write_text(json.dumps(results, indent=2))
    print_table(results)


def print_row(b: dict) -> None:
    f, p = b["mean_frequent"], b["pooled"]
    print(f"{b['dataset']} {b['rate']:.0%}: P@k loss {f['loss_precision_at_k']:.3f} calibrated "
          f"{f['calibrated_precision_at_k']:.3f} posterior "
          f"{f['posterior_precision_at_k']:.3f} cleanlab {f['cleanlab_precision_at_k']:.3f}; "
          + " ".join(f"{k}: P@k {s['mean_frequent']['calibrated_precision_at_k']:.3f} ({s['crossfit_seconds']} s)"
                     for k, s in b["settings"].items()) + "; top-50 / fair share "
          + " ".join(f"{m} {p[m]['precision_top50']:.2f}/{p[m]['fair_share_ratio']:.1f}" for m in METHODS),
          file=sys.stderr)


def print_misses(name: str, rate: float, m: dict) -> None:
    print(f"{name} {rate:.0%}: {m['misses']} top-k pairs are not injected flips: "
          + ", ".join(f"{n} {kind}" for kind, n in m["kinds"].items()), file=sys.stderr)


def print_original(name: str, o: dict) -> None:
    print(f"{name} original data: {o['conflicting_pairs']} conflicting (row, label) pairs; top 20/50 of the "
          "default queue: " + ", ".join(f"{o['calibrated'][f'top{n}']['conflicting_duplicates']} conflicting "
                                        f"duplicates in the top {n}" for n in (20, 50)), file=sys.stderr)


def print_table(results: dict) -> None:
    settings = list(results["runs"][0]["settings"]) if results["runs"] else []
    orders = ("calibrated", *INTERLEAVE_WEIGHTS)
    print("| data | noise | P@k loss | P@k cleanlab | " + " | ".join(f"P@k calibrated {k}" for k in settings)
          + " | top-50 P: " + " | ".join(orders) + " | fair-share ratio: " + " | ".join(orders)
          + " | " + " | ".join(f"seconds {k}" for k in settings) + " |")
    print("|---|---|" + "---:|" * (2 + len(settings) + 2 * len(orders) + len(settings)))
    for b in results["runs"]:
        m, p, s = b["mean_frequent"], b["pooled"], b["settings"]
        print(f"| {b['dataset']} | {b['rate']:.0%} | {m['loss_precision_at_k']:.3f} "
              f"| {m['cleanlab_precision_at_k']:.3f} | "
              + " | ".join(f"{s[k]['mean_frequent']['calibrated_precision_at_k']:.3f}" for k in settings) + " | "
              + " | ".join(f"{p[o]['precision_top50']:.2f}" for o in orders) + " | "
              + " | ".join(f"{p[o]['fair_share_ratio']:.1f}" for o in orders) + " | "
              + " | ".join(f"{s[k]['crossfit_seconds']:.0f}" for k in settings) + " |")
    print()
    print("| data | method | top-20: conflicting duplicates | top-50: conflicting duplicates | top-50 others by label |")
    print("|---|---|---|---|---|")
    for name, o in results["original"].items():
        for m in ("loss", "calibrated", "interleave", "cleanlab"):
            rest = o[m]["top50"]["labels_of_the_rest"]
            print(f"| {name} | {m} | {o[m]['top20']['conflicting_duplicates']} | {o[m]['top50']['conflicting_duplicates']} "
                  f"| {', '.join(f'{k} {v}' for k, v in rest.items())} |")


if __name__ == "__main__":
    main()
