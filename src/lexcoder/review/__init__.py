"""The review desk: code and correct texts in the browser, alone or as a team (``lexcoder review RUN_DIR``).

- :mod:`~lexcoder.review.store`: the SQLite (WAL) store: append-only events, leases, double coding;
- :mod:`~lexcoder.review.state`: what an item's events add up to (status, final codes; never last-write-wins);
- :mod:`~lexcoder.review.sources`: the run's audit queue and new texts to code as items;
- :mod:`~lexcoder.review.agreement`: κ, α and AC1 of the double-coded items, with bootstrap intervals;
- :mod:`~lexcoder.review.export`: decision and coded tables, and the corrections ledger;
- :mod:`~lexcoder.review.app`: the web app (FastAPI, Jinja2 templates, plain JavaScript; the ``review`` extra).

Typical use::

    from lexcoder.review import open_run_store, export_ledger
    store = open_run_store("runs/exp1", settings={"double_share": 0.2})
    item = store.next_item("A. Coder", "audit")
    store.record("A. Coder", item["item_id"], "flip", action_id="a1b2c3d4e5")
    export_ledger(store, "runs/exp1", "corrections.csv")
"""
from __future__ import annotations

from .agreement import agreement_table, agreement_with_intervals
from .export import coded_table, decisions_table, export_ledger, table_bytes, write_table_safely
from .sources import load_texts, open_run_store, run_fields
from .store import DEFAULT_SETTINGS, Ack, Field, Filters, ReviewError, ReviewStore

__all__ = ["Ack", "DEFAULT_SETTINGS", "Field", "Filters", "ReviewError", "ReviewStore", "agreement_table",
           "agreement_with_intervals", "coded_table", "decisions_table", "export_ledger", "load_texts",
           "open_run_store", "run_fields", "table_bytes", "write_table_safely"]
