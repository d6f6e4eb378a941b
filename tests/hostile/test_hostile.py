"""Hostile and unusual inputs (issue 10, part E): lexcoder refuses cleanly, never loses or half-writes anything.

Every case of ``cases.py`` marked ``in_test`` runs in-process through typer's ``CliRunner`` (concurrency
cases start real subprocesses) against the contract in ``cases.py``'s docstring: the expected exit code, an
``Error:`` message and no traceback on refusal, no partial output or ``*.tmp`` debris, every pre-existing
file byte-identical, plus each case's own checks. Cases that need a finished run share one (trained and
audited once per module) and damage a copy of it. ``benchmarks/hostile_probe.py`` runs every case as a
subprocess of the installed ``lexcoder``, as a new user would.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _load_cases():
    """Import cases.py under a unique name (test folders are not packages; 'cases' is a common name)."""
    spec = importlib.util.spec_from_file_location("hostile_cases", Path(__file__).with_name("cases.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["hostile_cases"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


hc = sys.modules.get("hostile_cases") or _load_cases()
IN_TEST = [name for name, case in hc.CASES.items() if case.in_test]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """One finished, audited run of the standard data, copied by every case that needs a run."""
    return hc.build_template(tmp_path_factory.mktemp("hostile_template"), hc.invoke_inprocess)


@pytest.mark.parametrize("name", IN_TEST)
def test_hostile_case(name: str, template: Path, tmp_path: Path) -> None:
    case = hc.CASES[name]
    verdict = hc.run_case(case, tmp_path / "case", invoke=hc.invoke_inprocess, template=template)
    assert verdict.passed, f"{case.doc}\n{verdict.summary()}"


def test_catalogue_covers_the_issue() -> None:
    """At least 85 distinct situations over every area of issue 10, and at least 40 of them run here."""
    groups = {case.group for case in hc.CASES.values()}
    assert len(hc.CASES) >= 85 and len(IN_TEST) >= 40 and hc.TEST_CASES <= set(hc.CASES)
    assert groups >= {"input", "config", "rundir", "disk", "concurrency", "predict", "audit", "init"}
    assert all(case.doc for case in hc.CASES.values()), "every case says what the user did"
