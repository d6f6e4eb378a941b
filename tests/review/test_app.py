"""The review desk's web API (FastAPI's TestClient) on a real audited run: the coding loop, leases,
retries, undo, double coding, adjudication, exports, and the security rules."""
from __future__ import annotations

import io
import uuid

import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="the review desk needs the `review` extra (fastapi, uvicorn)")
from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from lexcoder.cli import app as cli  # noqa: E402
from lexcoder.ledger import read_ledger  # noqa: E402
from lexcoder.review import load_texts, open_run_store  # noqa: E402
from lexcoder.review.app import create_app  # noqa: E402
from lexcoder.review.security import allowed_hosts  # noqa: E402

ORIGIN = "http://127.0.0.1:8765"


def aid() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def desk(run_dir, tmp_path):
    """A function: a TestClient of the desk on ``run_dir``, signed in as ``name`` (None: not signed in)."""
    store = open_run_store(run_dir, settings={"owner": "Pi"})
    app = create_app(store, run_dir=run_dir, ledger=tmp_path / "corrections.csv",
                     hosts=allowed_hosts("127.0.0.1", 8765))

    def client(name: str | None = "Ann") -> TestClient:
        c = TestClient(app, base_url=ORIGIN)
        c.get("/signin")  # the CSRF cookie
        c.headers.update({"X-CSRF-Token": c.cookies.get("lexcoder_csrf"), "Origin": ORIGIN})
        if name:
            assert c.post("/api/signin", json={"name": name}).status_code == 200
        return c
    client.store = store
    client.ledger = tmp_path / "corrections.csv"
    return client


def act(c: TestClient, item: dict, action: str, **extra) -> dict:
    response = c.post("/api/act", json={"item_id": item["item_id"], "action": action, "action_id": aid(), **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_decision_is_acknowledged_with_the_next_item_and_a_retry_records_nothing(desk):
    ann = desk("Ann")
    first = ann.get("/api/next").json()["item"]
    body = {"item_id": first["item_id"], "action": "flip", "action_id": aid(), "note": "a cap on liability"}
    answer = ann.post("/api/act", json=body).json()
    assert answer["ack"]["duplicate"] is False and answer["item"]["item_id"] != first["item_id"]
    assert answer["recent"][0]["item_id"] == first["item_id"] and answer["recent"][0]["action"] == "flip"
    retry = ann.post("/api/act", json=body).json()  # the browser lost the answer and sends the same action again
    assert retry["ack"]["duplicate"] is True and retry["item"]["item_id"] == answer["item"]["item_id"]
    assert len(desk.store.events_table()) == 1
    assert ann.get("/api/next").json()["item"]["item_id"] == answer["item"]["item_id"]  # a reload: same item


def test_two_coders_are_never_given_the_same_item(desk):
    ann, bob = desk("Ann"), desk("Bob")
    seen_ann, seen_bob = set(), set()
    for _ in range(5):
        a, b = ann.get("/api/next").json()["item"], bob.get("/api/next").json()["item"]
        assert a["item_id"] != b["item_id"]
        seen_ann.add(a["item_id"])
        seen_bob.add(b["item_id"])
        act(ann, a, "keep")
        act(bob, b, "flip")
    assert not seen_ann & seen_bob


def test_undo_brings_the_item_back_and_removes_the_decision(desk):
    ann = desk("Ann")
    item = ann.get("/api/next").json()["item"]
    act(ann, item, "flip")
    undone = ann.post("/api/undo", json={"kind": "audit", "action_id": aid()}).json()
    assert undone["item"]["item_id"] == item["item_id"] and undone["recent"] == []
    assert desk.store.decided_values().empty
    assert ann.post("/api/undo", json={"kind": "audit", "action_id": aid()}).json()["ack"] is None


def test_double_coded_disagreements_reach_the_adjudicator_only(desk):
    desk.store.update_settings(double_share=1.0)
    ann, bob, pi = desk("Ann"), desk("Bob"), desk("Pi")
    item = ann.get("/api/next").json()["item"]
    assert bob.get("/api/next").json()["item"]["item_id"] == item["item_id"]
    act(ann, item, "keep")
    act(bob, item, "flip", note="clearly limits liability")
    assert ann.get("/api/adjudication").status_code == 403
    case = pi.get("/api/adjudication").json()["item"]
    assert case["item_id"] == item["item_id"] and case["status"] == "conflict"
    assert sorted(c["coder"] for c in case["coders"]) == ["Ann", "Bob"] and case["notes"][0]["coder"] == "Bob"
    answer = pi.post("/api/resolve", json={"item_id": item["item_id"], "action": "resolve", "action_id": aid(),
                                           "values": {item["label"]: "1"}}).json()
    assert answer["ack"]["status"] == "resolved" and answer["counts"]["resolved"] == 1
    agreement = pi.get("/api/agreement").json()["rows"]
    assert agreement and agreement[0]["n"] == 1 and agreement[0]["percent_agreement"] == 0.0


def test_new_texts_are_coded_with_every_label_on_one_screen(desk, run_dir, new_texts):
    load_texts(desk.store, run_dir, new_texts)
    ann = desk("Ann")
    item = ann.get("/api/next", params={"kind": "code"}).json()["item"]
    assert [f["name"] for f in item["fields"]] == [f.name for f in desk.store.fields] and "suggestion" not in item
    missing = ann.post("/api/act", json={"item_id": item["item_id"], "action": "code", "action_id": aid(),
                                         "values": {item["fields"][0]["name"]: 1}})
    assert missing.status_code == 422 and "No value for" in missing.json()["error"]
    answer = act(ann, item, "code", values={f["name"]: 0 for f in item["fields"]})
    assert answer["item"]["kind"] == "code" and answer["counts"]["done"] == 1


def test_downloads_neutralise_formulas_and_no_request_path_reaches_the_file_system(desk, run_dir, tmp_path):
    texts = tmp_path / "texts.csv"
    pd.DataFrame({"id": ["x1"], "text": ["=1+2 <b>bold</b>"]}).to_csv(texts, index=False)
    load_texts(desk.store, run_dir, texts)
    ann = desk("Ann")
    item = ann.get("/api/next", params={"kind": "code"}).json()["item"]
    act(ann, item, "code", values={f["name"]: 1 for f in item["fields"]})
    csv = ann.get("/export/coded.csv")
    assert csv.status_code == 200 and "attachment" in csv.headers["content-disposition"]
    coded = pd.read_csv(io.BytesIO(csv.content), encoding="utf-8-sig")
    assert coded["text"].tolist() == ["'=1+2 <b>bold</b>"]
    workbook = pd.read_excel(io.BytesIO(ann.get("/export/decisions.xlsx").content))
    assert len(workbook) == len(desk.store.items_table("audit")) + len(desk.store.fields)
    for path in ("/export/secrets.csv", "/export/coded.exe", "/static/..%2Fapp.py", "/static/desk.py",
                 "/export/..%2F..%2Fconfig.toml.csv"):
        assert ann.get(path).status_code == 404, path
    assert ann.get("/static/desk.js").headers["content-type"].startswith("text/javascript")


def test_the_owner_writes_the_decisions_to_the_corrections_ledger(desk):
    ann, pi = desk("Ann"), desk("Pi")
    item = ann.get("/api/next").json()["item"]
    act(ann, item, "flip")
    assert ann.post("/api/export/ledger").status_code == 403  # only the owner
    result = pi.post("/api/export/ledger").json()
    assert result["added"] == 1 and result["flipped"] == 1
    entry = read_ledger(desk.ledger).iloc[0]
    assert (entry["id"], entry["label"], entry["reviewer"]) == (item["id"], item["label"], "Ann")
    assert pi.post("/api/export/ledger").json()["added"] == 0


def test_the_owner_edits_the_codebook_and_pages_escape_what_they_show(desk):
    pi, ann = desk("Pi"), desk("Ann")
    label = desk.store.fields[0].name
    evil = '<script>alert("x")</script> caps & limits'
    assert ann.post("/api/codebook", json={"label": label, "definition": "mine"}).status_code == 403
    assert pi.post("/api/codebook", json={"label": label, "definition": evil}).status_code == 200
    page = ann.get("/codebook").text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; caps &amp; limits" in page and "<script>alert" not in page
    for screen in ("/review", "/code", "/adjudicate", "/progress", "/browse", "/codebook"):
        response = ann.get(screen)
        assert response.status_code == 200 and "script-src 'self'" in response.headers["content-security-policy"]
    assert desk(None).get("/review", follow_redirects=False).headers["location"] == "/signin?next=/review"


def test_the_items_list_filters_by_label_state_and_coder(desk):
    ann = desk("Ann")
    item = ann.get("/api/next").json()["item"]
    act(ann, item, "flag", note="ask the PI")
    page = ann.get("/browse", params={"state": "flagged", "coder": "Ann"}).text
    assert item["id"] in page and "ask the PI" in page and "1 item" in page
    assert "No items match" in ann.get("/browse", params={"state": "flagged", "coder": "Bob"}).text
    other = next(f.name for f in desk.store.fields if f.name != item["label"])
    assert item["id"] not in ann.get("/browse", params={"label": other, "state": "flagged"}).text


# ------------------------------------------------------------------------------------------------------
# security
# ------------------------------------------------------------------------------------------------------

def test_state_changes_need_post_the_desks_origin_and_its_csrf_token(desk):
    ann = desk("Ann")
    item = ann.get("/api/next").json()["item"]
    body = {"item_id": item["item_id"], "action": "keep", "action_id": aid()}
    assert ann.get("/api/act").status_code == 405
    assert ann.post("/api/act", json=body, headers={"Origin": "http://evil.example"}).status_code == 403
    assert ann.post("/api/act", json=body, headers={"X-CSRF-Token": "guess"}).status_code == 403
    no_header = desk("Ann")
    del no_header.headers["X-CSRF-Token"]
    assert no_header.post("/api/act", json=body).status_code == 403
    assert desk.store.events_table().empty
    preflight = ann.options("/api/act", headers={"Origin": "http://evil.example",
                                                 "Access-Control-Request-Method": "POST"})
    assert preflight.status_code in (403, 405) and "access-control-allow-origin" not in preflight.headers
    assert ann.get("/review", headers={"Host": "evil.example:8765"}).status_code == 400  # DNS rebinding
    assert ann.post("/api/act", json=body).status_code == 200


def test_a_desk_on_another_address_needs_its_token(run_dir):
    store = open_run_store(run_dir)
    app = create_app(store, run_dir=run_dir, token="s3cret-token-value", hosts=None)
    stranger = TestClient(app, base_url="http://10.0.0.5:8765")
    assert stranger.get("/signin").status_code == 401
    assert stranger.get("/api/next", headers={"Authorization": "Bearer wrong"}).status_code == 401
    friend = TestClient(app, base_url="http://10.0.0.5:8765")
    answer = friend.get("/signin?token=s3cret-token-value", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/signin"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert friend.get("/signin").status_code == 200  # the cookie carries the token from now on
    assert TestClient(app, base_url="http://10.0.0.5:8765").get(
        "/signin", headers={"Authorization": "Bearer s3cret-token-value"}).status_code == 200


# ------------------------------------------------------------------------------------------------------
# the command
# ------------------------------------------------------------------------------------------------------

def test_the_command_adds_texts_and_exports_without_serving(run_dir, new_texts, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    res = runner.invoke(cli, ["review", str(run_dir), "--texts", str(new_texts), "--double", "0.3", "--coder", "Pi",
                              "--export-table", "coded.xlsx", "--export-decisions", "decisions.csv"])
    assert res.exit_code == 0, res.output
    assert "40 new text(s)" in res.output and len(pd.read_excel(tmp_path / "coded.xlsx")) == 40
    assert open_run_store(run_dir).settings["owner"] == "Pi"
    res = runner.invoke(cli, ["review", str(run_dir), "--export-table", "coded.xlsx"])
    assert res.exit_code == 2 and "exists" in res.output
    res = runner.invoke(cli, ["review", str(tmp_path), "--export-ledger"])
    assert res.exit_code == 2 and "not a lexcoder run directory" in res.output


def test_a_live_desk_answers_kept_alive_connections_without_waiting_for_delayed_acks(run_dir):
    """Nagle's algorithm on the server + the client's delayed ACK add ~40 ms to every answer on a kept-alive
    connection (every answer the browser gets): the desk's socket must let asyncio turn Nagle off."""
    import statistics
    import time

    import httpx

    from lexcoder.review.app import BackgroundDesk
    with BackgroundDesk(open_run_store(run_dir)) as desk, httpx.Client(base_url=desk.url) as client:
        client.get("/signin")
        times = []
        for _ in range(15):
            start = time.perf_counter()
            assert client.get("/signin").status_code == 200
            times.append(time.perf_counter() - start)
    assert statistics.median(times) < 0.030, f"median {1000 * statistics.median(times):.0f} ms per answer"
