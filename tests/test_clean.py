"""Cleaning: NFKC + whitespace, duplicate groups, conflicting duplicates reported, labels untouched."""
from __future__ import annotations

import pandas as pd

from lexcoder.clean import clean, clean_text


def test_clean_text_normalises_unicode_and_whitespace():
    assert clean_text("ﬁnancial\u00a0 hardship\n\n  ") == "financial hardship"
    assert clean_text("Ｆｕｌｌ width") == "Full width"


def test_duplicates_grouped_and_conflicts_reported(tos_docs, tos_labels):
    df = tos_docs.head(300).assign(id=lambda d: d["id"].astype(str))[["id", "text", *tos_labels]].copy()
    # a real sentence copied twice (one copy with extra spaces), one copy coded differently
    src = df[df["arbitration"] == 0].iloc[0]
    extra = pd.DataFrame([{**src, "id": "dup1", "text": "  " + src["text"].replace(" ", "  ")},
                          {**src, "id": "dup2", "arbitration": 1}])
    df = pd.concat([df, extra], ignore_index=True)
    before = df[tos_labels].copy()
    out, conflicts, report = clean(df, tos_labels)
    groups = out.set_index("id")["dup_group"]
    assert groups["dup1"] == groups["dup2"] == groups[src["id"]]
    row = conflicts[conflicts["label"] == "arbitration"].iloc[0]
    assert set(row["ids"]) == {src["id"], "dup1", "dup2"} and sorted(row["values"]) == ["0", "0", "1"]
    assert report.conflicting_groups >= 1
    pd.testing.assert_frame_equal(out[tos_labels], before)  # labels never edited


def test_conflicting_classes_are_reported_beside_labels(shared_data, tmp_path):
    """Identical sentences with different rhetorical roles (real: splitter fragments like "Mr") are
    conflicts of the categorical variable, written in one table with the 0/1 labels' conflicts."""
    from lexcoder.io import write_table
    df = pd.read_csv(shared_data("indian_sc_rhetorical_roles/texts.csv.gz")).rename(columns={"label": "role"})
    df = df.assign(id=df["id"].astype(str), facts=(df["role"] == "Facts").astype(int))
    out, conflicts, report = clean(df, ["facts", "role"])
    roles = conflicts[conflicts["label"] == "role"]
    assert len(roles) >= 10 and report.conflicting_groups == conflicts["dup_group"].nunique()
    by_id = df.set_index("id")["role"]
    for row in roles.itertuples():
        assert row.values == [by_id[i] for i in row.ids] and len(set(row.values)) > 1
        assert out.loc[out["id"].isin(row.ids), "dup_group"].nunique() == 1
    assert set(conflicts.loc[conflicts["label"] == "facts", "values"].explode()) == {"0", "1"}
    write_table(conflicts.assign(ids=conflicts["ids"].map(list), values=conflicts["values"].map(list)),
                tmp_path / "conflicts.parquet")  # as the pipeline writes it: one column type for both kinds
    assert pd.read_parquet(tmp_path / "conflicts.parquet")["values"].map(list).tolist() == conflicts["values"].tolist()
