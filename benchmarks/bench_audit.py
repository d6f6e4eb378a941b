"""Finding injected coding errors: precision@k, recall@k and PR-AUC of the audit's ranking.

For each data set and noise level, ``rate`` of every label's positives are flipped to 0 and as many
negatives to 1 (seeded); one cross-fitting (5 folds, group-aware, TF-IDF) gives out-of-fold probabilities,
and on the same probabilities, in the same run, three rankings per label are compared (k = number of
flips injected into that label):

* ``loss``      lexcoder's default: out-of-fold self-confidence (= cross-entropy loss), all pairs ranked;
* ``cleanlab``  ``cleanlab.multilabel_classification.filter.find_multilabel_issues_per_class(labels,
                pred_probs, return_indices_ranked_by="self_confidence")`` as documented (default
                ``filter_by="prune_by_noise_rate"``): its ranked list is what a reviewer sees; when it
                holds fewer than k pairs the missing places count as misses; its PR-AUC ranks its list
                first and the rest by self-confidence;
* ``random``    a seeded random ranking.

Also reported: cleanlab's flagged-set size/precision/recall, the queue-level precision@K over all labels
pooled (K = all flips; our queue mixes labels), lexcoder's confident-learning noise estimate, and the
wall time of ``lexcoder audit`` on the whole ToS data set.

    nice -n 10 .venv/bin/python benchmarks/bench_audit.py [--datasets tos,echr] [--rates 0.02,0.05,0.1]
"""
from __future__ import annotations

import argparse
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
from lexcoder.audit import audit_folds, audit_run, noise_estimates, out_of_fold_proba, score_pairs  # noqa: E402
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


def evaluate(Y: np.ndarray, P: np.ndarray, flipped: np.ndarray, labels: list[str], seed: int,
             preexisting: np.ndarray | None = None) -> dict:
    """Per-label and pooled figures for the three rankings on the same out-of-fold probabilities.

    ``preexisting``: pairs the audit of the unmodified data already queues; with it, ``loss_new`` ranks
    the other pairs only (the data's own suspect codes are not counted as misses).
    """
    score, _ = score_pairs(Y, P, method="loss")
    cl_lists = cleanlab_lists(Y, P)
    rng = np.random.default_rng(seed + 1)
    per_label = {}
    for j, lab in enumerate(labels):
        truth, k = flipped[:, j], int(flipped[:, j].sum())
        loss_order = np.argsort(score[:, j], kind="stable")
        cl = cl_lists[j]
        rest = loss_order[~np.isin(loss_order, cl)]
        cl_rank = np.empty(len(truth))
        cl_rank[np.r_[cl, rest]] = np.arange(len(truth))
        rand = rng.permutation(len(truth))
        row = {"k": k}
        for name, order, s in (("loss", loss_order, -score[:, j]), ("cleanlab", cl, -cl_rank),
                               ("random", rand, rng.random(len(truth)))):
            p, r = at_k(order, truth, k)
            row[name] = {"precision_at_k": p, "recall_at_k": r, "pr_auc": float(average_precision_score(truth, s))}
        if preexisting is not None:
            keep = ~preexisting[loss_order, j] | truth[loss_order]
            p, r = at_k(loss_order[keep], truth, k)
            row["loss_new"] = {"precision_at_k": p, "recall_at_k": r,
                               "preexisting_in_top_k": int(preexisting[loss_order[:k], j].sum())}
        hits = truth[cl].sum()
        row["cleanlab"].update(flagged=int(len(cl)), set_precision=float(hits / max(len(cl), 1)),
                               set_recall=float(hits / k))
        per_label[lab] = row
    K = int(flipped.sum())
    pooled = np.argsort(score.ravel(), kind="stable")[:K]
    return {"labels": per_label, "pooled_queue_precision_at_K": float(flipped.ravel()[pooled].mean()),
            "pooled_random_precision_at_K": float(flipped.mean()), "K": K,
            "noise_estimate": {lab: v["estimated_noise_rate"] for lab, v in noise_estimates(Y, P, labels).items()},
            "injected_noise_rate": {lab: float(flipped[:, j].mean()) for j, lab in enumerate(labels)}}


def preexisting(df: pd.DataFrame, Y0: np.ndarray, labels: list[str], seed: int) -> np.ndarray:
    """Pairs that lexcoder's audit of the unmodified data flags (its own likely coding errors)."""
    folds = audit_folds(df, labels, seed=seed)
    _, flagged = score_pairs(Y0, out_of_fold_proba(df["text"], Y0, folds, label_names=labels), method="loss")
    return flagged


def means(block: dict, labels: list[str]) -> dict:
    out = {}
    for m in ("loss", "cleanlab", "random"):
        for key in ("precision_at_k", "recall_at_k", "pr_auc"):
            out[f"{m}_{key}"] = float(np.mean([block["labels"][lab][m][key] for lab in labels]))
    if "loss_new" in block["labels"][labels[0]]:
        out["loss_new_precision_at_k"] = float(np.mean([block["labels"][lab]["loss_new"]["precision_at_k"]
                                                        for lab in labels]))
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="tos,echr")
    ap.add_argument("--rates", default="0.02,0.05,0.1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-timing", action="store_true", help="skip timing the whole-ToS audit")
    ap.add_argument("--exclude-preexisting", action="store_true",
                    help="also audit the unmodified data and report precision@k without its suspect codes")
    ap.add_argument("--docs", type=int, default=None,
                    help="use a seeded sample of this many documents per data set (default: all)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/audit.json"))
    args = ap.parse_args()
    results = {"protocol": "flip rate*positives 1->0 and as many 0->1 per label (seeded); 5-fold group-aware "
                           "cross-fitting, TF-IDF (lexcoder defaults); k = flips injected into the label",
               "seed": args.seed, "runs": []}
    for name in args.datasets.split(","):
        df, labels, frequent = load(name, args.docs, args.seed)
        Y0 = df[labels].to_numpy().astype(int)
        pre = preexisting(df, Y0, labels, args.seed) if args.exclude_preexisting else None
        for rate in map(float, args.rates.split(",")):
            flipped = inject(Y0, rate, args.seed)
            Y = np.where(flipped, 1 - Y0, Y0)
            t0 = time.perf_counter()
            folds = audit_folds(df.assign(**{lab: Y[:, j] for j, lab in enumerate(labels)}), labels, seed=args.seed)
            P = out_of_fold_proba(df["text"], Y, folds, label_names=labels)
            seconds = time.perf_counter() - t0
            block = evaluate(Y, P, flipped, labels, args.seed, pre)
            block.update(dataset=name, rate=rate, rows=len(df), documents=int(df["group"].nunique()),
                         crossfit_seconds=round(seconds, 1),
                         mean_all=means(block, labels), mean_frequent=means(block, frequent), frequent=frequent)
            results["runs"].append(block)
            print_row(block)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2))
    if not args.no_timing:
        results["full_tos_audit"] = time_full_audit()
        print(f"lexcoder audit on the whole ToS data (TF-IDF, 5 folds): {results['full_tos_audit']}")
    results["encoder_timing"] = "not measured: see benchmarks/README.md"
    Path(args.out).write_text(json.dumps(results, indent=2))
    print_table(results)


def print_row(b: dict) -> None:
    f = b["mean_frequent"]
    print(f"{b['dataset']} {b['rate']:.0%}: P@k loss {f['loss_precision_at_k']:.3f} cleanlab "
          f"{f['cleanlab_precision_at_k']:.3f} random {f['random_precision_at_k']:.3f} "
          f"({b['crossfit_seconds']} s)", file=sys.stderr)


def print_table(results: dict) -> None:
    print("| data | noise | labels | P@k loss | P@k cleanlab | P@k random | R@k loss | R@k cleanlab "
          "| PR-AUC loss | PR-AUC cleanlab | PR-AUC random | queue P@K (all labels) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for b in results["runs"]:
        for which, m in (("frequent", b["mean_frequent"]), ("all", b["mean_all"])):
            if which == "all" and b["frequent"] == list(b["labels"]):
                continue
            print(f"| {b['dataset']} | {b['rate']:.0%} | {which} ({len(b['frequent']) if which == 'frequent' else len(b['labels'])}) "
                  f"| {m['loss_precision_at_k']:.3f} | {m['cleanlab_precision_at_k']:.3f} | {m['random_precision_at_k']:.3f} "
                  f"| {m['loss_recall_at_k']:.3f} | {m['cleanlab_recall_at_k']:.3f} "
                  f"| {m['loss_pr_auc']:.3f} | {m['cleanlab_pr_auc']:.3f} | {m['random_pr_auc']:.3f} "
                  f"| {b['pooled_queue_precision_at_K']:.3f} |")


if __name__ == "__main__":
    main()
