"""Krippendorff's α (lexcoder.stats.krippendorff_alpha) against the reference ``krippendorff`` package.

lexcoder computes α itself because the package is GPL-3.0-or-later and lexcoder is MIT; the package is in
the ``dev`` extra only, as the reference these tests compare with. Where α is undefined the package raises
or returns NaN and lexcoder returns ``None``.
"""
from __future__ import annotations

import ast
import sys
import warnings
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement

import lexcoder
from lexcoder.stats import agreement, krippendorff_alpha

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

GPL_PACKAGES = {"krippendorff"}


def _reference(*codes: np.ndarray) -> float:
    return krippendorff.alpha(reliability_data=np.vstack(codes).astype(float), level_of_measurement="nominal")


def _reference_or_nan(*codes: np.ndarray) -> float:
    """The package's α, NaN where it is undefined (the package raises, or warns and returns NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            return _reference(*codes)
        except ValueError:  # fewer than two values in the domain, or no unit with two codes
            return np.nan


def _second_coder(codes: np.ndarray, rng: np.random.Generator, *, flip: float, missing: float) -> np.ndarray:
    """A simulated coder: ``codes`` with a share ``flip`` of 0/1 codes flipped and ``missing`` left uncoded."""
    out = np.where(rng.uniform(size=codes.size) < flip, 1 - codes, codes).astype(float)
    out[rng.uniform(size=codes.size) < missing] = np.nan
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_alpha_matches_reference_on_tos_labels(tos_full, tos_labels, seed):
    rng = np.random.default_rng(seed)
    for label in tos_labels:
        human = tos_full[label].to_numpy().astype(float)
        human_with_gaps = _second_coder(human, rng, flip=0.0, missing=0.05)
        second = _second_coder(human, rng, flip=0.1, missing=0.2)
        third = _second_coder(human, rng, flip=0.3, missing=0.5)
        for coders in [(human, second), (human_with_gaps, second), (human_with_gaps, second, third)]:
            assert krippendorff_alpha(*coders) == pytest.approx(_reference(*coders), rel=0, abs=1e-12)


def test_alpha_falls_as_the_second_coder_errs_more(tos_full):
    human = tos_full["arbitration"].to_numpy().astype(float)
    rng = np.random.default_rng(0)
    alphas = [krippendorff_alpha(human, _second_coder(human, rng, flip=f, missing=0.1)) for f in (0.0, 0.01, 0.1)]
    assert alphas[0] == pytest.approx(1.0)
    assert alphas[0] > alphas[1] > alphas[2]


def test_alpha_edge_cases_match_reference():
    nan = np.nan
    perfect = ([1, 0, 2, 1, nan], [1, 0, 2, 1, 0], [nan, 0, 2, 1, 0])
    assert krippendorff_alpha(*perfect) == 1.0 == _reference(*perfect)
    one_category = ([1, 1, 1], [1, 1, nan])
    assert krippendorff_alpha(*one_category) is None
    with pytest.raises(ValueError, match="more than one value"):
        _reference(*one_category)
    # two categories, but the 0 has no partner: among pairable values there is one category only
    one_pairable_category = ([1, 1, 0], [1, 1, nan])
    assert krippendorff_alpha(*one_pairable_category) is None
    with pytest.warns(RuntimeWarning):
        assert np.isnan(_reference(*one_pairable_category))
    all_missing = ([nan] * 4, [nan] * 4)
    assert krippendorff_alpha(*all_missing) is None
    no_unit_coded_twice = ([1, nan, 0], [nan, 0, nan])
    assert krippendorff_alpha(*no_unit_coded_twice) is None
    with pytest.raises(ValueError, match="at least two coders"):
        _reference(*no_unit_coded_twice)


def test_alpha_rejects_malformed_input():
    with pytest.raises(ValueError, match="at least two coders; got 1"):
        krippendorff_alpha(np.zeros(3))
    with pytest.raises(ValueError, match=r"\(3,\), \(4,\)"):
        krippendorff_alpha(np.zeros(3), np.zeros(4))


codes = st.sampled_from([0.0, 1.0, 2.0, 3.0, np.nan])


@st.composite
def reliability_data(draw) -> np.ndarray:
    """2-4 coders × 1-25 units of nominal codes 0-3, with missing codes (NaN)."""
    m = draw(st.integers(2, 4))
    n = draw(st.integers(1, 25))
    return np.array(draw(st.lists(st.lists(codes, min_size=n, max_size=n), min_size=m, max_size=m)))


@settings(max_examples=300, deadline=None)
@given(reliability_data())
def test_alpha_matches_reference_on_generated_data(data):
    ours = krippendorff_alpha(*data)
    ref = _reference_or_nan(*data)
    if np.isnan(ref):
        assert ours is None
    else:
        assert ours == pytest.approx(ref, rel=0, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(reliability_data(), st.randoms(use_true_random=False))
def test_alpha_ignores_coder_order_and_category_names(data, random):
    order = list(range(len(data)))
    random.shuffle(order)
    renamed = np.where(np.isnan(data), np.nan, 10 - 3 * data)  # a one-to-one renaming of the codes
    assert krippendorff_alpha(*data[order]) == pytest.approx(krippendorff_alpha(*data), abs=1e-12)
    assert krippendorff_alpha(*renamed) == pytest.approx(krippendorff_alpha(*data), abs=1e-12)


def test_agreement_reports_alpha_on_the_rows_both_coded(tos_full):
    human = tos_full["jurisdiction"].to_numpy().astype(float)
    second = _second_coder(human, np.random.default_rng(5), flip=0.05, missing=0.3)
    out = agreement(human, second)
    assert out["n"] == int(np.sum(~np.isnan(second)))
    assert out["krippendorff_alpha"] == pytest.approx(_reference(human, second), rel=0, abs=1e-12)


def _imported_modules(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, at module level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_gpl_package_in_lexcoder_code_or_runtime_extras():
    package = Path(lexcoder.__file__).parent
    importers = {str(p.relative_to(package)) for p in package.rglob("*.py") if _imported_modules(p) & GPL_PACKAGES}
    assert not importers, f"lexcoder (MIT) imports a GPL package in {sorted(importers)}"
    pyproject = package.parents[1] / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not a source checkout: no pyproject.toml beside src/")
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = {"dependencies": project["dependencies"], **project["optional-dependencies"]}
    for extra, reqs in requirements.items():
        listed = {Requirement(r).name.lower() for r in reqs}
        if extra != "dev":  # the dev extra holds the reference implementation for these tests
            assert not listed & GPL_PACKAGES, f"GPL package in the {extra!r} requirements: {listed & GPL_PACKAGES}"
