"""Any label name and any text renders, escaped, in report.html, report.md and the plots.

A real TF-IDF run on ToS sentences whose label names hold mathtext, HTML, Markdown and template syntax,
with two identical sentences of HTML/Markdown coded differently (so they show in the conflicts table and
the audit's likely coding errors).
"""
from __future__ import annotations

import re

import pytest

from lexcoder import config_from_dict, run_pipeline
from lexcoder.audit import audit_run
from lexcoder.report import build_report

HOSTILE = {"limitation_of_liability": "a$_$b",  # matplotlib's mathtext fails on "$_$"
           "unilateral_termination": "<script>alert(1)</script>",
           "unilateral_change": "x|y ```z``` \\",
           "content_removal": "{{ 7*7 }} {% raw %} %s {0} Kündigung 中文"}
TEXT = "<img src=x onerror=alert(2)> | `code` [link](http://example.org) & \\ ![i](http://example.org/t.png)"
CELL_BORDER = re.compile(r"(?<!\\)\|")  # GFM: a pipe not escaped by a backslash ends a table cell


@pytest.fixture(scope="module")
def report(tos_full, tmp_path_factory):
    """(report.html, report.md, label names) of an audited run with hostile names and texts."""
    import pandas as pd
    root = tmp_path_factory.mktemp("report_safety")
    docs = sorted(tos_full["doc_id"].unique())[:6]
    part = tos_full[tos_full["doc_id"].isin(docs)][["id", "text", *HOSTILE]].reset_index(drop=True)
    part = part.rename(columns=HOSTILE)
    labels = list(HOSTILE.values())
    part.loc[0, "text"] = TEXT
    twin = part.iloc[[0]].assign(id="twin")
    twin[labels[1]] = 1 - twin[labels[1]]
    pd.concat([part, twin], ignore_index=True).to_parquet(root / "tos.parquet")
    cfg = config_from_dict({"data": {"path": str(root / "tos.parquet"), "text_column": "text",
                                     "id_column": "id", "label_columns": labels},
                            "evaluate": {"bootstrap": 50}, "report": {"enabled": False}})
    run_pipeline(cfg, root / "run")
    audit_run(root / "run", n_folds=2)
    build_report(root / "run")  # once, with the audit's likely coding errors
    return ((root / "run" / "report.html").read_text(encoding="utf-8"),
            (root / "run" / "report.md").read_text(encoding="utf-8"), labels)


def test_html_shows_names_and_texts_as_text(report):
    html, _, labels = report
    assert "<script" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "{{ 7*7 }} {% raw %} %s {0} Kündigung 中文" in html  # data is never template code
    images = re.findall(r'<img[^>]*src="([^"]+)"', html)
    assert len(images) == len(labels) + 1  # every plot drew, "a$_$b" included
    assert "Identical texts coded differently: 1 conflicting duplicate groups (2 rows)" in html
    assert "Likely coding errors" in html and "twin" in html


def test_markdown_tables_keep_their_columns(report):
    _, md, labels = report
    body = md.split("## Configuration")[0]  # the config below is a code block: shown verbatim
    assert "<script" not in body and "<img" not in body
    assert not re.search(r"(?<!\\)\]\(", body) and r"\[link\](http://example.org)" in body  # no live link
    tables, block = [], []
    for line in body.splitlines() + [""]:
        if line.startswith("|"):
            block.append(line)
        elif block:
            tables.append(block)
            block = []
    assert len(tables) >= 4  # metrics, prevalence, conflicts, likely errors, audit
    for table in tables:
        widths = {len(CELL_BORDER.split(row.rstrip())) for row in table}
        assert len(widths) == 1, table
    metrics = tables[0]
    assert len(metrics) == 2 + len(labels) + 2  # header, rule, one row per label, macro, micro
    assert "Kündigung 中文" in CELL_BORDER.split(metrics[2 + labels.index(HOSTILE["content_removal"])])[1]


def test_markdown_config_block_is_not_closed_by_a_label_name(report):
    _, md, _ = report
    config = md.split("## Configuration", 1)[1].strip().splitlines()
    fence = config[0].removesuffix("toml")
    assert len(fence) > 3 and set(fence) == {"`"} and config[-1] == fence
    assert sum(line == fence for line in config) == 1 and "```z```" in "\n".join(config)
