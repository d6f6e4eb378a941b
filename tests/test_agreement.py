"""Krippendorff's α (lexcoder.stats.krippendorff_alpha) against the reference ``krippendorff`` package.

lexcoder computes α itself because the package is GPL-3.0-or-later and lexcoder is MIT; the package is in
the ``dev`` extra only, as the reference these tests compare with. Where α is undefined the package raises
or returns NaN and lexcoder returns ``None``.
"""
from __future__ import annotations

import ast
import tomllib
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


# -- categorical variables: k classes -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def roles(shared_data) -> np.ndarray:
    """The rhetorical role (7 classes, as indices 0-6) of 9,380 sentences of Indian Supreme Court judgments."""
    import pandas as pd
    labels = pd.read_csv(shared_data("indian_sc_rhetorical_roles/texts.csv.gz"), usecols=["label"])["label"]
    return np.unique(labels, return_inverse=True)[1]


def _other_class_coder(codes: np.ndarray, k: int, rng: np.random.Generator, *, swap: float,
                       missing: float) -> np.ndarray:
    """A simulated coder of a k-class variable: a share ``swap`` of codes moved to another class at random."""
    moved = rng.uniform(size=codes.size) < swap
    out = np.where(moved, (codes + rng.integers(1, k, size=codes.size)) % k, codes).astype(float)
    out[rng.uniform(size=codes.size) < missing] = np.nan
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_alpha_matches_reference_on_seven_rhetorical_roles(roles, seed):
    rng = np.random.default_rng(seed)
    second = _other_class_coder(roles, 7, rng, swap=0.2, missing=0.1)
    third = _other_class_coder(roles, 7, rng, swap=0.5, missing=0.4)
    for coders in [(roles, second), (roles, second, third)]:
        assert krippendorff_alpha(*coders) == pytest.approx(_reference(*coders), rel=0, abs=1e-12)


# hand-worked, three categories: a = 0001122201, b = 0011122002; agreement 7/10; each coder has four 0s,
# three 1s and three 2s, so pi = (.4, .3, .3) and sum pi (1 - pi) = .24 + .21 + .21 = .66
A3 = np.array([0, 0, 0, 1, 1, 2, 2, 2, 0, 1])
B3 = np.array([0, 0, 1, 1, 1, 2, 2, 0, 0, 2])


def test_ac1_of_three_categories_hand_checked():
    from lexcoder.stats import gwet_ac1
    assert gwet_ac1(A3, B3, categories=range(3)) == pytest.approx((0.7 - 0.33) / (1 - 0.33))  # p_e = .66 / 2
    # a fourth category in the scheme that neither coder used: q = 4 enters p_e = .66 / 3
    assert gwet_ac1(A3, B3, categories=range(4)) == pytest.approx((0.7 - 0.22) / (1 - 0.22))
    # renaming the categories changes nothing
    assert gwet_ac1(A3 + 5, B3 + 5, categories=[5, 6, 7]) == pytest.approx(gwet_ac1(A3, B3, categories=range(3)))


def test_ac1_refuses_codes_outside_its_categories():
    from lexcoder.stats import gwet_ac1
    with pytest.raises(ValueError, match=r"Codes \[2\.0\] are not among the categories \[0\.0, 1\.0\].*range\(k\)"):
        gwet_ac1(A3, B3)  # the 0/1 default would silently count the 2s as agreeing on nothing
    with pytest.raises(ValueError, match="two or more distinct categories"):
        gwet_ac1(A3, A3, categories=[0])


def test_agreement_of_a_categorical_variable(roles):
    second = _other_class_coder(roles, 7, np.random.default_rng(3), swap=0.25, missing=0.3)
    out = agreement(roles, second, categories=range(7))
    coded = ~np.isnan(second)
    assert out["n"] == coded.sum()
    assert out["percent_agreement"] == pytest.approx(np.mean(roles[coded] == second[coded]))
    assert out["krippendorff_alpha"] == pytest.approx(_reference(roles, second), rel=0, abs=1e-12)
    assert out["cohen_kappa"] < out["gwet_ac1"] < out["percent_agreement"]  # chance terms: κ's sum p_c² ≈ .25,
    # AC1's (1 - sum pi_c²) / 6 ≈ .13 for these unequal roles; both above 0
