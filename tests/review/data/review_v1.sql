-- A review store (review.sqlite) as lexcoder's review store version 1 wrote it, dumped with sqlite3's
-- iterdump: 6 audit rows of the bundled ToS sentences, Ann's flip (with a note) and keep, an undone
-- keep, a codebook entry. tests/review/test_store.py opens it to check the schema migration.
BEGIN TRANSACTION;
CREATE TABLE codebook (
    rev INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT NOT NULL, definition TEXT NOT NULL,
    examples TEXT NOT NULL, editor TEXT NOT NULL, at TEXT NOT NULL);
INSERT INTO "codebook" VALUES(1,'limitation_of_liability','Limits the provider''s liability.','','Pi','2026-12-01T02:01:00.576+00:00');
CREATE TABLE coder_state (
    coder TEXT NOT NULL, item_id INTEGER NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (coder, item_id)) WITHOUT ROWID;
INSERT INTO "coder_state" VALUES('Ann',1,'decided');
INSERT INTO "coder_state" VALUES('Ann',2,'decided');
CREATE TABLE events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_event_id TEXT NOT NULL UNIQUE,
    action_id TEXT NOT NULL,
    coder TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('coder', 'adjudicator')),
    at TEXT NOT NULL,
    item_id INTEGER NOT NULL REFERENCES items (item_id),
    label TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('keep', 'flip', 'change', 'code', 'flag', 'resolve', 'skip', 'note', 'undo')),
    value TEXT,
    note TEXT NOT NULL DEFAULT '',
    supersedes INTEGER REFERENCES events (event_id));
INSERT INTO "events" VALUES(1,'v1-ann-flip-1','v1-ann-flip-1','Ann','coder','2026-12-01T02:01:00.557+00:00',1,'limitation_of_liability','flip','1','clearly a limitation',NULL);
INSERT INTO "events" VALUES(2,'v1-ann-keep-2','v1-ann-keep-2','Ann','coder','2026-12-01T02:01:00.560+00:00',2,'unilateral_termination','keep','0','',NULL);
INSERT INTO "events" VALUES(3,'v1-ann-keep-3','v1-ann-keep-3','Ann','coder','2026-12-01T02:01:00.568+00:00',3,'limitation_of_liability','keep','0','',NULL);
INSERT INTO "events" VALUES(4,'v1-ann-undo-4','v1-ann-undo-4','Ann','coder','2026-12-01T02:01:00.572+00:00',3,'limitation_of_liability','undo',NULL,'',3);
CREATE TABLE exports (
    item_id INTEGER NOT NULL, label TEXT NOT NULL, value TEXT NOT NULL, ledger TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE items (
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
    suggestion TEXT,                 -- JSON {label: probability or class} of the model (new texts)
    source_row INTEGER,
    rank REAL NOT NULL,
    draw REAL NOT NULL,              -- uniform in [0, 1) from the item's key: double-coded if < the share
    required INTEGER NOT NULL DEFAULT 1 CHECK (required IN (1, 2)),
    active INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'open',      -- cache of the events (see lexcoder.review.state)
    n_coders INTEGER NOT NULL DEFAULT 0,      -- cache of the events
    UNIQUE (kind, text_id, label));
INSERT INTO "items" VALUES(1,'audit','Amazon_0000','limitation_of_liability','Conditions of Use & Sale','0',NULL,0.9,0.1,'model confident',NULL,1,1.0,2.08955782219559793588e-01,1,1,'done',1);
INSERT INTO "items" VALUES(2,'audit','Amazon_0001','unilateral_termination','Last updated on 11 August, 2021.','0',NULL,0.1,0.1,'model confident',NULL,2,2.0,9.33907654236456163943e-01,1,1,'done',1);
INSERT INTO "items" VALUES(3,'audit','Amazon_0002','limitation_of_liability','To see the previous iteration of the Conditions of Use & Sale click here.','0',NULL,0.8,0.2,'model confident',NULL,3,3.0,0.0737396951672797,1,1,'open',0);
INSERT INTO "items" VALUES(4,'audit','Amazon_0003','unilateral_termination','Welcome to Amazon.co.uk.','0',NULL,0.2,0.2,'model confident',NULL,4,4.0,2.74408650037839707547e-01,1,1,'open',0);
INSERT INTO "items" VALUES(5,'audit','Amazon_0004','limitation_of_liability','Amazon Europe Core SARL, Amazon EU SARL and/or their affiliates ("Amazon") provide website features and other products and services to you when you visit or shop at Amazon.co.uk (the "website"), use Amazon devices, products, or services, use Amazon applications for mobile, or use software provided by Amazon in connection with any of the foregoing (collectively "Amazon Services").','0',NULL,0.7,0.3,'model confident',NULL,5,5.0,2.28839582560538601363e-01,1,1,'open',0);
INSERT INTO "items" VALUES(6,'audit','Amazon_0005','unilateral_termination','Please see our Privacy Notice, our Cookies Notice, and our Interest-Based Ads Notice to understand how we collect and process your personal information through Amazon Services.','0',NULL,0.3,0.3,'model confident',NULL,6,6.0,6.65676313704269689841e-02,1,1,'open',0);
CREATE TABLE leases (
    item_id INTEGER NOT NULL, coder TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (item_id, coder)) WITHOUT ROWID;
INSERT INTO "leases" VALUES(3,'Ann',1.79609106057302641873e+09);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
INSERT INTO "meta" VALUES('fields','[{"name": "limitation_of_liability", "classes": null}, {"name": "unilateral_termination", "classes": null}]');
INSERT INTO "meta" VALUES('secret','abababababababababababababababababababababababababababababababab');
INSERT INTO "meta" VALUES('settings','{"double_share": 0.0, "lease_minutes": 10.0, "suggestions": false, "owner": "Pi", "adjudicators": [], "seed": 0}');
INSERT INTO "meta" VALUES('version','1');
INSERT INTO "meta" VALUES('x:audit_queue_sha256','0000000000000000000000000000000000000000000000000000000000000000');
CREATE TABLE status_counts (  -- active items per status, kept by the triggers below
    kind TEXT NOT NULL, label TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (kind, label, status)) WITHOUT ROWID;
INSERT INTO "status_counts" VALUES('audit','limitation_of_liability','done',1);
INSERT INTO "status_counts" VALUES('audit','limitation_of_liability','open',2);
INSERT INTO "status_counts" VALUES('audit','unilateral_termination','done',1);
INSERT INTO "status_counts" VALUES('audit','unilateral_termination','open',2);
CREATE INDEX items_queue ON items (kind, status, rank);
CREATE INDEX items_label ON items (kind, label, status, rank);
CREATE TRIGGER items_counted AFTER INSERT ON items WHEN NEW.active = 1 BEGIN
    INSERT INTO status_counts VALUES (NEW.kind, NEW.label, NEW.status, 1)
        ON CONFLICT (kind, label, status) DO UPDATE SET n = n + 1; END;
CREATE TRIGGER items_recounted AFTER UPDATE OF status, active ON items
    WHEN OLD.status <> NEW.status OR OLD.active <> NEW.active BEGIN
    UPDATE status_counts SET n = n - 1
        WHERE OLD.active = 1 AND kind = OLD.kind AND label = OLD.label AND status = OLD.status;
    INSERT INTO status_counts SELECT NEW.kind, NEW.label, NEW.status, 1 WHERE NEW.active = 1
        ON CONFLICT (kind, label, status) DO UPDATE SET n = n + 1; END;
CREATE INDEX events_item ON events (item_id, coder);
CREATE INDEX events_action ON events (action_id);
CREATE INDEX events_coder ON events (coder, event_id);
CREATE INDEX events_supersedes ON events (supersedes) WHERE supersedes IS NOT NULL;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the review events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'the review events are append-only'); END;
CREATE INDEX leases_coder ON leases (coder, expires);
CREATE INDEX coder_state_item ON coder_state (item_id);
CREATE VIEW live_events AS
    SELECT e.* FROM events e
    WHERE e.action <> 'undo' AND NOT EXISTS (SELECT 1 FROM events u WHERE u.supersedes = e.event_id);
CREATE VIEW stances AS
    SELECT item_id, coder, role, action_id, action, MAX(event_id) AS stance_event
    FROM live_events WHERE action IN ('keep', 'flip', 'change', 'code', 'flag', 'resolve')
    GROUP BY item_id, coder, role;
CREATE VIEW current_values AS
    SELECT s.item_id, s.coder, s.role, s.action, s.stance_event, e.label, e.value, e.note
    FROM stances s JOIN events e ON e.action_id = s.action_id AND e.coder = s.coder AND e.action = s.action;
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('events',4);
INSERT INTO "sqlite_sequence" VALUES('codebook',1);
COMMIT;
