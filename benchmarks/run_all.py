"""List the benchmark scripts, or run some of them (``make bench`` calls this).

    python benchmarks/run_all.py                        # list the scripts with what each measures
    python benchmarks/run_all.py tfidf_cv audit         # run these (``bench_`` prefix and ``.py`` optional)
    python benchmarks/run_all.py int8_agreement -- runs/demo-minilm   # arguments after -- go to each script
    python benchmarks/run_all.py --all                  # every CPU benchmark, fastest first (hours)

Each script runs in its own process from the repository root and writes its own JSON to
``benchmarks/results/`` (see benchmarks/README.md). GPU-only scripts (``gpu_*``) and scripts that need an
argument are skipped by ``--all``, with a message; run them by name.
"""
from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# --all order: fast first, so a short session still gets the cheap figures (scripts not listed run last)
ORDER = ("bench_tfidf_cv", "bench_report", "bench_ppi_coverage", "bench_audit", "bench_review_loop",
         "bench_encoder_speed", "bench_encoder_quality", "bench_encoder_cv", "hostile_probe")
NOT_IN_ALL = {"bench_int8_agreement": "needs a trained encoder run: run_all.py int8_agreement -- RUN_DIR"}


def scripts() -> dict[str, str]:
    """``{name: first line of its module docstring}`` for every benchmark script but this one."""
    found = {}
    for path in sorted(HERE.glob("*.py")):
        if path.name != Path(__file__).name:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "(no description)"
            found[path.stem] = doc.strip().splitlines()[0]
    return found


def skip_reason(name: str) -> str | None:
    """Why ``--all`` leaves ``name`` out, or None."""
    if name.startswith("gpu_"):
        return "GPU only: run it by name on a machine with a CUDA GPU"
    return NOT_IN_ALL.get(name)


def resolve(name: str, known: dict[str, str]) -> str:
    """The script a command-line name means (``tfidf_cv``, ``bench_tfidf_cv`` or ``bench_tfidf_cv.py``)."""
    stem = name.removesuffix(".py")
    for candidate in (stem, f"bench_{stem}"):
        if candidate in known:
            return candidate
    sys.exit(f"Unknown benchmark {name!r}; choose from: {', '.join(known)}.")


def run(name: str, args: list[str]) -> tuple[int, float]:
    """Run one script with ``args``; its exit status and wall time in seconds."""
    print(f"\n=== {name} {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    code = subprocess.call([sys.executable, str(HERE / f"{name}.py"), *args], cwd=ROOT)
    return code, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    argv, extra = argv[:cut], argv[cut + 1:]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="benchmarks to run (none: list them)")
    ap.add_argument("--all", action="store_true", help="run every CPU benchmark, fastest first")
    opts = ap.parse_args(argv)
    known = scripts()
    if not opts.names and not opts.all:
        width = max(map(len, known))
        for name, line in known.items():
            print(f"{name:<{width}}  {line}" + (f"  [{skip_reason(name)}]" if skip_reason(name) else ""))
        print("\nRun some with: python benchmarks/run_all.py NAME ... (or --all)")
        return 0
    if opts.all:
        chosen = [n for n in ORDER if n in known] + [n for n in known if n not in ORDER]
        for name in [n for n in chosen if skip_reason(n)]:
            print(f"skipped {name}: {skip_reason(name)}")
        chosen = [n for n in chosen if not skip_reason(n)]
    else:
        chosen = [resolve(n, known) for n in opts.names]
    results = {name: run(name, extra) for name in chosen}
    print("\n=== summary")
    for name, (code, seconds) in results.items():
        print(f"{name:<24} {'ok' if code == 0 else f'exit {code}':>8} {seconds:9.0f} s")
    return int(any(code != 0 for code, _ in results.values()))


if __name__ == "__main__":
    sys.exit(main())
