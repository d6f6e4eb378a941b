"""The review desk's store: one SQLite file in WAL mode with an append-only event log.

Every action of a coder is one or more rows of the ``events`` table (who, when, which item, which label,
what value, a note, the client's event id, and for an undo the event it supersedes). Rows are never
updated or deleted (triggers refuse it), so the log is the project's complete history. What a coder
sees — each item's status, who decided what, the final codes — is derived from the live events through
the views ``live_events`` → ``stances`` → ``current_values`` and the rules of :mod:`lexcoder.review.state`;
``items.status``/``items.n_coders`` and the ``coder_state`` table cache that derivation per item, updated
in the same transaction as the events that change it, and :meth:`ReviewStore.rebuild` recomputes them
from the events alone.

Guarantees:

- **acknowledged = committed**: a method that records an action returns only after the transaction is
  committed with ``synchronous = FULL`` (the write-ahead log is on disk), so a decision the browser was
  told about survives a ``kill -9`` of the server or a power cut;
- **idempotent retries**: an action carries a client-made ``action_id``; sending it again records nothing
  and answers as the first time (``duplicate = True``);
- **leases**: :meth:`ReviewStore.next_item` leases the item to the coder for ``lease_minutes``; nobody else
  gets it meanwhile (a double-coded item is leased to two coders); a lease lapses when a coder leaves;
- **never last-write-wins**: two coders who decide an item differently make it a conflict for the
  adjudicator (:mod:`lexcoder.review.state`).

An audit item also holds why the audit flagged it (``evidence``, ``nearest_other``, ``block``: shown through
:mod:`lexcoder.review.why`); the copies of a conflicting-duplicate group are one review item, the group's
first copy, whose decisions are recorded on every copy (:meth:`ReviewStore.load_items`). A store an earlier
lexcoder wrote is upgraded when opened (:data:`_MIGRATIONS`).

Several processes may share the file (SQLite's locking); in one process, writes go through one lock.
"""
from __future__ import annotations

import hashlib
import json
import numbers
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ConfigError, LexcoderError
from .state import ADJUDICATION, DECISIONS, STANCES, Stance, item_state, stances_from_rows
from .why import explain_row

log = logging.getLogger(__name__)

KINDS = ("audit", "code")
"""``audit``: one (text, label) row of the audit queue per item; ``code``: a new text, every label at once."""
_GROUP = 13  # position of dup_group in a record of ReviewStore._item_record
ACTIONS = (*STANCES, "skip", "note", "undo")
SCHEMA_VERSION = 2
"""Version of the store's tables; a file of an earlier version is upgraded on opening (:data:`_MIGRATIONS`)."""
MAX_NOTE = 4000
MAX_NAME = 60
DEFAULT_SETTINGS: dict[str, Any] = {"double_share": 0.0, "lease_minutes": 10.0, "suggestions": False,
                                    "owner": None, "adjudicators": [], "seed": 0}



def _quoted(words: Sequence[str]) -> str:
    """``'a', 'b'``: fixed words of this module for an SQL ``IN`` list (never user input)."""
    return ", ".join(f"'{w}'" for w in words)


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS items (
    item_id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('audit', 'code')),
    text_id TEXT NOT NULL,
    label TEXT NOT NULL,             -- the audit row's label or variable; '' for a new text (every label)
    text TEXT NOT NULL,
    human_value TEXT,                -- the code under review (audit rows)
    suggested_value TEXT,            -- the model's alternative (audit rows)
    model_probability REAL,
    score REAL,
    reason TEXT NOT NULL DEFAULT '',
    suggestion TEXT,                 -- JSON {{label: probability or class}} of the model (new texts)
    source_row INTEGER,
    rank REAL NOT NULL,
    draw REAL NOT NULL,              -- uniform in [0, 1) from the item's key: double-coded if < the share
    required INTEGER NOT NULL DEFAULT 1 CHECK (required IN (1, 2)),
    active INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'open',      -- cache of the events (see lexcoder.review.state)
    n_coders INTEGER NOT NULL DEFAULT 0,      -- cache of the events
    evidence TEXT NOT NULL DEFAULT '',        -- why the audit flagged it (lexcoder.audit.explain), version 2 on
    nearest_other TEXT NOT NULL DEFAULT '',
    dup_group TEXT NOT NULL DEFAULT '',       -- the queue's conflicting-duplicate group (G1, ...) and its copies
    copies TEXT NOT NULL DEFAULT '',
    block TEXT NOT NULL DEFAULT '',           -- the cluster of flags it belongs to (doc_id=X)
    member_of INTEGER,                        -- another copy of its group: the group's first item (its lead)
    UNIQUE (kind, text_id, label));
CREATE INDEX IF NOT EXISTS items_queue ON items (kind, status, rank);
CREATE INDEX IF NOT EXISTS items_member ON items (member_of) WHERE member_of IS NOT NULL;
CREATE INDEX IF NOT EXISTS items_label ON items (kind, label, status, rank);
CREATE TABLE IF NOT EXISTS status_counts (  -- active items per status, kept by the triggers below
    kind TEXT NOT NULL, label TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (kind, label, status)) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS items_counted AFTER INSERT ON items WHEN NEW.active = 1 BEGIN
    INSERT INTO status_counts VALUES (NEW.kind, NEW.label, NEW.status, 1)
        ON CONFLICT (kind, label, status) DO UPDATE SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS items_recounted AFTER UPDATE OF status, active ON items
    WHEN OLD.status <> NEW.status OR OLD.active <> NEW.active BEGIN
    UPDATE status_counts SET n = n - 1
        WHERE OLD.active = 1 AND kind = OLD.kind AND label = OLD.label AND status = OLD.status;
    INSERT INTO status_counts SELECT NEW.kind, NEW.label, NEW.status, 1 WHERE NEW.active = 1
        ON CONFLICT (kind, label, status) DO UPDATE SET n = n + 1; END;
CREATE TABLE IF NOT EXISTS events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_event_id TEXT NOT NULL UNIQUE,
    action_id TEXT NOT NULL,
    coder TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('coder', 'adjudicator')),
    at TEXT NOT NULL,
    item_id INTEGER NOT NULL REFERENCES items (item_id),
    label TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ({_quoted(ACTIONS)})),
    value TEXT,
    note TEXT NOT NULL DEFAULT '',
    supersedes INTEGER REFERENCES events (event_id));
CREATE INDEX IF NOT EXISTS events_item ON events (item_id, coder);
CREATE INDEX IF NOT EXISTS events_action ON events (action_id);
CREATE INDEX IF NOT EXISTS events_coder ON events (coder, event_id);
CREATE INDEX IF NOT EXISTS events_supersedes ON events (supersedes) WHERE supersedes IS NOT NULL;
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the review events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'the review events are append-only'); END;
CREATE TABLE IF NOT EXISTS leases (
    item_id INTEGER NOT NULL, coder TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (item_id, coder)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS leases_coder ON leases (coder, expires);
CREATE TABLE IF NOT EXISTS coder_state (
    coder TEXT NOT NULL, item_id INTEGER NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (coder, item_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS coder_state_item ON coder_state (item_id);
CREATE TABLE IF NOT EXISTS codebook (
    rev INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT NOT NULL, definition TEXT NOT NULL,
    examples TEXT NOT NULL, editor TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS exports (
    item_id INTEGER NOT NULL, label TEXT NOT NULL, value TEXT NOT NULL, ledger TEXT NOT NULL, at TEXT NOT NULL);
CREATE VIEW IF NOT EXISTS live_events AS
    SELECT e.* FROM events e
    WHERE e.action <> 'undo' AND NOT EXISTS (SELECT 1 FROM events u WHERE u.supersedes = e.event_id);
CREATE VIEW IF NOT EXISTS stances AS
    SELECT item_id, coder, role, action_id, action, MAX(event_id) AS stance_event
    FROM live_events WHERE action IN ({_quoted(STANCES)})
    GROUP BY item_id, coder, role;
CREATE VIEW IF NOT EXISTS current_values AS
    SELECT s.item_id, s.coder, s.role, s.action, s.stance_event, e.label, e.value, e.note
    FROM stances s JOIN events e ON e.action_id = s.action_id AND e.coder = s.coder AND e.action = s.action
        AND e.item_id = s.item_id;
"""


_MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (*(f"ALTER TABLE items ADD COLUMN {c}" for c in (
            "evidence TEXT NOT NULL DEFAULT ''", "nearest_other TEXT NOT NULL DEFAULT ''",
            "dup_group TEXT NOT NULL DEFAULT ''", "copies TEXT NOT NULL DEFAULT ''",
            "block TEXT NOT NULL DEFAULT ''", "member_of INTEGER")),
        "DROP VIEW IF EXISTS current_values"),  # made again by _SCHEMA: per item, as one action may decide copies
}
"""``{version: statements}`` that bring a store of the version before up to ``version`` (its data kept);
``_SCHEMA`` then adds what is missing (indexes, views). Version 2: the audit queue's explanations and its
conflicting-duplicate groups (columns of ``items``)."""


class ReviewError(LexcoderError):
    """A review action that cannot be done as asked; ``status`` is the HTTP status the app answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Field:
    """One coded column of the codebook: a 0/1 label (``classes`` None) or a categorical variable."""

    name: str
    classes: tuple[str, ...] | None = None

    @property
    def values(self) -> tuple[str, ...]:
        """The values a decision may give it: ``("0", "1")`` or the variable's classes."""
        return ("0", "1") if self.classes is None else self.classes

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "label" if self.classes is None else "variable",
                "values": list(self.values)}


@dataclass(frozen=True)
class Filters:
    """Which items :meth:`ReviewStore.next_item` may serve: one label, a score range (audit rows)."""

    label: str | None = None
    score_min: float | None = None
    score_max: float | None = None

    def sql(self) -> tuple[str, list[Any]]:
        parts, args = [], []
        for clause, value in (("i.label = ?", self.label), ("i.score >= ?", self.score_min),
                              ("i.score <= ?", self.score_max)):
            if value is not None and value != "":
                parts.append(clause)
                args.append(value)
        return "".join(f" AND {p}" for p in parts), args


@dataclass
class Ack:
    """The answer to a recorded action: it is committed (and was new, or a retry of ``action_id``)."""

    action_id: str
    item_id: int
    kind: str = ""
    duplicate: bool = False
    status: str = ""
    undone: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def utc_now() -> str:
    """The time of an event: ISO 8601, UTC, milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def check_name(name: Any, what: str = "coder name") -> str:
    """A coder's name, stripped; refused when empty, too long or holding control characters."""
    text = str(name or "").strip()
    if not text or len(text) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ReviewError(f"A {what} of 1 to {MAX_NAME} printable characters is required (got {text[:80]!r}).",
                          status=422)
    return text


def draw(seed: int, kind: str, text_id: str, label: str) -> float:
    """The item's fixed uniform draw in [0, 1): it is double-coded when the draw is below the share."""
    digest = hashlib.sha256(f"{seed}\x1f{kind}\x1f{text_id}\x1f{label}".encode("utf-8", "surrogatepass"))
    return int.from_bytes(digest.digest()[:8], "big") / 2 ** 64


class ReviewStore:
    """The review desk's SQLite store (see the module docstring).

    Parameters
    ----------
    path : the SQLite file (a run's is :attr:`lexcoder.rundir.RunDir.review_store`)
    fields : the codebook's labels and variables; required when the file is new, checked against the
        stored ones otherwise (a label added to the run later is added)
    settings : settings to store (see :data:`DEFAULT_SETTINGS`; others keep their stored value)
    """

    def __init__(self, path: str | Path, *, fields: Sequence[Field] | None = None,
                 settings: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.clock = time.time  # seconds; tests move it to expire leases
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._init(fields)
        if settings:
            self.update_settings(**settings)

    # -- connections ------------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            except sqlite3.Error as err:
                raise ReviewError(f"Cannot open the review store {self.path}: {err}. Check that the folder "
                                  "exists and is writable.", status=503) from None
            db.execute("PRAGMA busy_timeout = 30000")
            db.execute("PRAGMA synchronous = FULL")  # a commit is on disk before it is acknowledged
            db.execute("PRAGMA foreign_keys = ON")
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        with self._lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: writers queue instead of failing), committed on exit.

        ``durable=False`` (leases only: losing one costs nothing) commits without waiting for the disk; the
        next durable commit writes it out with everything before it.
        """
        db = self._conn()
        with self._lock:
            if not durable:
                db.execute("PRAGMA synchronous = NORMAL")
            try:
                self._transaction(db)
                yield db
                self._commit(db)
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            finally:
                if not durable:
                    db.execute("PRAGMA synchronous = FULL")

    def _transaction(self, db: sqlite3.Connection) -> None:
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            raise ReviewError(f"The review store {self.path} is busy or cannot be written ({err}); try again.",
                              status=503) from None

    def _commit(self, db: sqlite3.Connection) -> None:
        try:
            db.execute("COMMIT")
        except sqlite3.Error as err:  # disk full, I/O error: nothing was recorded
            raise ReviewError(f"Cannot write the review store {self.path} ({err}): nothing was saved. Free disk "
                              "space, then try again.", status=503) from None

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        db = self._conn()
        db.row_factory = sqlite3.Row
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.row_factory = None

    def _init(self, fields: Sequence[Field] | None) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ReviewError(f"Cannot create {self.path.parent}: {err.strerror}.", status=503) from None
        db = self._conn()
        try:
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._migrate(db)
            db.executescript(_SCHEMA)  # idempotent (IF NOT EXISTS); executescript commits by itself
        except sqlite3.DatabaseError as err:
            raise ReviewError(f"{self.path} cannot be used as a review store ({err}). Move it away to start "
                              "a new one.", status=503) from None
        if mode.lower() != "wal":
            log.warning("The review store %s runs in %s mode (no WAL on this file system).", self.path, mode)
        with self._write() as db:
            stored = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if "version" not in stored:
                if not fields:
                    raise ConfigError(f"{self.path} is a new review store: give the labels it codes (fields).")
                db.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("version", str(SCHEMA_VERSION)), ("secret", secrets.token_hex(32)),
                    ("settings", json.dumps(DEFAULT_SETTINGS)), ("fields", "[]")])
                stored = dict(db.execute("SELECT key, value FROM meta").fetchall())
            known = [Field(f["name"], tuple(f["classes"]) if f["classes"] is not None else None)
                     for f in json.loads(stored["fields"])]
            merged = _merge_fields(known, list(fields or []))
            db.execute("UPDATE meta SET value = ? WHERE key = 'fields'",
                       (json.dumps([{"name": f.name, "classes": f.classes} for f in merged]),))
        self.fields = merged
        self.secret = stored["secret"]

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Upgrade a store an earlier lexcoder wrote to :data:`SCHEMA_VERSION`, in one transaction (a second
        process opening it meanwhile waits, then finds it upgraded); a new or current file is left alone."""
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone() is None:
            return
        with self._write() as w:
            row = w.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
            version = None if row is None else int(row[0])
            if version is not None and version > SCHEMA_VERSION:  # refused before anything touches it
                raise ConfigError(f"{self.path} was written by a newer lexcoder (store version {version}); "
                                  "upgrade lexcoder to open it.")
            if version is None or version == SCHEMA_VERSION:
                return
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[step]:
                    w.execute(statement)
            w.execute("UPDATE meta SET value = ? WHERE key = 'version'", (str(SCHEMA_VERSION),))
        log.info("Upgraded the review store %s from version %d to %d.", self.path, version, SCHEMA_VERSION)

    # -- settings ---------------------------------------------------------------------------------
    @property
    def settings(self) -> dict[str, Any]:
        """The stored settings (:data:`DEFAULT_SETTINGS` keys)."""
        value = self._rows("SELECT value FROM meta WHERE key = 'settings'")[0][0]
        return {**DEFAULT_SETTINGS, **json.loads(value)}

    def update_settings(self, **changes: Any) -> dict[str, Any]:
        """Change settings (checked); a new ``double_share`` applies to the items nobody has decided yet."""
        unknown = sorted(set(changes) - set(DEFAULT_SETTINGS))
        if unknown:
            raise ConfigError(f"Unknown review setting(s) {unknown}; known: {sorted(DEFAULT_SETTINGS)}.")
        checked = {k: _check_setting(k, v) for k, v in changes.items() if v is not None or k == "owner"}
        with self._write() as db:
            current = {**DEFAULT_SETTINGS, **json.loads(
                db.execute("SELECT value FROM meta WHERE key = 'settings'").fetchone()[0])}
            current.update(checked)
            db.execute("UPDATE meta SET value = ? WHERE key = 'settings'", (json.dumps(current),))
            if "double_share" in checked:
                db.execute("UPDATE items SET required = CASE WHEN draw < ? THEN 2 ELSE 1 END "
                           "WHERE n_coders = 0 AND status = 'open'", (current["double_share"],))
        return current

    def meta(self, key: str) -> str | None:
        """A stored value of the desk's own bookkeeping (e.g. which audit queue was loaded)."""
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (f"x:{key}",)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as db:
            db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                       (f"x:{key}", value))

    def max_rank(self, kind: str) -> float:
        """The largest rank of the items of ``kind`` (-1 without any): new items are appended after it."""
        value = self._conn().execute("SELECT MAX(rank) FROM items WHERE kind = ?", (kind,)).fetchone()[0]
        return -1.0 if value is None else float(value)

    def is_owner(self, coder: str) -> bool:
        """Whether ``coder`` may edit the codebook, the settings and export (anyone, where no owner is set)."""
        owner = self.settings["owner"]
        return owner is None or owner == coder

    def is_adjudicator(self, coder: str) -> bool:
        """Whether ``coder`` may resolve conflicts: a named adjudicator or the owner (anyone, where neither
        is set)."""
        s = self.settings
        named = [*s["adjudicators"], *([s["owner"]] if s["owner"] else [])]
        return not named or coder in named

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise ReviewError(f"{name!r} is not a label of this review (labels: "
                          f"{', '.join(f.name for f in self.fields)}).", status=422)

    # -- items ------------------------------------------------------------------------------------
    def load_items(self, rows: pd.DataFrame, kind: str, *, replace: bool = False) -> int:
        """Add (or update) items; returns how many are new.

        Parameters
        ----------
        rows : ``id``, ``text`` and ``rank``; audit rows also ``label``, ``human_value`` and optionally
            ``suggested_value``, ``model_probability``, ``score``, ``reason``, ``source_row`` and the audit's
            explanations ``evidence``, ``nearest_other``, ``group``, ``copies``, ``block``; new texts
            optionally ``suggestion`` (a dict per row)
        kind : ``"audit"`` or ``"code"``
        replace : the rows are the whole current queue of this kind: items not among them are no longer
            served (their events and decisions are kept)

        Notes
        -----
        The rows of one conflicting-duplicate group (same ``group`` and ``label``) become one review item:
        the first by rank (the group's *lead*) is served, with every copy; the others are its members
        (``member_of``), never served on their own, and share the lead's double-coding draw. A decision on the
        lead is recorded on every copy (:meth:`record`).
        """
        if kind not in KINDS:
            raise ReviewError(f"kind must be one of {KINDS}, not {kind!r}.")
        records = [self._item_record(kind, rec) for rec in rows.to_dict("records")]
        share, seed = self.settings["double_share"], self.settings["seed"]
        with self._write() as db:
            before = db.execute("SELECT COUNT(*) FROM items WHERE kind = ?", (kind,)).fetchone()[0]
            if replace:
                db.execute("UPDATE items SET active = 0 WHERE kind = ?", (kind,))
            db.executemany(
                "INSERT INTO items (kind, text_id, label, text, human_value, suggested_value, model_probability,"
                " score, reason, suggestion, source_row, rank, evidence, nearest_other, dup_group, copies, block, "
                "draw, required) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (kind, text_id, label) DO UPDATE SET "
                "text = excluded.text, human_value = excluded.human_value, suggested_value = "
                "excluded.suggested_value, model_probability = excluded.model_probability, score = excluded.score,"
                " reason = excluded.reason, suggestion = excluded.suggestion, source_row = excluded.source_row, "
                "rank = excluded.rank, evidence = excluded.evidence, nearest_other = excluded.nearest_other, "
                "dup_group = excluded.dup_group, copies = excluded.copies, block = excluded.block, "
                "member_of = NULL, active = 1",
                [(kind, *r, u, 2 if u < share else 1) for r in records for u in [draw(seed, kind, r[0], r[1])]])
            self._link_groups(db, kind, records)
            after = db.execute("SELECT COUNT(*) FROM items WHERE kind = ?", (kind,)).fetchone()[0]
        return after - before

    @staticmethod
    def _link_groups(db: sqlite3.Connection, kind: str, records: list[tuple]) -> None:
        """Make the first copy (by rank) of each conflicting-duplicate group and label its lead, the other
        copies its members: they take the lead's draw (double-coded together; only while nobody decided them)."""
        groups: dict[tuple[str, str], list[tuple[float, str]]] = {}
        for r in records:
            if r[_GROUP]:
                groups.setdefault((r[_GROUP], r[1]), []).append((r[10], r[0]))
        for (_, label), copies in groups.items():
            copies.sort()
            lead, u, required = db.execute("SELECT item_id, draw, required FROM items WHERE kind = ? AND "
                                           "text_id = ? AND label = ?", (kind, copies[0][1], label)).fetchone()
            db.executemany("UPDATE items SET member_of = ?, draw = ?, required = CASE WHEN n_coders = 0 AND status "
                           "= 'open' THEN ? ELSE required END WHERE kind = ? AND text_id = ? AND label = ?",
                           [(lead, u, required, kind, text_id, label) for _, text_id in copies[1:]])

    def _item_record(self, kind: str, rec: dict[str, Any]) -> tuple:
        label = "" if kind == "code" else str(rec["label"])
        if kind == "audit":
            f = self.field(label)
            human = value_text(rec.get("human_value"))
            if human not in f.values:
                raise ReviewError(f"Queue row {rec.get('rank')}: human_value {rec.get('human_value')!r} is not a "
                                  f"value of {label!r} ({', '.join(f.values)}).", status=422)
        suggestion = rec.get("suggestion")
        explained = [_cell(rec.get(c)) for c in ("evidence", "nearest_other", "group", "copies", "block")]
        return (str(rec["id"]), label, str(rec["text"]), value_text(rec.get("human_value")),
                value_text(rec.get("suggested_value")), _number(rec.get("model_probability")),
                _number(rec.get("score")), _cell(rec.get("reason")),
                json.dumps(suggestion) if isinstance(suggestion, dict) else None,
                _integer(rec.get("source_row")), float(rec["rank"]), *(explained if kind == "audit" else [""] * 5))

    def item(self, item_id: int, *, coder: str | None = None, adjudicator: bool = False) -> dict[str, Any]:
        """One item as the desk shows it: text, codes under review, the model's figures, the labels to
        decide; ``mine`` (``coder``'s own stance and notes); for an adjudicator every coder's stance."""
        rows = self._rows("SELECT * FROM items WHERE item_id = ?", (item_id,))
        if not rows:
            raise ReviewError(f"There is no item {item_id}.", status=404)
        row = dict(rows[0])
        needed = self._labels(row)
        out = {"item_id": row["item_id"], "kind": row["kind"], "id": row["text_id"], "label": row["label"],
               "text": row["text"], "human_value": row["human_value"], "suggested_value": row["suggested_value"],
               "model_probability": row["model_probability"], "score": row["score"], "reason": row["reason"],
               "rank": row["rank"], "source_row": row["source_row"], "status": row["status"],
               "fields": [self.field(n).as_dict() for n in needed]}
        if row["kind"] == "audit":
            out["why"] = explain_row(row)
            out["copies"] = self.copies(item_id) if row["dup_group"] and row["member_of"] is None else []
            out["member_of"] = row["member_of"]
        if row["kind"] == "code" and self.settings["suggestions"] and row["suggestion"]:
            out["suggestion"] = json.loads(row["suggestion"])
        stances = self.stances(item_id)
        if coder is not None:
            mine = next((s for s in stances if s.coder == coder and s.role == "coder"), None)
            out["mine"] = None if mine is None else {"action": mine.action, "values": mine.values}
        if adjudicator:
            out["required"] = row["required"]
            out["coders"] = [{"coder": s.coder, "role": s.role, "action": s.action, "values": s.values}
                             for s in stances]
            out["notes"] = self.notes(item_id)
        return out

    def copies(self, item_id: int) -> list[dict[str, Any]]:
        """Every copy of a conflicting-duplicate group, its lead ``item_id`` first, in queue order: ``item_id``,
        ``id``, ``text``, ``human_value``, ``source_row``, ``status``."""
        rows = self._rows("SELECT item_id, text_id AS id, text, human_value, source_row, status FROM items WHERE "
                          "(item_id = ? OR (member_of = ? AND active = 1)) ORDER BY item_id <> ?, rank, item_id",
                          (item_id, item_id, item_id))
        return [dict(r) for r in rows]

    def _labels(self, row: dict[str, Any] | sqlite3.Row) -> list[str]:
        return [f.name for f in self.fields] if row["kind"] == "code" else [row["label"]]

    def stances(self, item_id: int) -> list[Stance]:
        """Every live stance on the item (coders' decisions and flags, the adjudicator's resolution)."""
        rows = self._conn().execute(
            "SELECT coder, role, action, stance_event, label, value FROM current_values WHERE item_id = ?",
            (item_id,)).fetchall()
        return stances_from_rows(rows)

    def notes(self, item_id: int) -> list[dict[str, str]]:
        """The item's live notes, oldest first: ``{coder, at, note}``."""
        rows = self._rows("SELECT coder, MIN(at) AS at, note FROM live_events WHERE item_id = ? AND note <> '' "
                          "GROUP BY action_id ORDER BY MIN(event_id)", (item_id,))
        return [dict(r) for r in rows]

    # -- serving items ----------------------------------------------------------------------------
    def next_item(self, coder: str, kind: str, filters: Filters = Filters()) -> dict[str, Any] | None:
        """The coder's next item, leased to them (their current lease first, so a reload shows the same
        item); ``None`` when nothing is left for them.

        An item is served when it is open, the coder has not decided or flagged it, and fewer coders than
        it needs hold a lease or have decided it. Items the coder skipped come last.
        """
        coder = check_name(coder)
        where, args = filters.sql()
        with self._write(durable=False) as db:
            now = self.clock()
            item_id = self._own_lease(db, coder, kind, where, args, now)
            if item_id is None:
                item_id = self._free_item(db, coder, kind, where, args, now, skipped=False)
            if item_id is None:
                item_id = self._free_item(db, coder, kind, where, args, now, skipped=True)
            if item_id is None:
                return None
            self._lease(db, item_id, coder, now)
        return self.item(item_id, coder=coder)

    def _own_lease(self, db, coder, kind, where, args, now) -> int | None:
        row = db.execute(
            "SELECT i.item_id FROM leases l JOIN items i ON i.item_id = l.item_id WHERE l.coder = ? AND "
            f"l.expires > ? AND i.kind = ? AND i.status = 'open' AND i.active = 1 AND i.member_of IS NULL{where} "
            "AND NOT EXISTS (SELECT 1 FROM coder_state c WHERE c.coder = l.coder AND c.item_id = i.item_id AND "
            "c.state <> 'skipped')"
            " ORDER BY i.rank, i.item_id LIMIT 1", (coder, now, kind, *args)).fetchone()
        return None if row is None else row[0]

    def _free_item(self, db, coder, kind, where, args, now, *, skipped: bool) -> int | None:
        mine = "c.state <> 'skipped'" if skipped else "1"
        row = db.execute(
            f"SELECT i.item_id FROM items i WHERE i.kind = ? AND i.status = 'open' AND i.active = 1 "
            f"AND i.member_of IS NULL{where} "
            f"AND NOT EXISTS (SELECT 1 FROM coder_state c WHERE c.coder = ? AND c.item_id = i.item_id AND {mine}) "
            "AND i.n_coders + (SELECT COUNT(*) FROM leases l WHERE l.item_id = i.item_id AND l.coder <> ? AND "
            "l.expires > ?) < i.required ORDER BY i.rank, i.item_id LIMIT 1",
            (kind, *args, coder, coder, now)).fetchone()
        return None if row is None else row[0]

    def _free_for(self, db, item_id: int, coder: str, now: float) -> bool:
        """Whether the item needs more coders than have decided it or hold a lease on it (``coder`` aside)."""
        return db.execute(
            "SELECT i.n_coders + (SELECT COUNT(*) FROM leases l WHERE l.item_id = i.item_id AND l.coder <> ? AND "
            "l.expires > ?) < i.required FROM items i WHERE i.item_id = ?", (coder, now, item_id)).fetchone()[0] == 1

    def _lease(self, db, item_id: int, coder: str, now: float, *, only: bool = True) -> None:
        """Lease the item to the coder; with ``only``, their other leases on items of its kind end (a
        coder works on one item at a time, so leaving it for another frees it for the others)."""
        expires = now + 60 * float(self.settings["lease_minutes"])
        if only:  # (through the coder's few leases, not the items: a queue may hold 100,000)
            db.execute("DELETE FROM leases WHERE coder = ? AND item_id <> ? AND (SELECT kind FROM items i WHERE "
                       "i.item_id = leases.item_id) = (SELECT kind FROM items WHERE item_id = ?)",
                       (coder, item_id, item_id))
        db.execute("INSERT INTO leases VALUES (?, ?, ?) ON CONFLICT (item_id, coder) DO UPDATE SET "
                   "expires = excluded.expires", (item_id, coder, expires))
        if int(now) % 64 == 0:  # now and then: forget leases that lapsed an hour ago
            db.execute("DELETE FROM leases WHERE expires < ?", (now - 3600,))

    def open_item(self, item_id: int, coder: str) -> dict[str, Any]:
        """An item the coder chose (from the list of items), leased to them like a served one."""
        coder = check_name(coder)
        with self._write() as db:
            if db.execute("SELECT 1 FROM items WHERE item_id = ?", (item_id,)).fetchone() is None:
                raise ReviewError(f"There is no item {item_id}.", status=404)
            self._lease(db, item_id, coder, self.clock())
        return self.item(item_id, coder=coder)

    def leases(self) -> list[tuple[int, str]]:
        """The live leases, ``(item_id, coder)``."""
        return [tuple(r) for r in self._conn().execute(
            "SELECT item_id, coder FROM leases WHERE expires > ? ORDER BY item_id, coder", (self.clock(),))]

    # -- recording --------------------------------------------------------------------------------
    def record(self, coder: str, item_id: int, action: str, *, action_id: str,
               values: dict[str, Any] | None = None, note: str = "", role: str = "coder") -> Ack:
        """Record one action of a coder on an item; returns once it is committed.

        Parameters
        ----------
        coder : who acts
        item_id : the item
        action : ``keep`` / ``flip`` (a 0/1 label's audit row), ``change`` (a variable's audit row: the
            class in ``values``, default the suggested class), ``code`` (a new text: ``values`` for every
            label), ``skip``, ``flag`` (for discussion), ``note``; ``resolve`` (an adjudicator: ``values``
            for every label of the item)
        action_id : the client's id of this action (retrying with the same id records nothing again)
        values : ``{label: value}`` for ``change``, ``code`` and ``resolve``
        note : free text kept with the action

        Raises
        ------
        ReviewError
            For an unknown item or action, a missing or invalid value, a note over 4,000 characters, a
            resolution by someone who is not an adjudicator, or an ``action_id`` another coder used.
        """
        coder, action_id = check_name(coder), _check_action_id(action_id)
        if action == "resolve":
            role = "adjudicator"
            if not self.is_adjudicator(coder):
                raise ReviewError(f"{coder} is not an adjudicator of this review.", status=403)
        if action not in ACTIONS or action == "undo":
            raise ReviewError(f"Unknown action {action!r}; use one of {', '.join(a for a in ACTIONS if a != 'undo')}.",
                              status=422)
        note = _check_note(note)
        with self._write() as db:
            done = self._done(db, action_id, coder)
            if done is not None:
                return done
            row = db.execute("SELECT kind, label, human_value, suggested_value FROM items WHERE item_id = ?",
                             (item_id,)).fetchone()
            if row is None:
                raise ReviewError(f"There is no item {item_id}.", status=404)
            item = dict(zip(("kind", "label", "human_value", "suggested_value"), row))
            events = self._with_copies(db, item_id, self._events(item, action, values or {}))
            at = utc_now()
            db.executemany(
                "INSERT INTO events (client_event_id, action_id, coder, role, at, item_id, label, action, value,"
                " note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(action_id if len(events) == 1 else f"{action_id}/{j}", action_id, coder, role, at, target, label,
                  act, value, note if j == 0 or target != item_id else "")
                 for j, (target, label, act, value) in enumerate(events)])
            for target in dict.fromkeys(e[0] for e in events if e[0] != item_id):
                self._refresh(db, target)
            status = self._refresh(db, item_id)
            if action != "note":
                db.execute("DELETE FROM leases WHERE item_id = ? AND coder = ?", (item_id, coder))
        return Ack(action_id, item_id, item["kind"], status=status)

    def _done(self, db, action_id: str, coder: str) -> Ack | None:
        """The answer to a retried action (None for a new one)."""
        row = db.execute("SELECT coder, item_id FROM events WHERE action_id = ? LIMIT 1", (action_id,)).fetchone()
        if row is None:
            return None
        if row[0] != coder:
            raise ReviewError(f"The action id {action_id!r} belongs to another coder's action.", status=409)
        kind, status = db.execute("SELECT kind, status FROM items WHERE item_id = ?", (row[1],)).fetchone()
        undone = [r[0] for r in db.execute("SELECT DISTINCT e.item_id FROM events e WHERE e.action_id = ? "
                                           "AND e.action = 'undo'", (action_id,))]
        return Ack(action_id, row[1], kind, duplicate=True, status=status, undone=undone)

    def _with_copies(self, db: sqlite3.Connection, item_id: int,
                     events: list[tuple[str, str, str | None]]) -> list[tuple[int, str, str, str | None]]:
        """``(item_id, label, action, value)`` rows: the item's events, then (the lead of a conflicting-duplicate
        group) the same for each of its copies, so every copy carries the decision with its own id. A copy's
        action follows from its own code: the value the lead gets is ``keep`` for a copy coded so, ``flip``
        (``change``) for the others."""
        out = [(item_id, *e) for e in events]
        copies = db.execute("SELECT item_id, human_value FROM items WHERE member_of = ? AND active = 1 "
                            "ORDER BY rank, item_id", (item_id,)).fetchall()
        for copy, human in copies:
            for label, act, value in events:
                if act in ("keep", "flip", "change"):
                    act = "keep" if value == human else ("flip" if {value, human} <= {"0", "1"} else "change")
                out.append((copy, label, act, value))
        return out

    def _events(self, item: dict[str, Any], action: str, values: dict[str, Any]) -> list[tuple[str, str, str | None]]:
        """``(label, action, value)`` rows for an action on ``item`` (values checked)."""
        labels = self._labels(item)
        if action in ("skip", "flag", "note"):
            return [(labels[0] if item["kind"] == "audit" else "", action, None)]
        if item["kind"] == "audit" and action in ("keep", "flip", "change"):
            return [(item["label"], *self._audit_decision(item, action, values))]
        if action == "code" and item["kind"] == "code" or action == "resolve":
            return [(lab, action, self._value(lab, values)) for lab in labels]
        what, use = ("an audit row", "keep, flip or change") if item["kind"] == "audit" else ("a new text", "code")
        raise ReviewError(f"Action {action!r} does not apply to {what} (use {use}).", status=422)

    def _audit_decision(self, item: dict[str, Any], action: str, values: dict[str, Any]) -> tuple[str, str]:
        """``(action, value)`` of a keep / flip / change on an audit row: the code it sets."""
        f, human = self.field(item["label"]), item["human_value"]
        if action == "keep":
            return "keep", human
        if f.classes is None:
            if action == "change" and item["label"] in values:
                action = "flip" if value_text(values[item["label"]]) != human else "keep"
            return action, str(1 - int(human)) if action == "flip" else human
        if action == "flip":
            raise ReviewError(f"{item['label']!r} is a categorical variable: change it to one of its classes.",
                              status=422)
        new = self._value(item["label"], values) if item["label"] in values else item["suggested_value"]
        if new is None:
            raise ReviewError(f"Give the new class of {item['label']!r}.", status=422)
        return ("keep" if new == human else "change"), new

    def _value(self, label: str, values: dict[str, Any]) -> str:
        f = self.field(label)
        if label not in values:
            raise ReviewError(f"No value for {label!r}: every label of the item needs one.", status=422)
        value = value_text(values[label])
        if value not in f.values:
            raise ReviewError(f"{values[label]!r} is not a value of {label!r} ({', '.join(f.values)}).", status=422)
        return value

    def undo(self, coder: str, kind: str | None, *, action_id: str, role: str = "coder") -> Ack | None:
        """Undo the coder's latest live action on items of ``kind`` (any kind: None) in ``role`` (an
        adjudicator's resolutions: ``"adjudicator"``): an ``undo`` event supersedes each of its events.
        ``None``: nothing to undo.

        The undone item is leased to the coder again (unless others hold it meanwhile), so the desk can show
        it at once.
        """
        coder, action_id = check_name(coder), _check_action_id(action_id)
        with self._write() as db:
            done = self._done(db, action_id, coder)
            if done is not None:
                return done
            last = db.execute(
                "SELECT e.action_id, e.item_id FROM live_events e JOIN items i ON i.item_id = e.item_id "
                "WHERE e.coder = ? AND e.role = ? AND (i.kind = ? OR ? IS NULL) ORDER BY e.event_id DESC LIMIT 1",
                (coder, role, kind, kind)).fetchone()
            if last is None:
                return None
            targets = db.execute("SELECT event_id, item_id, label FROM live_events WHERE action_id = ? AND coder = ? "
                                 "ORDER BY event_id", (last[0], coder)).fetchall()
            last = (last[0], targets[0][1])  # the item acted on: its copies' events come after its own
            at = utc_now()
            db.executemany(
                "INSERT INTO events (client_event_id, action_id, coder, role, at, item_id, label, action, "
                "supersedes) VALUES (?, ?, ?, ?, ?, ?, ?, 'undo', ?)",
                [(action_id if len(targets) == 1 else f"{action_id}/{j}", action_id, coder, role, at, item, label,
                  event) for j, (event, item, label) in enumerate(targets)])
            for item in dict.fromkeys(t[1] for t in targets if t[1] != last[1]):
                self._refresh(db, item)
            status = self._refresh(db, last[1])
            if self._free_for(db, last[1], coder, self.clock()):
                self._lease(db, last[1], coder, self.clock(), only=role == "coder")
            kind = db.execute("SELECT kind FROM items WHERE item_id = ?", (last[1],)).fetchone()[0]
        return Ack(action_id, last[1], kind, status=status, undone=[last[1]])

    # -- derived state ----------------------------------------------------------------------------
    def _refresh(self, db: sqlite3.Connection, item_id: int) -> str:
        """Recompute the cached state of one item from its live events (same transaction)."""
        kind, label, required = db.execute("SELECT kind, label, required FROM items WHERE item_id = ?",
                                           (item_id,)).fetchone()
        rows = db.execute("SELECT coder, role, action, stance_event, label, value FROM current_values "
                          "WHERE item_id = ?", (item_id,)).fetchall()
        skipped = [r[0] for r in db.execute("SELECT DISTINCT coder FROM live_events WHERE item_id = ? AND "
                                            "action = 'skip' AND role = 'coder'", (item_id,))]
        state = item_state(stances_from_rows(rows), required=required,
                           labels=self._labels({"kind": kind, "label": label}), skipped_by=skipped)
        db.execute("UPDATE items SET status = ?, n_coders = ? WHERE item_id = ?",
                   (state.status, state.n_coders, item_id))
        db.execute("DELETE FROM coder_state WHERE item_id = ?", (item_id,))
        db.executemany("INSERT INTO coder_state VALUES (?, ?, ?)",
                       [(c, item_id, s) for c, s in state.coder_states.items()])
        return state.status

    def rebuild(self) -> None:
        """Recompute every item's cached state from the events alone (the events are the truth)."""
        with self._write() as db:
            for (item_id,) in db.execute("SELECT item_id FROM items").fetchall():
                self._refresh(db, item_id)

    # -- adjudication -----------------------------------------------------------------------------
    def next_adjudication(self, adjudicator: str) -> dict[str, Any] | None:
        """The next conflicting or flagged item for an adjudicator (leased to them), or ``None``."""
        adjudicator = check_name(adjudicator, "adjudicator name")
        if not self.is_adjudicator(adjudicator):
            raise ReviewError(f"{adjudicator} is not an adjudicator of this review.", status=403)
        waiting = _quoted(ADJUDICATION)
        with self._write(durable=False) as db:
            now = self.clock()
            row = db.execute(
                f"SELECT i.item_id FROM items i LEFT JOIN leases l ON l.item_id = i.item_id AND l.coder = ? "
                f"AND l.expires > ? WHERE i.status IN ({waiting}) AND NOT EXISTS (SELECT 1 FROM items g WHERE "
                f"g.item_id = i.member_of AND g.status IN ({waiting})) AND NOT EXISTS (SELECT 1 FROM leases o WHERE "
                "o.item_id = i.item_id AND o.coder <> ? AND o.expires > ?) ORDER BY l.item_id IS NULL, i.kind, "
                "i.rank LIMIT 1", (adjudicator, now, adjudicator, now)).fetchone()
            if row is None:
                return None
            self._lease(db, row[0], adjudicator, now, only=False)
        return self.item(row[0], adjudicator=True)

    # -- reading ----------------------------------------------------------------------------------
    def recent(self, coder: str, kind: str, n: int = 8) -> list[dict[str, Any]]:
        """The coder's latest live decisions and flags on items of ``kind``, newest first (one per item)."""
        rows = self._rows(
            "SELECT e.item_id, e.action, e.label AS field, e.value, i.text_id, i.label, i.text, i.human_value "
            "FROM live_events e JOIN items i ON i.item_id = e.item_id WHERE e.coder = ? AND e.role = 'coder' AND "
            f"e.action IN ({_quoted(STANCES)}) AND i.kind = ? AND (i.member_of IS NULL OR NOT EXISTS (SELECT 1 FROM "
            "events l WHERE l.action_id = e.action_id AND l.item_id = i.member_of)) ORDER BY e.event_id DESC LIMIT ?",
            (coder, kind, 4 * n * max(1, len(self.fields) if kind == "code" else 1)))
        out: dict[int, dict[str, Any]] = {}
        for r in rows:
            entry = out.get(r["item_id"])
            if entry is None and len(out) < n:
                entry = out[r["item_id"]] = {"item_id": r["item_id"], "id": r["text_id"], "label": r["label"],
                                             "action": r["action"], "values": {}, "human_value": r["human_value"],
                                             "text": r["text"][:140]}
            if entry is not None and entry["action"] == r["action"] and r["value"] is not None:
                entry["values"].setdefault(r["field"], r["value"])
        return list(out.values())

    def kind_counts(self, kind: str) -> dict[str, int]:
        """Active items of ``kind`` per status, and ``total``."""
        counts = dict.fromkeys(("open", "done", "conflict", "flagged", "resolved"), 0)
        for status, n in self._conn().execute("SELECT status, SUM(n) FROM status_counts WHERE kind = ? GROUP BY status",
                                              (kind,)):
            counts[status] = n
        return {**counts, "total": sum(counts.values())}

    def coders(self) -> list[str]:
        """Everyone who recorded an action, by name."""
        return [r[0] for r in self._conn().execute("SELECT DISTINCT coder FROM events ORDER BY coder")]

    def browse(self, *, kind: str | None = None, label: str | None = None, state: str | None = None,
               coder: str | None = None, score_min: float | None = None, score_max: float | None = None,
               offset: int = 0, limit: int = 50) -> tuple[list[dict[str, Any]], int]:
        """A page of items matching the filters, in queue order, and how many match.

        ``state``: ``unreviewed`` (nobody decided it), ``reviewed`` (someone did), or a status
        (``open``, ``done``, ``conflict``, ``flagged``, ``resolved``); ``coder``: items this coder decided
        or flagged. Each row holds every coder's codes (``codes``) and the notes.
        """
        where, args = ["i.active = 1"], []
        for clause, value in (("i.kind = ?", kind), ("i.label = ?", label), ("i.score >= ?", score_min),
                              ("i.score <= ?", score_max)):
            if value is not None:
                where.append(clause)
                args.append(value)
        if state == "unreviewed":
            where.append("i.n_coders = 0 AND i.status = 'open'")
        elif state == "reviewed":
            where.append("(i.n_coders > 0 OR i.status <> 'open')")
        elif state:
            where.append("i.status = ?")
            args.append(state)
        if coder:
            where.append("EXISTS (SELECT 1 FROM coder_state c WHERE c.coder = ? AND c.item_id = i.item_id)")
            args.append(coder)
        sql = " AND ".join(where)
        total = self._conn().execute(f"SELECT COUNT(*) FROM items i WHERE {sql}", args).fetchone()[0]
        rows = [dict(r) for r in self._rows(
            f"SELECT i.item_id, i.kind, i.text_id, i.label, substr(i.text, 1, 220) AS text, i.human_value, "
            f"i.model_probability, i.score, i.status, i.n_coders, i.required, i.rank, i.dup_group FROM items i "
            f"WHERE {sql} "
            "ORDER BY i.kind, i.rank, i.item_id LIMIT ? OFFSET ?", (*args, limit, offset))]
        notes = self.all_notes() if rows else {}
        for row in rows:
            row["codes"] = [{"coder": s.coder, "role": s.role, "action": s.action, "values": s.values}
                            for s in self.stances(row["item_id"])]
            row["notes"] = notes.get(row["item_id"], "")
        return rows, total

    def counts(self) -> dict[str, Any]:
        """Items per kind and status (active items), per label for the audit queue, and per coder."""
        statuses = ("open", "done", "conflict", "flagged", "resolved")
        by_status = {k: dict.fromkeys(statuses, 0) for k in KINDS}
        labels: dict[str, dict[str, int]] = {}
        for kind, label, status, n in self._conn().execute("SELECT kind, label, status, n FROM status_counts"):
            by_status[kind][status] += n
            if kind == "audit":
                labels.setdefault(label, dict.fromkeys(statuses, 0))[status] += n
        coders = {c: {"decided": n} for c, n in self._conn().execute(
            "SELECT coder, COUNT(*) FROM coder_state WHERE state = 'decided' GROUP BY coder ORDER BY coder")}
        return {"kinds": by_status, "labels": labels, "coders": coders}

    def decided_values(self, role: str | None = "coder") -> pd.DataFrame:
        """Every live decision, one row per (item, label, person): ``item_id``, ``kind``, ``label``, ``coder``,
        ``role``, ``value``, ``order`` (the decision's event id); coders' decisions only by default
        (``role=None``: the adjudicators' resolutions too)."""
        rows = self._conn().execute(
            "SELECT v.item_id, i.kind, v.label, v.coder, v.role, v.value, v.stance_event FROM current_values v "
            f"JOIN items i ON i.item_id = v.item_id WHERE v.action IN ({_quoted((*DECISIONS, 'resolve'))}) "
            "AND (v.role = ? OR ? IS NULL) ORDER BY v.item_id, v.stance_event", (role, role)).fetchall()
        return pd.DataFrame(rows, columns=["item_id", "kind", "label", "coder", "role", "value", "order"])

    def all_notes(self) -> dict[int, str]:
        """``{item_id: "A: note; B: note"}``: every item's live notes, oldest first."""
        notes: dict[int, list[str]] = {}
        for item_id, coder, note in self._conn().execute(
                "SELECT item_id, coder, note FROM live_events WHERE note <> '' ORDER BY event_id"):
            notes.setdefault(item_id, []).append(f"{coder}: {note}")
        return {k: "; ".join(v) for k, v in notes.items()}

    def items_table(self, kind: str | None = None) -> pd.DataFrame:
        """The items (all columns), in queue order."""
        where, args = ("WHERE kind = ?", (kind,)) if kind else ("", ())
        rows = self._rows(f"SELECT * FROM items {where} ORDER BY kind, rank, item_id", args)
        return pd.DataFrame([dict(r) for r in rows])

    def events_table(self) -> pd.DataFrame:
        """The whole event log, oldest first."""
        rows = self._rows("SELECT * FROM events ORDER BY event_id")
        return pd.DataFrame([dict(r) for r in rows])

    # -- codebook ---------------------------------------------------------------------------------
    def codebook(self) -> dict[str, dict[str, str]]:
        """``{label: {definition, examples, editor, at}}``: the latest version of each label's entry."""
        rows = self._rows("SELECT label, definition, examples, editor, at, MAX(rev) FROM codebook GROUP BY label")
        entries = {r["label"]: {k: r[k] for k in ("definition", "examples", "editor", "at")} for r in rows}
        return {f.name: entries.get(f.name, {"definition": "", "examples": "", "editor": "", "at": ""})
                for f in self.fields}

    def edit_codebook(self, editor: str, label: str, *, definition: str, examples: str = "") -> None:
        """Add a new version of a label's codebook entry (the owner only; earlier versions are kept)."""
        editor = check_name(editor)
        if not self.is_owner(editor):
            raise ReviewError(f"Only the project owner ({self.settings['owner']}) edits the codebook.", status=403)
        self.field(label)
        with self._write() as db:
            db.execute("INSERT INTO codebook (label, definition, examples, editor, at) VALUES (?, ?, ?, ?, ?)",
                       (label, _check_note(definition, "definition"), _check_note(examples, "examples"),
                        editor, utc_now()))

    def record_export(self, rows: Sequence[tuple[int, str, str]], ledger: str) -> None:
        """Remember which decisions went to ``ledger`` (``(item_id, label, value)`` rows)."""
        at = utc_now()
        with self._write() as db:
            db.executemany("INSERT INTO exports VALUES (?, ?, ?, ?, ?)", [(*r, ledger, at) for r in rows])

    def exported(self, ledger: str) -> set[tuple[int, str]]:
        return {(r[0], r[1]) for r in self._conn().execute("SELECT item_id, label FROM exports WHERE ledger = ?",
                                                           (ledger,))}


def _merge_fields(known: list[Field], given: list[Field]) -> list[Field]:
    """The stored fields, a changed variable's classes updated and new fields appended."""
    by_name = {f.name: f for f in given}
    merged = [by_name.get(f.name, f) for f in known]
    names = {f.name for f in merged}
    return merged + [f for f in given if f.name not in names]


def _check_setting(key: str, value: Any) -> Any:
    if key == "double_share":
        share = float(value)
        if not 0 <= share <= 1:
            raise ConfigError(f"double_share must be between 0 and 1 (the share of items two coders code); "
                              f"got {value}.")
        return share
    if key == "lease_minutes":
        minutes = float(value)
        if not 0 < minutes <= 24 * 60:
            raise ConfigError(f"lease_minutes must be more than 0 and at most 1440; got {value}.")
        return minutes
    if key == "suggestions":
        return bool(value)
    if key == "owner":
        return None if value in (None, "") else check_name(value, "owner name")
    if key == "adjudicators":
        return [check_name(v, "adjudicator name") for v in value]
    return int(value)


def _check_action_id(action_id: Any) -> str:
    text = str(action_id or "")
    if not 8 <= len(text) <= 80 or not all(c.isalnum() or c in "-_." for c in text):
        raise ReviewError("Each action needs an action_id of 8 to 80 letters, digits, '-', '_' or '.' (the "
                          "desk makes one per key press).", status=422)
    return text


def _check_note(note: Any, what: str = "note") -> str:
    text = "" if note is None else str(note)
    if len(text) > MAX_NOTE:
        raise ReviewError(f"The {what} is {len(text):,} characters long; at most {MAX_NOTE:,} are kept.", status=422)
    return text.replace("\x00", "")


def value_text(value: Any) -> str | None:
    """A code as the store keeps it: ``"0"``/``"1"`` for a label (``1.0`` and ``True`` too), a class as text."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    return {"0.0": "0", "1.0": "1"}.get(text, text) or None


def _cell(value: Any) -> str:
    """A text cell of the queue as stored: ``""`` for a missing one (None, NaN)."""
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if out != out else out


def _integer(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)
