"""The review desk in a real browser: Playwright driving Debian's chromium against a live server.

Skipped (with the reason) only where Playwright's Python package or a chromium executable is missing;
`.ci/run` installs both (the browser from Debian, never downloaded by Playwright). Screenshots of every
screen go to ``$LEXCODER_SCREENSHOTS`` when set (else a temporary folder).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("fastapi", reason="the review desk needs the `review` extra (fastapi, uvicorn)")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed "
                                                           "(it is in the dev extra)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no chromium executable (.ci/run installs Debian's chromium; Playwright never downloads one)",
                allow_module_level=True)

from lexcoder.review import load_texts, open_run_store  # noqa: E402
from lexcoder.review.app import BackgroundDesk  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("LEXCODER_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def serve(run_dir):
    """A function: start the desk on a run (default ``run_dir``; settings given) and return (store, desk);
    stopped afterwards."""
    desks = []

    def start(run=None, **settings):
        run = run or run_dir
        store = open_run_store(run, settings={"owner": "Pi", **settings})
        desk = BackgroundDesk(store, run_dir=run, ledger=run.parent / "corrections.csv")
        desks.append(desk)
        return store, desk
    yield start
    for desk in desks:
        desk.stop()


def open_as(browser, desk, name: str, screen: str = "review"):
    """A new browser context (its own cookies: another person) signed in as ``name`` on ``screen``."""
    page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.errors = errors
    page.goto(f"{desk.url}/signin?next=/{screen}")
    page.fill("#name", name)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/{screen}")
    return page


def shown_item(page, *, not_id: str = "") -> str:
    """The id of the item on screen, once it differs from ``not_id`` ('' once there is none left)."""
    page.wait_for_function("old => { const e = document.querySelector('#item'); return e && e.dataset.itemId !== "
                           "undefined && e.dataset.itemId !== old && !e.textContent.startsWith('Loading'); }",
                           arg=not_id, timeout=10_000)
    return page.get_attribute("#item", "data-item-id")


def test_a_coder_flips_with_one_key_and_the_decision_survives_a_reload_then_undoes_it(browser, serve, shots):
    store, desk = serve()
    page = open_as(browser, desk, "Ann")
    first = shown_item(page)
    human = store.item(int(first))["human_value"]
    page.keyboard.press("f")
    second = shown_item(page, not_id=first)
    decided = store.decided_values()[["item_id", "coder", "value"]].values.tolist()
    assert decided == [[int(first), "Ann", str(1 - int(human))]]
    page.reload()
    assert shown_item(page) == second  # the same item after a reload (its lease), the flip kept
    assert f"flip → {1 - int(human)}" in page.inner_text(f'#recent li[data-item="{first}"]')
    page.screenshot(path=shots / "review.png")
    page.keyboard.press("u")
    assert shown_item(page, not_id=second) == first  # undo brings the flipped item back
    page.wait_for_function("() => document.querySelector('#recent li').textContent.startsWith('Nothing yet')")
    assert store.decided_values().empty and page.errors == []


def test_typing_a_note_never_triggers_a_shortcut(browser, serve):
    store, desk = serve()
    page = open_as(browser, desk, "Ann")
    first = shown_item(page)
    page.keyboard.press("n")
    assert page.evaluate("document.activeElement.id") == "note"
    note = "keep? flip! undo, skip & discuss: 1 2 3 ?"
    page.keyboard.type(note)
    page.keyboard.press("Backspace")  # deletes a character; it is not "undo" here
    page.wait_for_timeout(300)
    assert page.get_attribute("#item", "data-item-id") == first and store.events_table().empty
    assert page.locator("#overlay-help").is_hidden()
    page.keyboard.press("Escape")  # leaves the note box: keys are shortcuts again
    page.keyboard.press("k")
    shown_item(page, not_id=first)
    events = store.events_table()
    assert events[["action", "note"]].values.tolist() == [["keep", note[:-1]]]
    assert page.input_value("#note") == "" and page.errors == []


def test_two_coders_in_two_browsers_never_get_the_same_item(browser, serve):
    store, desk = serve()
    ann, bob = open_as(browser, desk, "Ann"), open_as(browser, desk, "Bob")
    held_a, held_b = shown_item(ann), shown_item(bob)
    seen = set()
    for _ in range(4):
        assert held_a != held_b
        assert not {held_a, held_b} & seen
        seen |= {held_a, held_b}
        ann.keyboard.press("k")
        bob.keyboard.press("f")
        held_a, held_b = shown_item(ann, not_id=held_a), shown_item(bob, not_id=held_b)
    decided = store.decided_values()
    assert len(decided) == 8 and decided["item_id"].is_unique


def test_double_coded_items_reach_the_adjudicator(browser, serve, shots):
    store, desk = serve(double_share=1.0)
    ann, bob = open_as(browser, desk, "Ann"), open_as(browser, desk, "Bob")
    item = shown_item(ann)
    assert shown_item(bob) == item  # double-coded: both code it, independently
    ann.keyboard.press("k")
    shown_item(ann, not_id=item)  # saved before Bob decides: Bob is the second coder (key B below)
    bob.keyboard.press("f")
    shown_item(bob, not_id=item)
    pi = open_as(browser, desk, "Pi", "adjudicate")
    assert shown_item(pi) == item
    votes = pi.inner_text("#fields")
    assert "Ann:" in votes and "Bob:" in votes
    pi.screenshot(path=shots / "adjudicate.png")
    pi.keyboard.press("b")  # take the second coder's code
    pi.keyboard.press("Enter")
    shown_item(pi, not_id=item)
    assert store.item(int(item))["status"] == "resolved"
    human = store.item(int(item))["human_value"]
    assert store.decided_values(role=None).query("role == 'adjudicator'")["value"].tolist() == [str(1 - int(human))]
    assert pi.errors == []


def test_every_screen_renders_without_errors(browser, serve, shots, run_dir, new_texts):
    store, desk = serve(double_share=0.5)
    load_texts(store, run_dir, new_texts)
    store.edit_codebook("Pi", store.fields[0].name, definition="A clause that limits or excludes the provider's "
                        "liability for damages.", examples="“We are not liable for any indirect damages.”")
    pi = open_as(browser, desk, "Pi")
    shown_item(pi)
    pi.keyboard.press("?")
    pi.screenshot(path=shots / "help.png")
    pi.keyboard.press("Escape")
    pi.keyboard.press("c")
    assert "limits or excludes" in pi.inner_text("#overlay-codebook")
    pi.screenshot(path=shots / "codebook_overlay.png")
    pi.keyboard.press("Escape")
    pi.goto(f"{desk.url}/code")
    first = shown_item(pi)
    pi.keyboard.press("1")
    assert pi.inner_text('.field[data-index="0"] .value') == "1"
    pi.screenshot(path=shots / "code.png")
    pi.keyboard.press("Enter")
    shown_item(pi, not_id=first)
    assert store.decided_values().query("kind == 'code'")["value"].tolist()[0] == "1"
    pi.goto(f"{desk.url}/progress")
    pi.wait_for_selector("#agreement p, #agreement table")
    pi.screenshot(path=shots / "progress.png", full_page=True)
    for screen in ("browse", "codebook"):
        pi.goto(f"{desk.url}/{screen}")
        pi.screenshot(path=shots / f"{screen}.png")
    pi.context.clear_cookies()
    pi.goto(f"{desk.url}/review")
    assert pi.url.endswith("/signin?next=/review")
    pi.screenshot(path=shots / "signin.png")
    assert pi.errors == []


def with_block(run: Path) -> None:
    """Mark the run's strongest cluster of flags in its queue with the audit's own functions (``alpha=1``: a
    sample of 8 documents is too small for the audit's default test to find the annotation gap)."""
    import pandas as pd

    from lexcoder.audit.blocks import find_blocks, mark_blocks
    from lexcoder.rundir import RunDir
    folder = RunDir(run)
    data, queue = pd.read_parquet(folder.data), pd.read_parquet(folder.label_issues_table)
    blocks = find_blocks(data, queue, ["group"], alpha=1.0, names={"group": "doc_id"})[:1]
    mark_blocks(queue, data, blocks, names={"group": "doc_id"}).to_parquet(folder.label_issues_table)


def test_a_coder_sees_why_a_row_is_flagged_and_decides_a_duplicate_group_at_once(browser, serve, shots, grouped_run,
                                                                              tmp_path):
    from conftest import queue_of
    run = shutil.copytree(grouped_run, tmp_path / "grouped")
    with_block(run)
    store, desk = serve(run)
    queue = queue_of(run)
    group = queue[queue["group"] == "G1"]
    page = open_as(browser, desk, "Ann")
    lead = shown_item(page)
    item = store.item(int(lead))
    why = page.locator("#why").text_content()  # (headings are upper case on screen, by CSS)
    counts = group["human_value"].astype(str).value_counts().sort_index(ascending=False)
    assert f"Conflicting duplicate G1: {len(group)} copies, coded " + ", ".join(
        f"{code} in {n}" for code, n in counts.items()) in why
    shown = page.eval_on_selector_all("#why [data-copy]", "ids => ids.map(i => [i.dataset.copy, i.dataset.code])")
    assert sorted(map(tuple, shown)) == sorted(zip(group["id"].astype(str), group["human_value"].astype(str)))
    upper = [t for t in group["text"] if t == t.upper()]
    assert upper and upper[0] in why  # the near-duplicate's own text is shown
    terms = page.eval_on_selector_all("#why .term > span", "spans => spans.map(s => s.textContent)")
    assert terms == [t["term"] for t in item["why"]["terms"]]
    nearest = page.eval_on_selector_all("#why .why-texts .chip", "chips => chips.map(c => c.textContent)")
    assert nearest == [t["id"] for t in item["why"]["nearest_other"]]
    keep = page.inner_text('[data-action="keep"]')
    assert keep.startswith(f"All {len(group)} copies → {item['human_value']}")
    page.screenshot(path=shots / "review_explained.png", full_page=True)

    page.keyboard.press("k")  # one key: every copy gets the lead's code
    shown_item(page, not_id=lead)
    decided = store.decided_values().query("coder == 'Ann'")
    assert len(decided) == len(group) and set(decided["value"]) == {item["human_value"]}
    assert page.locator("#recent li").count() == 1  # listed once

    flagged = store.items_table("audit").query("block != ''")
    assert len(flagged)
    page.goto(f"{desk.url}/review?item={int(flagged['item_id'].iloc[0])}")
    shown_item(page)
    block = page.text_content("#why")
    assert f"Cluster of flags · {flagged['block'].iloc[0]}" in block
    assert "texts left at the default code 0" in block and "block:" not in page.inner_text(".reason")
    page.screenshot(path=shots / "review_block.png", full_page=True)
    assert page.errors == []


def test_text_from_the_data_is_shown_as_text_never_run(browser, serve, run_dir):
    import pandas as pd

    from lexcoder.rundir import RunDir
    path = RunDir(run_dir).label_issues_table
    queue = pd.read_parquet(path)
    payloads = {
        "evidence": "“<img src=x onerror=alert(1)>” +1.20, “<script>window.__xss=1</script>” -0.40; similar texts "
                    "coded 1: id <b>55</b> (0.91) “<img src=y onerror=window.__xss=2>”",
        "nearest_other": "id <script>window.__xss=3</script> (0.50) “<svg onload=window.__xss=4>” | id 9 (0.40) "
                         "“<iframe src=javascript:alert(2)>”",
        "block": "doc_id=<img src=z onerror=window.__xss=5>",
        "reason": "model confident positive (p=0.90), coded 0; block: doc_id '<img src=w onerror=alert(3)>': 6 "
                  "texts left at the default code 0"}
    for column, value in payloads.items():
        queue.loc[0, column] = value
    queue.loc[1, "evidence"] = "<img src=v onerror=window.__xss=6> not in the audit's format"
    queue.to_parquet(path)
    store, desk = serve()
    page = open_as(browser, desk, "Ann")
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    first = shown_item(page)
    shown = page.text_content("#item")
    for text in ("<img src=x onerror=alert(1)>", "<script>window.__xss=1</script>",
                 "<img src=y onerror=window.__xss=2>", "<script>window.__xss=3</script>", "<svg onload=window.__xss=4>",
                 "<iframe src=javascript:alert(2)>", "doc_id=<img src=z onerror=window.__xss=5>",
                 "<img src=w onerror=alert(3)>", "<b>55</b>"):
        assert text in shown
    assert page.locator("#item img, #item script, #item svg, #item iframe, #item b").count() == 0
    page.keyboard.press("s")
    shown_item(page, not_id=first)
    assert "<img src=v onerror=window.__xss=6> not in the audit's format" in page.text_content("#why")
    assert page.locator("#item img").count() == 0
    page.wait_for_timeout(200)
    assert page.evaluate("window.__xss") is None and dialogs == [] and page.errors == []


def test_the_adjudicator_resolves_a_duplicate_group_for_every_copy(browser, serve, grouped_run, tmp_path):
    from conftest import queue_of
    run = shutil.copytree(grouped_run, tmp_path / "grouped")
    store, desk = serve(run, double_share=1.0)
    group = queue_of(run).query("group == 'G1'")
    ann, bob = open_as(browser, desk, "Ann"), open_as(browser, desk, "Bob")
    lead = shown_item(ann)
    assert shown_item(bob) == lead
    ann.keyboard.press("k")
    shown_item(ann, not_id=lead)  # saved before Bob decides: Bob is the second coder
    bob.keyboard.press("f")
    shown_item(bob, not_id=lead)
    pi = open_as(browser, desk, "Pi", "adjudicate")
    assert shown_item(pi) == lead
    assert sorted(pi.eval_on_selector_all("#why [data-copy]", "ids => ids.map(i => i.dataset.copy)")) == \
        sorted(group["id"].astype(str))
    pi.keyboard.press("b")  # Bob's code, for every copy
    pi.keyboard.press("Enter")
    shown_item(pi, not_id=lead)
    resolved = store.decided_values(role=None).query("role == 'adjudicator'")
    assert len(resolved) == len(group) and resolved["value"].nunique() == 1
    assert resolved["value"].iloc[0] == str(1 - int(store.item(int(lead))["human_value"]))
    assert pi.errors == [] and ann.errors == [] and bob.errors == []
