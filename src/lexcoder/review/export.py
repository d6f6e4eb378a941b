"""Out of the desk: the decisions as tables, and the audit decisions into the corrections ledger.

- :func:`decisions_table`: one row per (item, label) with every coder's code, the adjudicator's, the final
  code and the notes (long format, for the project's records);
- :func:`coded_table`: the new texts with their final codes, one column per label (wide, to train on),
  plus both coders' codes of the double-coded texts;
- :func:`write_table_safely` / :func:`table_bytes`: such a table as a file or a download, with cells a
  spreadsheet would run as formulas neutralised (:func:`lexcoder.safety.neutralise_formulas`);
- :func:`export_ledger`: the final audit decisions appended to the corrections ledger through
  :func:`lexcoder.audit.apply_review` (the ledger's own checks, locking and idempotence, and the run's
  ``audit_summary.json`` updated), one batch per reviewer credit.
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..io import table_format, write_table
from ..ledger import apply_ledger, read_ledger
from ..rundir import RunDir, check_output_file
from ..safety import neutralise_formulas, safe_filename
from .store import ReviewError, ReviewStore, value_text

log = logging.getLogger(__name__)

DECISION_COLUMNS = ["kind", "id", "label", "text", "human_value", "final_value", "decision", "status", "coder_1",
                    "value_1", "coder_2", "value_2", "other_coders", "adjudicator", "adjudicated_value", "notes",
                    "model_probability", "score", "reason", "group", "source_row", "rank", "item_id"]
SPREADSHEETS = ("csv", "tsv", "xlsx")


def decisions_table(store: ReviewStore) -> pd.DataFrame:
    """Every (item, label) with its codes: one row per audit row and per (new text, label).

    Returns
    -------
    DataFrame with :data:`DECISION_COLUMNS`: ``final_value`` is the adjudicator's code, else the code the
    coders agree on once the item has as many coders as it needs (empty otherwise); ``decision`` says what
    it does to an audit row's code (``keep``, ``flip``, ``change``); ``group`` the conflicting-duplicate group
    an audit row was decided with (one decision for every copy, each copy a row); ``coder_1``/``value_1`` and
    ``coder_2``/``value_2`` are the first two coders to decide (independently), ``other_coders`` any later
    ones (``name=value``)
    """
    items = store.items_table()
    if items.empty:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    labels = [f.name for f in store.fields]
    rows = pd.concat([items[items["kind"] == "audit"],
                      items[items["kind"] == "code"].merge(pd.DataFrame({"field": labels}), how="cross")
                      .assign(label=lambda d: d.pop("field"))], ignore_index=True)
    values = store.decided_values(role=None)
    coders = _coders(values[values["role"] == "coder"])
    resolved = (values[values["role"] == "adjudicator"].sort_values("order").groupby(["item_id", "label"]).last()
                [["coder", "value"]].rename(columns={"coder": "adjudicator", "value": "adjudicated_value"}))
    out = rows.merge(coders, on=["item_id", "label"], how="left").merge(resolved, on=["item_id", "label"], how="left")
    out["final_value"] = _final(out)
    out["decision"] = [_decision(k, h, f) for k, h, f in zip(out["kind"], out["human_value"], out["final_value"])]
    notes = store.all_notes()
    out["notes"] = [notes.get(i, "") for i in out["item_id"]]
    return out.rename(columns={"text_id": "id", "dup_group": "group"})[DECISION_COLUMNS].fillna({"final_value": ""})


def _coders(values: pd.DataFrame) -> pd.DataFrame:
    """Per (item, label): the first two coders and their codes, and any later ones as ``name=value``."""
    ordered = values.sort_values("order")
    rank = ordered.groupby(["item_id", "label"]).cumcount()
    first, second = ordered[rank == 0], ordered[rank == 1]
    later = ordered[rank >= 2].assign(pair=lambda d: d["coder"] + "=" + d["value"].astype(str))
    out = (first.set_index(["item_id", "label"])[["coder", "value"]]
           .rename(columns={"coder": "coder_1", "value": "value_1"}))
    out = out.join(second.set_index(["item_id", "label"])[["coder", "value"]]
                   .rename(columns={"coder": "coder_2", "value": "value_2"}))
    out = out.join(later.groupby(["item_id", "label"])["pair"].agg("; ".join).rename("other_coders"))
    return out.reset_index()


def _final(table: pd.DataFrame) -> pd.Series:
    """The final code of each row, by the item's status (see :mod:`lexcoder.review.state`)."""
    done = table["status"].eq("done")
    out = pd.Series("", index=table.index, dtype=object)
    out[done] = table.loc[done, "value_1"]
    resolved = table["status"].eq("resolved")
    out[resolved] = table.loc[resolved, "adjudicated_value"]
    return out.fillna("")


def _decision(kind: str, human: Any, final: str) -> str:
    if kind != "audit" or not final:
        return ""
    if final == human:
        return "keep"
    return "flip" if {final, human} == {"0", "1"} else "change"


def coded_table(store: ReviewStore) -> pd.DataFrame:
    """The new texts with their codes: ``id``, ``text``, one column per label/variable holding the final
    code (empty until final), ``status``, ``coders``; for texts two coders coded, ``<label>_coder1`` and
    ``<label>_coder2`` with their independent codes (for agreement figures, e.g. ``[data]
    second_coder_suffix``)."""
    table = decisions_table(store)
    table = table[table["kind"] == "code"]
    labels = [f.name for f in store.fields]
    if table.empty:
        return pd.DataFrame(columns=["id", "text", *labels, "status", "coders"])
    keys = ["item_id", "id", "text", "status", "rank", "reason"]
    wide = table.pivot_table(index=keys, columns="label", values="final_value", aggfunc="first").reindex(columns=labels)
    out = wide.reset_index()
    coders = table.groupby("item_id").apply(lambda d: ", ".join(
        dict.fromkeys(c for c in [*d["coder_1"], *d["coder_2"]] if isinstance(c, str))), include_groups=False)
    out["coders"] = out["item_id"].map(coders)
    double = table[table["value_2"].notna()]
    for k, column in ((1, "value_1"), (2, "value_2")):
        part = double.pivot_table(index="item_id", columns="label", values=column, aggfunc="first")
        for lab in labels:
            if lab in part:
                out[f"{lab}_coder{k}"] = out["item_id"].map(part[lab])
    out = out.sort_values("rank").drop(columns=["item_id", "rank"])
    per_coder = [c for c in out.columns if c.endswith(("_coder1", "_coder2"))]
    return out[["id", "text", *labels, "status", "coders", *per_coder, *_provenance(out)]]


def _provenance(out: pd.DataFrame) -> list[str]:
    """Adds the active-learning provenance columns to ``out`` when some texts were loaded in active order
    (their ``reason``), so the coded table can train a model but is refused as a gold sample; returns the
    added column names."""
    from ..active.provenance import BATCH_COLUMN, STRATEGY_COLUMN
    from .sources import ACTIVE_REASON
    active = out["reason"].astype(str).eq(ACTIVE_REASON)
    if not active.any():
        return []
    out[BATCH_COLUMN] = active.map({True: "review desk", False: ""})
    out[STRATEGY_COLUMN] = active.map({True: "active (lexcoder review --order active)", False: ""})
    return [BATCH_COLUMN, STRATEGY_COLUMN]


def write_table_safely(df: pd.DataFrame, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write an export table (format by extension); a CSV/TSV/XLSX gets would-be formulas neutralised.

    The path must not be inside a run folder nor exist (without ``overwrite``):
    :func:`lexcoder.rundir.check_output_file`.
    """
    path = Path(path)
    check_output_file(path, inputs=[], overwrite=overwrite)
    write_table(neutralise_formulas(df) if table_format(path) in SPREADSHEETS else df, path)
    return path


def table_bytes(df: pd.DataFrame, fmt: str) -> bytes:
    """An export table as the bytes of a ``csv`` (UTF-8 with a byte-order mark, for Excel) or ``xlsx`` file,
    formulas neutralised: what the desk sends as a download."""
    if fmt not in ("csv", "xlsx"):
        raise ReviewError(f"Downloads are csv or xlsx, not {fmt!r}.", status=404)
    safe = neutralise_formulas(df)
    if fmt == "csv":
        return safe.to_csv(index=False).encode("utf-8-sig")
    with tempfile.TemporaryDirectory() as tmp:
        return write_table(safe, Path(tmp) / "table.xlsx").read_bytes()


@dataclass
class LedgerExport:
    """What :func:`export_ledger` did: entries appended, decisions already in the ledger, and stale ones."""

    ledger: Path
    added: int = 0
    flipped: int = 0
    already: int = 0
    stale: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"ledger": str(self.ledger), "added": self.added, "flipped": self.flipped, "already": self.already,
                "stale": self.stale}


def export_ledger(store: ReviewStore, run_dir: str | Path, ledger: str | Path) -> LedgerExport:
    """Append the final decisions on the run's audit rows to the corrections ledger.

    A decision is written once (exporting again adds nothing), credited to its coder (``A``), both coders
    who agreed (``A & B``) or the adjudicator (``C (adjudicated A, B)``). A decision whose row shows a code
    that someone else corrected since (the ledger's current code differs and the desk did not write it) is
    not written but listed in ``stale``: look at it again. Entries go through
    :func:`lexcoder.audit.apply_review`, under the run folder's lock.
    """
    from ..audit import apply_review
    run = RunDir(Path(run_dir))
    cfg = run.load_config()
    ledger = Path(ledger)
    decisions = decisions_table(store)
    decisions = decisions[(decisions["kind"] == "audit") & decisions["final_value"].ne("")]
    existing = read_ledger(ledger, cfg.data.class_columns)
    current = apply_ledger(run.read_table(run.data), existing, cfg.data.label_columns,
                           class_columns=cfg.data.class_columns, source=str(ledger)).set_index("id")
    latest = {(str(r.id), r.label): str(r.new_value) for r in existing.itertuples()}
    exported = store.exported(str(ledger.resolve()))
    result, rows = LedgerExport(ledger), []
    for rec in decisions.to_dict("records"):
        now = _text(current.at[rec["id"], rec["label"]]) if rec["id"] in current.index else None
        if latest.get((rec["id"], rec["label"])) == rec["final_value"]:
            result.already += 1
        elif now == rec["human_value"] or (rec["item_id"], rec["label"]) in exported:
            rows.append(_reviewed_row(rec, now))
        else:
            result.stale.append({"id": rec["id"], "label": rec["label"], "shown": rec["human_value"], "now": now})
    if rows:
        _apply(pd.DataFrame(rows), run, ledger, apply_review, result)
        store.record_export([(r["item_id"], r["label"], r["target"]) for r in rows], str(ledger.resolve()))
    return result


def _reviewed_row(rec: dict[str, Any], now: str | None) -> dict[str, Any]:
    """A row of a reviewed queue that moves the current code ``now`` to the final one."""
    final, is_label = rec["final_value"], {rec["human_value"], rec["final_value"]} <= {"0", "1"}
    decision = "keep" if final == now else ("flip" if is_label else "change")
    return {"id": rec["id"], "label": rec["label"], "human_value": now, "decision": decision,
            "new_value": "" if is_label or decision == "keep" else final, "note": rec["notes"],
            "reviewer": _credit(rec), "item_id": rec["item_id"], "target": final}


def _credit(rec: dict[str, Any]) -> str:
    coders = [c for c in (rec["coder_1"], rec["coder_2"]) if isinstance(c, str)]
    if rec["status"] == "resolved":
        return f"{rec['adjudicator']} (adjudicated {', '.join(coders)})" if coders else str(rec["adjudicator"])
    return " & ".join(coders)


def _apply(rows: pd.DataFrame, run: RunDir, ledger: Path, apply_review, result: LedgerExport) -> None:
    """One :func:`~lexcoder.audit.apply_review` per reviewer credit (the ledger records one per entry)."""
    with tempfile.TemporaryDirectory() as tmp:
        for reviewer, part in rows.groupby("reviewer", sort=True):
            path = Path(tmp) / f"review-desk-{safe_filename(reviewer)}.parquet"
            columns = ["id", "label", "human_value", "decision", "new_value", "note"]
            write_table(part[columns].astype(str), path)
            added = apply_review(run.root, path, reviewer=reviewer, ledger=ledger).added
            result.added += len(added)
            result.flipped += int((added["old_value"].astype(str) != added["new_value"].astype(str)).sum())


def _text(value: Any) -> str:
    return value_text(value) or ""
