"""The review desk under load: key press → next item, 10 concurrent coders, and a kill -9 mid-run.

A 100,000-row audit queue is built from the real ToS sentences (every (sentence, label) pair scored by a
TF-IDF model fitted on all of them, the 100,000 least likely human codes first), stored in a fresh review
store, and served by ``lexcoder.review`` in a separate process (uvicorn, one worker), pinned with this
script to 2 CPU cores.

1. **latency** (one coder): in Debian's chromium driven by Playwright, ``--presses`` key presses
   (alternately K and F), each timed in the page from the key event to the next item painted (a timeout
   queued from the animation frame that draws it, so it runs after the paint); and the same decisions posted
   over HTTP (request → the answer with the next item). Goal: p95 < 100 ms.
2. **concurrency**: ``--coders`` simulated coders (threads with their own HTTP sessions) post decisions for
   ``--seconds``; 5% of the posts are sent twice with the same action id (a retry after a lost answer).
   Afterwards, from the store: every acknowledged decision is there exactly once (0 lost), no action id
   holds more events than its own (0 duplicated), and no single-coded item was decided by two coders.
3. **kill -9**: the same coders post until the server process is killed with SIGKILL after ``--kill-after``
   seconds; the store is then opened again: every decision acknowledged before the kill is in it.

    .venv/bin/python benchmarks/bench_review_desk.py              # 100,000 items, 60 s of 10 coders
    .venv/bin/python benchmarks/bench_review_desk.py --quick      # 10,000 items, 10 s (a smoke test)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("LEXCODER_PROGRESS", "0")
RESULTS = Path(__file__).resolve().parent / "results"


# ------------------------------------------------------------------------------------------------------
# the queue and the server
# ------------------------------------------------------------------------------------------------------

def build_store(path: Path, n_items: int) -> float:
    """A review store with an ``n_items`` audit queue from the ToS sentences; returns seconds to load it."""
    from lexcoder import build_model
    from lexcoder.demo import TOS_LABELS, demo_data_path
    from lexcoder.review import Field, ReviewStore
    tos = pd.read_csv(demo_data_path())
    Y = tos[TOS_LABELS].to_numpy().astype(int)
    P = build_model("tfidf").fit(tos["text"].tolist(), Y).predict_proba(tos["text"].tolist())
    rows, cols = np.divmod(np.arange(Y.size), Y.shape[1])
    score = np.where(Y.ravel() == 1, P.ravel(), 1 - P.ravel())
    order = np.argsort(score, kind="stable")[:n_items]
    r, c = rows[order], cols[order]
    queue = pd.DataFrame({
        "rank": np.arange(1, len(order) + 1), "id": tos["id"].to_numpy()[r], "label": np.asarray(TOS_LABELS)[c],
        "text": tos["text"].to_numpy()[r], "human_value": Y[r, c], "model_probability": P[r, c].round(4),
        "score": score[order].round(4),
        "reason": [f"model {'confident negative' if y else 'confident positive'} (p={p:.2f}), coded {y}"
                   for y, p in zip(Y[r, c], P[r, c])]})
    store = ReviewStore(path, fields=[Field(label) for label in TOS_LABELS])
    t0 = time.perf_counter()
    store.load_items(queue, "audit")
    seconds = time.perf_counter() - t0
    store.close()
    return seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(store_path: Path, port: int) -> subprocess.Popen:
    """The desk in its own process (as `lexcoder review` runs it), once it answers."""
    code = ("import sys; from lexcoder.review import ReviewStore; from lexcoder.review.app import serve; "
            "serve(ReviewStore(sys.argv[1]), run_dir=None, port=int(sys.argv[2]))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(store_path), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    import httpx
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/signin", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise RuntimeError(f"the desk did not start: {proc.stderr.read().decode()[-2000:]}")
    raise RuntimeError("the desk did not answer within 60 s")


def session(url: str, name: str):
    import httpx
    client = httpx.Client(base_url=url, timeout=30)
    client.get("/signin")
    client.headers.update({"X-CSRF-Token": client.cookies.get("lexcoder_csrf"), "Origin": url})
    client.post("/api/signin", json={"name": name}).raise_for_status()
    return client


def summary(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=float)
    return {"n": int(len(a)), "median_ms": round(float(np.median(a)), 1),
            "p95_ms": round(float(np.percentile(a, 95)), 1), "max_ms": round(float(a.max()), 1)}


# ------------------------------------------------------------------------------------------------------
# 1. latency
# ------------------------------------------------------------------------------------------------------

def http_latency(url: str, n: int) -> dict[str, float]:
    client = session(url, "Latency (HTTP)")
    item = client.get("/api/next").json()["item"]
    times = []
    for i in range(n):
        body = {"item_id": item["item_id"], "action": "keep" if i % 2 else "flip", "action_id": uuid.uuid4().hex}
        t0 = time.perf_counter()
        answer = client.post("/api/act", json=body)
        times.append(1000 * (time.perf_counter() - t0))
        item = answer.json()["item"]
    return summary(times)


def browser_latency(url: str, presses: int) -> dict[str, float] | str:
    """Key press → next item painted, timed in the page (``window.__deskTimings``)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "skipped: Playwright's Python package is not installed"
    if chromium is None:
        return "skipped: no chromium executable"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(f"{url}/signin?next=/review")
        page.fill("#name", "Latency (browser)")
        page.click("button[type=submit]")
        page.wait_for_function("() => (document.querySelector('#item') || {dataset: {}}).dataset.itemId")
        for i in range(presses):
            before = page.get_attribute("#item", "data-item-id")
            page.keyboard.press("k" if i % 2 else "f")
            page.wait_for_function("old => document.querySelector('#item').dataset.itemId !== old", arg=before)
        page.wait_for_function(f"() => window.__deskTimings.length >= {presses}")
        timings = page.evaluate("window.__deskTimings")
        browser.close()
    return summary(timings)


# ------------------------------------------------------------------------------------------------------
# 2. and 3. concurrent coders, with or without a kill -9
# ------------------------------------------------------------------------------------------------------

def coder(url: str, name: str, stop: threading.Event, acked: list, errors: list, seed: int) -> None:
    import httpx
    rng = random.Random(seed)
    try:
        client = session(url, name)
        item = client.get("/api/next").json()["item"]
    except httpx.TransportError as err:
        errors.append(f"{name}: {err}")
        return
    while item is not None and not stop.is_set():
        body = {"item_id": item["item_id"], "action": rng.choice(["keep", "keep", "flip", "flag"]),
                "action_id": uuid.uuid4().hex}
        try:
            answer = client.post("/api/act", json=body)
            if rng.random() < 0.05:  # the answer was "lost": the desk sends the same action again
                answer = client.post("/api/act", json=body)
        except httpx.TransportError:
            return  # the server is gone (kill -9): what was acknowledged so far is what counts
        if answer.status_code != 200:
            errors.append(f"{name}: {answer.status_code} {answer.text[:200]}")
            return
        acked.append((body["action_id"], item["item_id"], name))
        item = answer.json()["item"]


def crowd(url: str, coders: int, seconds: float, *, kill: subprocess.Popen | None = None) -> tuple[list, list, float]:
    stop, acked, errors = threading.Event(), [], []
    threads = [threading.Thread(target=coder, args=(url, f"Coder {i + 1}", stop, acked, errors, i), daemon=True)
               for i in range(coders)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    if kill is not None:
        kill.send_signal(signal.SIGKILL)
        kill.wait()
    stop.set()
    for t in threads:
        t.join(timeout=60)
    return acked, errors, time.perf_counter() - t0


def check(store_path: Path, acked: list) -> dict[str, int]:
    """What the store holds against what the coders were told: lost, duplicated, doubly decided."""
    import sqlite3
    db = sqlite3.connect(store_path)
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    per_action = dict(db.execute("SELECT action_id, COUNT(*) FROM events GROUP BY action_id").fetchall())
    ids = {a for a, _, _ in acked}
    doubly = db.execute("SELECT COUNT(*) FROM items WHERE n_coders > required").fetchone()[0]
    db.close()
    return {"acknowledged": len(ids), "events": sum(per_action.values()), "lost": len(ids - set(per_action)),
            "duplicated": sum(n - 1 for n in per_action.values() if n > 1),
            "unacknowledged_in_store": len(set(per_action) - ids), "items_decided_by_more_coders_than_needed": doubly,
            "integrity": integrity}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--presses", type=int, default=300)
    ap.add_argument("--http", type=int, default=1000, help="decisions posted over HTTP for the latency")
    ap.add_argument("--coders", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--kill-after", type=float, default=10)
    ap.add_argument("--quick", action="store_true", help="10,000 items, 100 presses, 10 s (a smoke test)")
    ap.add_argument("--cores", default="0,1", help="CPU cores to pin the benchmark and the server to")
    ap.add_argument("--latency-only", action="store_true", help="measure the latency only (no coders, no kill)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.quick:
        args.items, args.presses, args.http, args.seconds, args.kill_after = 10_000, 100, 300, 10, 5
    if hasattr(os, "sched_setaffinity") and args.cores:
        os.sched_setaffinity(0, {int(c) for c in args.cores.split(",")})
    work = Path(tempfile.mkdtemp(prefix="review_desk_bench_"))
    template = work / "template.sqlite"
    load_seconds = build_store(template, args.items)
    result = {"items": args.items, "load_seconds": round(load_seconds, 1), "cores": args.cores,
              "cpu_count": os.cpu_count(), "load_average_before": [round(x, 1) for x in os.getloadavg()],
              "platform": platform.platform(), "python": platform.python_version()}

    def fresh(name: str) -> Path:
        path = work / f"{name}.sqlite"
        shutil.copy(template, path)
        return path

    port = free_port()
    server = start_server(fresh("latency"), port)
    try:
        url = f"http://127.0.0.1:{port}"
        result["http_latency"] = http_latency(url, args.http)
        result["browser_latency"] = browser_latency(url, args.presses)
    finally:
        server.terminate()
        server.wait()

    if not args.latency_only:
        crowd_and_kill(result, fresh, args)
    result["load_average_after"] = [round(x, 1) for x in os.getloadavg()]
    shutil.rmtree(work, ignore_errors=True)

    show(result)
    name = "review_desk_quick.json" if args.quick else "review_desk.json"
    out = Path(args.out) if args.out else RESULTS / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten: {out}")
    ok = all(result[k]["lost"] == 0 and result[k]["duplicated"] == 0 for k in ("concurrency", "kill9") if k in result)
    return 0 if ok else 1


def crowd_and_kill(result: dict, fresh, args) -> None:
    """Runs 2 and 3: the coders for ``args.seconds``, then again until a kill -9."""
    path = fresh("concurrency")
    port = free_port()
    server = start_server(path, port)
    try:
        acked, errors, seconds = crowd(f"http://127.0.0.1:{port}", args.coders, args.seconds)
    finally:
        server.terminate()
        server.wait()
    result["concurrency"] = {"coders": args.coders, "seconds": round(seconds, 1), **check(path, acked),
                             "decisions_per_second": round(len(acked) / seconds, 1), "errors": errors[:5]}

    path = fresh("kill")
    port = free_port()
    server = start_server(path, port)
    acked, errors, seconds = crowd(f"http://127.0.0.1:{port}", args.coders, args.kill_after, kill=server)
    result["kill9"] = {"coders": args.coders, "killed_after_seconds": args.kill_after, **check(path, acked),
                       "errors": errors[:5]}
    port = free_port()
    server = start_server(path, port)  # the desk starts again on the store the kill left
    try:
        again = session(f"http://127.0.0.1:{port}", "After the kill").get("/api/next")
        result["kill9"]["restarted"] = again.status_code == 200 and again.json()["item"] is not None
    finally:
        server.terminate()
        server.wait()


def show(r: dict) -> None:
    print(f"\nReview desk, {r['items']:,}-item queue (loaded in {r['load_seconds']} s), cores {r['cores']}, "
          f"load average {r['load_average_before']} → {r['load_average_after']}\n")
    print(f"{'latency':<42} {'n':>6} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
    for name, key in (("key press → next item painted (chromium)", "browser_latency"),
                      ("POST decision → answer with next item (HTTP)", "http_latency")):
        v = r[key]
        if isinstance(v, str):
            print(f"{name:<42} {v}")
        else:
            print(f"{name:<42} {v['n']:>6} {v['median_ms']:>10} {v['p95_ms']:>8} {v['max_ms']:>8}")
    if "concurrency" not in r:
        return
    print(f"\n{'run':<14} {'coders':>6} {'s':>6} {'acked':>7} {'/s':>6} {'lost':>5} {'dup':>4} {'2 coders':>8} "
          f"{'unacked in store':>16}  integrity")
    for name in ("concurrency", "kill9"):
        v = r[name]
        seconds = v.get("seconds", v.get("killed_after_seconds"))
        rate = v.get("decisions_per_second", "")
        print(f"{name:<14} {v['coders']:>6} {seconds:>6} {v['acknowledged']:>7} {rate:>6} {v['lost']:>5} "
              f"{v['duplicated']:>4} {v['items_decided_by_more_coders_than_needed']:>8} "
              f"{v['unacknowledged_in_store']:>16}  {v['integrity']}")
    if "restarted" in r["kill9"]:
        print(f"after the kill the desk started again and served the next item: {r['kill9']['restarted']}")


if __name__ == "__main__":
    sys.exit(main())
