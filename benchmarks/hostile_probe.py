"""Hostile probe (issue 10, "done when"): every case of tests/hostile/cases.py, run as a new user would.

Each case gets a fresh temporary folder and runs the installed ``lexcoder`` entry point as a subprocess
(concurrency cases start two at once); the shared finished run that some cases damage is trained the same
way first. The verdict of every case follows the contract in ``tests/hostile/cases.py``: expected exit
code, no traceback, no partial output or debris, no input modified, no data lost.

Usage::

    python benchmarks/hostile_probe.py                 # all cases -> benchmarks/results/hostile_probe.json
    python benchmarks/hostile_probe.py --list          # the catalogue
    python benchmarks/hostile_probe.py --only NAME --only NAME2 [--keep]   # some cases (no JSON unless --json)

Disk-full and read-only cases mount a tiny tmpfs when run as root on Linux (a real ENOSPC/EROFS);
otherwise they patch Python's file writes (``HOSTILE_NO_MOUNT=1`` forces that).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "hostile_probe.json"
console = Console(width=None if sys.stdout.isatty() else 160)


def load_cases():
    spec = importlib.util.spec_from_file_location("hostile_cases", ROOT / "tests" / "hostile" / "cases.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["hostile_cases"] = module
    spec.loader.exec_module(module)
    return module


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="run only this case (repeatable; a trailing * matches a prefix)")
    ap.add_argument("--group", action="append", default=[], help="run only cases of this group (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--json", type=Path, default=None, help=f"write results here (default for a full run: {RESULT})")
    ap.add_argument("--keep", action="store_true", help="keep the case folders (printed at the end)")
    return ap.parse_args()


def select(hc, only: list[str], groups: list[str]) -> list:
    chosen = []
    for name, case in hc.CASES.items():
        if groups and case.group not in groups:
            continue
        if only and not any(name == o or (o.endswith("*") and name.startswith(o[:-1])) for o in only):
            continue
        chosen.append(case)
    unknown = [o for o in only if not o.endswith("*") and o not in hc.CASES]
    if unknown:
        raise SystemExit(f"unknown case(s): {unknown}; see --list")
    return chosen


def show_list(hc) -> None:
    table = Table(title=f"{len(hc.CASES)} hostile cases", title_justify="left")
    for col in ("case", "group", "expected", "in test", "what the user did"):
        table.add_column(col, overflow="fold")
    for case in hc.CASES.values():
        table.add_row(case.name, case.group, case.expect, "yes" if case.in_test else "", case.doc)
    console.print(table)


def yes(flag) -> str:
    return "[red]yes[/]" if flag else "no"


def show_results(verdicts: list) -> None:
    table = Table(title="Hostile probe", title_justify="left")
    for col in ("case", "expected", "exit code", "traceback?", "partial output?", "input modified?",
                "data lost?", "verdict"):
        table.add_column(col, no_wrap=col == "case")
    for v in verdicts:
        table.add_row(v.case, v.expected, ",".join(map(str, v.codes)) or "-", yes(v.traceback), yes(v.partial),
                      yes(v.modified), yes(v.lost), "[green]pass[/]" if v.passed else "[red]FAIL[/]")
    console.print(table)
    for v in verdicts:
        if not v.passed:
            why = v.problems + v.partial + [f"modified {m}" for m in v.modified] + v.lost
            if v.traceback and not why:
                why = ["traceback"]
            console.print(f"[red]FAIL[/] {v.case}: {'; '.join(why)[:400]}", highlight=False)


def totals(verdicts: list) -> dict:
    return {"cases": len(verdicts), "passed": sum(v.passed for v in verdicts),
            "failed": sum(not v.passed for v in verdicts), "tracebacks": sum(v.traceback for v in verdicts),
            "partial_outputs": sum(bool(v.partial) for v in verdicts),
            "inputs_modified": sum(bool(v.modified) for v in verdicts),
            "data_lost": sum(bool(v.lost) for v in verdicts),
            "wrong_outcome_or_check": sum(bool(v.problems) for v in verdicts)}


def git_commit() -> str | None:
    res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT, capture_output=True, text=True)
    return (res.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")) or None


def main() -> int:
    args = parse_args()
    hc = load_cases()
    if args.list:
        show_list(hc)
        return 0
    cases = select(hc, args.only, args.group)
    work = Path(tempfile.mkdtemp(prefix="hostile_probe_"))
    t0 = time.perf_counter()
    console.print(f"lexcoder: {' '.join(hc.lexcoder_command())}; {len(cases)} case(s) in {work}; "
                  f"tiny file systems: {'tmpfs' if hc.can_mount() else 'patched writes'}", highlight=False)
    template = hc.build_template(work / "_template", hc.invoke_subprocess)
    verdicts = []
    for case in cases:
        v = hc.run_case(case, work / case.name, invoke=hc.invoke_subprocess, template=template)
        verdicts.append(v)
        console.print(f"{'pass' if v.passed else '[red]FAIL[/]'} {case.name} ({v.seconds:.1f} s)", highlight=False)
    seconds = time.perf_counter() - t0
    show_results(verdicts)
    tot = totals(verdicts)
    console.print(f"[bold]{tot['passed']}/{tot['cases']} passed[/] in {seconds:.0f} s — tracebacks "
                  f"{tot['tracebacks']}, partial outputs {tot['partial_outputs']}, inputs modified "
                  f"{tot['inputs_modified']}, data lost {tot['data_lost']}, wrong outcome or failed check "
                  f"{tot['wrong_outcome_or_check']}")
    target = args.json or (RESULT if not (args.only or args.group) else None)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({
            "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "git_commit": git_commit(), "entry_point": hc.lexcoder_command(),
            "tiny_filesystems": "tmpfs" if hc.can_mount() else "patched writes",
            "seconds": round(seconds, 1), "totals": tot,
            "results": [v.as_dict() for v in verdicts]}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        console.print(f"Wrote {target}")
    if args.keep:
        console.print(f"Case folders kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if tot["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
