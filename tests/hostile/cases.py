"""A catalogue of hostile or unusual situations a researcher can hand lexcoder, and the contract it must keep.

Each :class:`Case` builds its input files from real data (the bundled ToS sentences, cut to 300 rows of 10
documents so a TF-IDF run takes about 2 s) in a fresh folder, names the command line a user would type,
and says what must happen: ``"ok"`` (exit 0), ``"refused"`` (exit 2 with one clear ``Error:`` message) or
``"either"`` (where the issue allows both, but never a traceback or a mess).

The contract, checked for every case by :func:`judge` (see issue 10):

- exit code as expected; a refusal prints ``Error`` and no ``Traceback``;
- nothing half-written: after a refusal no new file or folder exists (a run folder whose manifest says
  ``status = "failed"`` is allowed: a plain rerun replaces it); no ``*.tmp``/``*.old`` debris anywhere;
- every file that existed before the command is byte-identical afterwards, unless the case names it as
  an output (and the command succeeded); nothing is created outside the outputs a case allows;
- plus each case's own checks (outputs readable back, formulas neutralised, umask, resumed == fresh...).

Two runners use the catalogue: ``tests/hostile/test_hostile.py`` (in-process with typer's ``CliRunner``)
and ``benchmarks/hostile_probe.py`` (every case as a subprocess of the installed ``lexcoder``, as a new
user would run it). Disk-full and read-only cases use a tiny tmpfs when this process may mount one (root),
and otherwise patch Python's file writes to fail with ``ENOSPC`` / permissions.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

LABELS = ["limitation_of_liability", "unilateral_termination", "unilateral_change"]
OK, REFUSED, EITHER, ONE_WINS = "ok", "refused", "either", "one_wins"
TRACEBACK = "Traceback (most recent call last)"
LOCK_NAME = ".lexcoder.lock"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


# ----------------------------------------------------------------------------------------------------------
# What a case is
# ----------------------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """How one lexcoder command ended."""

    argv: list[str]
    code: int
    output: str
    seconds: float
    traceback: bool = False

    @property
    def flat(self) -> str:
        """The output on one line (rich wraps long messages at the terminal width)."""
        return " ".join(self.output.split())


@dataclass
class Step:
    """A follow-up command after the main one (e.g. ``--resume`` once disk space was freed)."""

    argv: list[str]
    expect: str = OK
    message: str | None = None
    before: Callable[[], None] | None = None  # e.g. free the disk, fix the data file


@dataclass
class Parallel:
    """One of several commands started at (nearly) the same time."""

    argv: list[str]
    expect: str = EITHER
    start_when: str | None = None  # start once this path (relative to the case folder) exists
    delay: float = 0.0


@dataclass
class Scenario:
    """What a case's setup built: the command line, the outputs it may write, its own checks."""

    argv: list[str] | None = None
    outputs: tuple[str, ...] = ()  # paths (relative) a successful command may create or change
    resumable: tuple[str, ...] = ()  # outputs an interrupted command may leave for --resume (disk full)
    may_change: tuple[str, ...] = ()  # pre-existing paths any outcome may change (e.g. a lock file's folder)
    check: Callable[["Workspace", Any], list[str]] | None = None
    then: list[Step] = field(default_factory=list)
    parallel: list[Parallel] | None = None
    cwd: str = "."
    env: dict[str, str] = field(default_factory=dict)
    umask: int = 0o022


@dataclass(frozen=True)
class Case:
    """One hostile or unusual situation (see the module docstring)."""

    name: str
    group: str
    expect: str
    setup: Callable[["Workspace"], Scenario]
    message: str | None = None  # regex (case-insensitive) a refusal's message must match
    doc: str = ""
    in_test: bool = False  # run by tests/hostile/test_hostile.py (the probe runs every case)


CASES: dict[str, Case] = {}


# The cases tests/hostile/test_hostile.py runs in-process (about 2 minutes on 2 cores): every defect the issue
# names, and a spread over every group. The probe runs all of them.
TEST_CASES = frozenset({
    "input_semicolon_csv", "input_header_only", "input_single_digit_texts", "input_label_value_2",
    "input_duplicate_column_names", "input_excel_second_sheet", "input_jsonl_broken_line",
    "input_gz_not_gzipped", "input_directory_as_data", "input_ids_duplicate", "input_utf16_csv",
    "input_empty_file",
    "config_utf16", "config_param_not_a_number", "config_param_negative", "config_unknown_key_typo",
    "config_split_extreme_fractions", "config_split_column_train_test_only", "set_malformed_no_equals",
    "set_into_scalar", "config_toml_syntax_error", "config_data_file_given_as_config",
    "out_is_cwd_holding_data", "out_holds_user_files", "out_is_a_file", "out_inside_another_run",
    "rerun_finished_without_resume", "resume_after_data_changed", "resume_after_config_changed",
    "resume_adding_corrections", "rerun_after_failed_run", "damaged_truncated_model", "damaged_missing_model",
    "damaged_threshold_missing_label", "damaged_manifest_corrupt_rerun",
    "disk_full_mid_run_then_resume", "disk_full_predict", "readonly_out_parent", "readonly_run_predict",
    "umask_022_run_outputs",
    "concurrent_two_runs_same_out", "concurrent_corrections_apply",
    "predict_out_equals_input", "predict_out_exists", "predict_out_csv_gz", "predict_out_jsonl_gz",
    "predict_out_csv_bz2", "predict_parquet_column_filled_late", "predict_input_has_prob_columns_parquet",
    "predict_input_has_prob_columns_csv", "predict_missing_text_column", "predict_formulas_xlsx",
    "predict_out_into_run_folder",
    "audit_label_path_traversal", "run_label_with_dollar", "audit_formulas_neutralised",
    "corrections_ledger_other_dataset", "corrections_roundtrip_neutralised_ids", "report_md_escapes_text_html",
    "init_missing_folder", "init_existing_file", "init_path_is_folder",
    "damaged_predictions_truncated_report", "predict_header_only_input", "run_label_with_html",
    "audit_unknown_method", "audit_top_negative", "disk_full_audit_at_report",
})


def case(name: str, group: str, expect: str, *, message: str | None = None):
    """Register ``setup`` as a case (its docstring says what a user did and why the outcome is right)."""
    def register(setup: Callable[["Workspace"], Scenario]) -> Callable[["Workspace"], Scenario]:
        if name in CASES:
            raise ValueError(f"duplicate case name {name}")
        doc = " ".join((setup.__doc__ or "").split())
        CASES[name] = Case(name, group, expect, setup, message, doc, name in TEST_CASES)
        return setup
    return register


class SetupError(RuntimeError):
    """A case could not build its situation (e.g. the run it needs failed): the case fails."""


# ----------------------------------------------------------------------------------------------------------
# Running lexcoder: in-process (CliRunner) or as a subprocess of the installed entry point
# ----------------------------------------------------------------------------------------------------------

CLEAN_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "160", "NO_COLOR": "1"}
_SECRET_PREFIXES = ("LEXCODER_TELEGRAM", "LEXCODER_WEBHOOK")


def lexcoder_command() -> list[str]:
    """The installed ``lexcoder`` entry point next to this Python, else ``python -c 'main()'``."""
    exe = Path(sys.executable).with_name("lexcoder")
    if exe.is_file():
        return [str(exe)]
    return [sys.executable, "-c", "from lexcoder.cli import main; main()"]


def _subprocess_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SECRET_PREFIXES)}
    env.update(CLEAN_ENV)
    env.update(extra)
    return env


def invoke_subprocess(argv: Sequence[str], cwd: Path, *, env: dict[str, str] | None = None,
                      umask: int = 0o022, budget: "DiskBudget | None" = None, timeout: float = 600) -> Outcome:
    """Run ``lexcoder ARGV`` as a new process in ``cwd`` (what a user does in a terminal)."""
    proc = _popen(argv, cwd, env=env or {}, umask=umask, budget=budget)
    return _finish(proc, argv, time.perf_counter(), timeout)


def _popen(argv, cwd: Path, *, env: dict[str, str], umask: int, budget: "DiskBudget | None"):
    cmd = lexcoder_command() if budget is None else budget.launcher()
    return subprocess.Popen([*cmd, *argv], cwd=cwd, env=_subprocess_env(env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace",
                            preexec_fn=functools.partial(os.umask, umask))


def _finish(proc, argv, t0: float, timeout: float) -> Outcome:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        out += f"\n[hostile harness: killed after {timeout:.0f} s]"
    return Outcome(list(argv), proc.returncode, out, time.perf_counter() - t0, TRACEBACK in out)


def invoke_inprocess(argv: Sequence[str], cwd: Path, *, env: dict[str, str] | None = None,
                     umask: int = 0o022, budget: "DiskBudget | None" = None, timeout: float = 600) -> Outcome:
    """Run ``lexcoder ARGV`` in this process with typer's ``CliRunner`` (cwd and umask set for the call)."""
    from typer.testing import CliRunner

    from lexcoder.cli import app
    old_cwd, old_mask = os.getcwd(), os.umask(umask)
    os.chdir(cwd)
    t0 = time.perf_counter()
    try:
        with budget.patched() if budget is not None else contextlib.nullcontext():
            res = CliRunner().invoke(app, list(argv), env={**CLEAN_ENV, **(env or {})}, catch_exceptions=True)
    finally:
        os.chdir(old_cwd)
        os.umask(old_mask)
    output = res.output
    crashed = res.exception is not None and not isinstance(res.exception, SystemExit)
    if crashed:
        output += "\n" + TRACEBACK + ":\n" + "".join(traceback.format_exception(*res.exc_info))
    return Outcome(list(argv), res.exit_code, output, time.perf_counter() - t0, crashed or TRACEBACK in output)


def invoke_parallel(cmds: Sequence[Parallel], cwd: Path, *, env: dict[str, str] | None = None,
                    umask: int = 0o022, timeout: float = 600) -> list[Outcome]:
    """Start ``cmds`` as concurrent subprocesses (each once its ``start_when`` path exists) and wait for all."""
    started: list[tuple[Any, Parallel, float]] = []
    t0 = time.perf_counter()
    for cmd in cmds:
        while cmd.start_when and not (cwd / cmd.start_when).exists() and time.perf_counter() - t0 < 60:
            if started and all(p.poll() is not None for p, _, _ in started):
                break  # the first already ended: start now, the case then shows what happened
            time.sleep(0.02)
        time.sleep(cmd.delay)
        started.append((_popen(cmd.argv, cwd, env=env or {}, umask=umask, budget=None), cmd,
                        time.perf_counter()))
    return [_finish(p, cmd.argv, t, timeout) for p, cmd, t in started]


Invoker = Callable[..., Outcome]


# ----------------------------------------------------------------------------------------------------------
# Full disks and read-only folders
# ----------------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def can_mount() -> bool:
    """Whether this process may mount a tmpfs (root on Linux); checked once by mounting one.

    Set ``HOSTILE_NO_MOUNT=1`` to use the patched-writes fallback even where mounting works.
    """
    if sys.platform != "linux" or not shutil.which("mount") or os.environ.get("HOSTILE_NO_MOUNT"):
        return False
    import tempfile
    probe = Path(tempfile.mkdtemp(prefix="hostile_mount_"))
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", str(probe)], capture_output=True)
        return ok
    finally:
        shutil.rmtree(probe, ignore_errors=True)


@dataclass
class DiskBudget:
    """Fallback without mount rights: Python file writes under ``folder`` fail once ``budget`` bytes are used.

    Covers ``open()``/``io.open`` (json, numpy, csv, text), ``os.open``/``os.mkdir`` (temporary files and
    folders) and ``os.replace`` into the folder; Arrow's native Parquet writer is not covered (a real tmpfs
    is, which is why it is preferred). With ``readonly`` every write into the folder fails with ``EROFS``.
    """

    folder: Path
    budget: int
    readonly: bool = False

    @contextlib.contextmanager
    def patched(self) -> Iterator[None]:
        import builtins
        used = [0]
        real = {"open": builtins.open, "os_open": os.open, "mkdir": os.mkdir, "replace": os.replace}
        folder = self.folder.resolve()
        code = errno.EROFS if self.readonly else errno.ENOSPC

        def inside(path) -> bool:
            try:
                p = Path(os.fspath(path)).resolve()
            except TypeError:
                return False
            return p == folder or folder in p.parents

        def charge(n: int, path) -> int:
            """Bytes that still fit; raises (after the caller wrote them) when ``n`` does not fit."""
            room = max(0, self.budget - used[0])
            used[0] += min(n, room)
            return room

        def limited_open(file, mode="r", *args, **kwargs):
            if isinstance(file, int) or not any(c in mode for c in "wax+") or not inside(file):
                return real["open"](file, mode, *args, **kwargs)
            if self.readonly:
                raise OSError(code, os.strerror(code), str(file))
            return _Limited(real["open"](file, mode, *args, **kwargs), charge, str(file), code)

        def limited_os_open(path, flags, *args, **kwargs):
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path) and (
                    self.readonly or used[0] >= self.budget):
                raise OSError(code, os.strerror(code), str(path))
            return real["os_open"](path, flags, *args, **kwargs)

        def limited_mkdir(path, *args, **kwargs):
            if inside(path) and (self.readonly or used[0] >= self.budget):
                raise OSError(code, os.strerror(code), str(path))
            return real["mkdir"](path, *args, **kwargs)

        def limited_replace(src, dst, *args, **kwargs):
            if inside(dst) and (self.readonly or used[0] >= self.budget):
                raise OSError(code, os.strerror(code), str(dst))
            return real["replace"](src, dst, *args, **kwargs)

        builtins.open = io.open = limited_open
        os.open, os.mkdir, os.replace = limited_os_open, limited_mkdir, limited_replace
        try:
            yield
        finally:
            builtins.open = io.open = real["open"]
            os.open, os.mkdir, os.replace = real["os_open"], real["mkdir"], real["replace"]

    def launcher(self) -> list[str]:
        """A command that runs the lexcoder CLI under this budget in a new process."""
        here = str(Path(__file__).resolve())
        code = ("import importlib.util, sys; s = importlib.util.spec_from_file_location('hostile_cases', "
                f"{here!r}); m = importlib.util.module_from_spec(s); sys.modules['hostile_cases'] = m; "
                f"s.loader.exec_module(m); b = m.DiskBudget(m.Path({str(self.folder)!r}), {self.budget}, "
                f"{self.readonly}); sys.argv[0] = 'lexcoder'\n"
                "from lexcoder.cli import main\nwith b.patched(): main()")
        return [sys.executable, "-c", code]


class _Limited:
    """A file handle whose writes stop with ``OSError(code)`` once its :class:`DiskBudget` is spent."""

    def __init__(self, fh, charge, path: str, code: int) -> None:
        self.fh, self.charge, self.path, self.code = fh, charge, path, code

    def write(self, data):
        n = len(data.encode("utf-8", "replace")) if isinstance(data, str) else len(data)
        room = self.charge(n, self.path)
        if n > room:
            if not isinstance(data, str):
                self.fh.write(data[:room])  # a real full disk leaves the file truncated
            raise OSError(self.code, os.strerror(self.code), self.path)
        return self.fh.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()

    def __iter__(self):
        return iter(self.fh)

    def __getattr__(self, name):
        return getattr(self.fh, name)


# ----------------------------------------------------------------------------------------------------------
# The case folder
# ----------------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def tos_full() -> pd.DataFrame:
    from lexcoder.demo import demo_data_path
    return pd.read_csv(demo_data_path(), dtype={"id": str, "doc_id": str})


@functools.lru_cache(maxsize=4)
def _slice(per_doc: int, first_doc: int, n_docs: int) -> pd.DataFrame:
    """``per_doc`` sentences of each of ``n_docs`` ToS documents: up to half of them coded with one of LABELS.

    Documents are groups of equal size, so the standard 60/20/20 split by document is always possible.
    """
    df = tos_full()
    parts = []
    for doc in sorted(df["doc_id"].unique())[first_doc:first_doc + n_docs]:
        part = df[df["doc_id"] == doc]
        coded = part[part[LABELS].sum(axis=1) > 0].head(per_doc // 2)
        rest = part[part[LABELS].sum(axis=1) == 0]
        parts.append(pd.concat([coded, rest.sample(min(len(rest), per_doc - len(coded)), random_state=0)]))
    out = pd.concat(parts).sort_index()
    return out[["id", "doc_id", "text", *LABELS]].reset_index(drop=True)


def base_table(first_doc: int = 0, *, per_doc: int = 30, n_docs: int = 10) -> pd.DataFrame:
    """The standard data of a case: 300 real ToS sentences, 30 from each of 10 documents, 3 labels (a copy).

    ``first_doc = 20`` gives other documents (new texts to code, another data set's ids).
    """
    return _slice(per_doc, first_doc, n_docs).copy()


BASE_CONFIG = {"data": {"path": "data.csv", "text_column": "text", "id_column": "id",
                        "label_columns": LABELS, "group_column": "doc_id"}}


class Workspace:
    """A fresh folder for one case, with helpers to build its inputs and to run lexcoder for the setup."""

    def __init__(self, root: Path, *, invoke: Invoker, template: Path | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.invoke = invoke
        self.template = template
        self.budgets: list[DiskBudget] = []
        self._cleanups: list[Callable[[], None]] = []

    def path(self, rel: str | Path) -> Path:
        return self.root / rel

    # inputs ------------------------------------------------------------------------------------------
    def write(self, df: pd.DataFrame, rel: str, **kwargs: Any) -> Path:
        """Write ``df`` as a user would save it; the format follows the file name (pandas' own writers)."""
        path = self.path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        name = path.name.lower()
        if ".parquet" in name:
            df.to_parquet(path, index=False, **kwargs)
        elif name.endswith(".xlsx"):
            df.to_excel(path, index=False, **kwargs)
        elif name.endswith(".dta"):
            df.to_stata(path, write_index=False, version=118, **kwargs)
        elif ".jsonl" in name:
            df.to_json(path, orient="records", lines=True, force_ascii=False, **kwargs)
        else:
            sep = "\t" if ".tsv" in name else ","
            df.to_csv(path, index=False, **{"sep": sep, **kwargs})
        return path

    def text(self, rel: str, content: str | bytes, encoding: str = "utf-8") -> Path:
        path = self.path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_bytes(content.encode(encoding))
        return path

    def config(self, rel: str = "cfg.toml", *, path: str = "data.csv", **sections: dict[str, Any]) -> Path:
        """A config like ``lexcoder init`` asks for: BASE_CONFIG (data at ``path``) with ``sections`` merged in."""
        import tomli_w
        cfg = json.loads(json.dumps(BASE_CONFIG))
        cfg["data"]["path"] = path
        for name, values in sections.items():
            cfg.setdefault(name, {}).update(values)
        return self.text(rel, tomli_w.dumps(cfg))

    def standard(self, df: pd.DataFrame | None = None, data: str = "data.csv", **sections) -> None:
        """The standard situation: ``data.csv`` (300 ToS sentences) and ``cfg.toml`` next to it."""
        self.write(base_table() if df is None else df, data)
        self.config(path=data, **sections)

    # runs --------------------------------------------------------------------------------------------
    def lexcoder(self, *argv: str, expect: int = 0, cwd: str = ".") -> Outcome:
        """Run lexcoder as part of a case's setup; a different exit code makes the case fail."""
        out = self.invoke(list(argv), self.path(cwd))
        if out.code != expect:
            raise SetupError(f"setup step `lexcoder {' '.join(argv)}` exited {out.code}, expected {expect}: "
                             f"{out.flat[-600:]}")
        return out

    def finished_run(self, rel: str = "run") -> Path:
        """A copy of the shared finished (and audited) run, with the standard data and config next to it."""
        if self.template is None:
            raise SetupError("this case needs the shared finished run (template) but none was built")
        self.standard()
        dest = self.path(rel)
        shutil.copytree(self.template / "run", dest, symlinks=True)
        return dest

    def train(self, out: str = "out", *extra: str, cfg: str = "cfg.toml") -> Path:
        """Train a run of ``cfg`` into ``out`` (setup step)."""
        self.lexcoder("run", cfg, "--out", out, *extra)
        return self.path(out)

    # disks ---------------------------------------------------------------------------------------------
    def small_disk(self, rel: str, size: int) -> Path:
        """A folder with only ``size`` bytes of room: a tmpfs if we may mount, else a write budget."""
        path = self.path(rel)
        path.mkdir(parents=True, exist_ok=True)
        if can_mount():
            self._mount(path, f"size={size}")
        else:
            self.budgets.append(DiskBudget(path, size))
        return path

    def leave_room(self, rel: str, room: int) -> None:
        """Fill the small disk at ``rel`` (made by :meth:`small_disk`) until only ``room`` bytes are free."""
        path = self.path(rel)
        if can_mount():
            st = os.statvfs(path)
            with contextlib.suppress(OSError), open(path / "filler.bin", "wb") as fh:
                fh.write(b"\0" * max(0, st.f_bavail * st.f_frsize - room))
        else:
            for b in self.budgets:
                if b.folder == path:
                    b.budget = room

    def free_disk(self, rel: str) -> None:
        """Give the small disk at ``rel`` plenty of room (the user freed space)."""
        path = self.path(rel)
        if can_mount():
            subprocess.run(["mount", "-o", "remount,size=256m", str(path)], check=True, capture_output=True)
        else:
            self.budgets = [b for b in self.budgets if b.folder != path]

    def read_only(self, rel: str, *, copy_from: Path | None = None) -> Path:
        """A read-only folder at ``rel`` (holding a copy of ``copy_from``, if given)."""
        path = self.path(rel)
        path.mkdir(parents=True, exist_ok=True)
        if can_mount():
            self._mount(path, "size=64m")
        if copy_from is not None:
            shutil.copytree(copy_from, path, dirs_exist_ok=True, symlinks=True)
        if can_mount():
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)
        else:  # chmod would not stop root: patch the writes instead
            self.budgets.append(DiskBudget(path, 0, readonly=True))
        return path

    def _mount(self, path: Path, options: str) -> None:
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True,
                       capture_output=True)
        self._cleanups.append(lambda: subprocess.run(["umount", "-l", str(path)], capture_output=True))

    def budget(self) -> DiskBudget | None:
        return self.budgets[0] if self.budgets else None

    def close(self) -> None:
        for fn in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                fn()
        self._cleanups.clear()


def build_template(folder: Path, invoke: Invoker) -> Path:
    """The shared finished run: the standard data, trained (``run``) and audited (``audit --folds 3``)."""
    ws = Workspace(folder, invoke=invoke)
    ws.standard()
    ws.train("run")
    ws.lexcoder("audit", "run", "--folds", "3")
    return folder


# ----------------------------------------------------------------------------------------------------------
# The contract
# ----------------------------------------------------------------------------------------------------------

def snapshot(root: Path) -> tuple[dict[str, tuple[str, int]], set[str]]:
    """sha256 and size of every file, and every folder, under ``root`` (paths relative to it)."""
    files: dict[str, tuple[str, int]] = {}
    dirs: set[str] = set()
    for folder, subdirs, names in os.walk(root):
        rel = Path(folder).relative_to(root)
        dirs.update(str(rel / d) for d in subdirs)
        for name in names:
            p = Path(folder) / name
            if p.is_symlink() or not p.is_file():
                continue
            with contextlib.suppress(OSError):
                files[str(rel / name)] = (_sha256(p), p.stat().st_size)
    return files, dirs


def _sha256(path: Path, limit: int | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        h.update(fh.read() if limit is None else fh.read(limit))
    return h.hexdigest()


def _under(rel: str, prefixes: Sequence[str]) -> bool:
    rel = os.path.normpath(rel)
    for p in prefixes:
        p = os.path.normpath(p)
        if p == "." or rel == p or rel.startswith(p + os.sep):
            return True
    return False


def _failed_run_dirs(root: Path, outputs: Sequence[str]) -> list[str]:
    """The outputs that hold a run marked failed (a plain rerun replaces it, so it is not debris)."""
    marked = []
    for rel in outputs:
        manifest = root / rel / "manifest.json"
        with contextlib.suppress(OSError, ValueError):
            if json.loads(manifest.read_text(encoding="utf-8")).get("status") == "failed":
                marked.append(rel)
    return marked


@dataclass
class Verdict:
    """The judged result of one case."""

    case: str
    group: str
    expected: str
    codes: list[int]
    traceback: bool = False
    partial: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    output: str = ""

    @property
    def passed(self) -> bool:
        return not (self.traceback or self.partial or self.modified or self.lost or self.problems)

    def summary(self) -> str:
        parts = [f"{self.case}: expected {self.expected}, exit {self.codes}"]
        if self.traceback:
            parts.append("TRACEBACK")
        for name in ("partial", "modified", "lost", "problems"):
            if getattr(self, name):
                parts.append(f"{name}: {'; '.join(getattr(self, name))[:800]}")
        return " | ".join(parts) + f"\n--- output (tail) ---\n{self.output[-2500:]}"

    def as_dict(self) -> dict[str, Any]:
        return {"case": self.case, "group": self.group, "expected": self.expected, "exit_codes": self.codes,
                "traceback": self.traceback, "partial_output": self.partial, "input_modified": self.modified,
                "data_lost": self.lost, "problems": self.problems, "passed": self.passed,
                "seconds": round(self.seconds, 2), "output_tail": self.output[-1500:]}


def expectation_problems(expect: str, out: Outcome, message: str | None) -> list[str]:
    """Exit code and message against ``expect`` (``ok``/``refused``/``either``)."""
    problems = []
    if expect == OK and out.code != 0:
        problems.append(f"exit {out.code}, expected 0 (`{' '.join(out.argv)}`): {out.flat[-300:]}")
    elif expect == REFUSED and out.code != 2:
        problems.append(f"exit {out.code}, expected a refusal with exit 2 (`{' '.join(out.argv)}`)")
    elif expect == EITHER and out.code not in (0, 2):
        problems.append(f"exit {out.code}, expected 0 or 2 (`{' '.join(out.argv)}`)")
    if out.code == 2 and expect in (REFUSED, EITHER):
        if "error" not in out.output.lower():
            problems.append("refused without an 'Error' message")
        elif message and not re.search(message, out.flat, re.I):
            problems.append(f"refusal message does not match /{message}/: {out.flat[-300:]}")
    return problems


def judge(case: Case, ws: Workspace, before, after, outcomes: list[Outcome], scenario: Scenario
          ) -> Verdict:
    """Check the contract for the main command(s) of ``case`` (see the module docstring)."""
    v = Verdict(case.name, case.group, case.expect, [o.code for o in outcomes],
                traceback=any(o.traceback for o in outcomes), seconds=sum(o.seconds for o in outcomes),
                output="\n".join(o.output for o in outcomes))
    v.problems += _exit_problems(case, outcomes, scenario)
    succeeded = all(o.code == 0 for o in outcomes) if scenario.parallel is None else any(
        o.code == 0 for o in outcomes)
    v.partial += _new_path_problems(ws.root, before, after, scenario, succeeded)
    _changed_files(ws.root, before, after, scenario, succeeded, v)
    return v


def _exit_problems(case: Case, outcomes: list[Outcome], scenario: Scenario) -> list[str]:
    if scenario.parallel is None:
        return expectation_problems(case.expect, outcomes[0], case.message)
    if case.expect == ONE_WINS:
        codes = sorted(o.code for o in outcomes)
        problems = [] if codes == [0, 2] else [f"exit codes {codes}: expected one run to win (0) and the "
                                                "other to be refused (2)"]
        for o in outcomes:
            if o.code == 2:
                problems += expectation_problems(REFUSED, o, case.message)
        return problems
    problems = []
    for o, cmd in zip(outcomes, scenario.parallel):
        problems += expectation_problems(cmd.expect, o, case.message)
    return problems


def _new_path_problems(root: Path, before, after, scenario: Scenario, succeeded: bool) -> list[str]:
    (files0, dirs0), (files1, dirs1) = before, after
    new = sorted((set(files1) - set(files0)) | (dirs1 - dirs0))
    problems = [f"debris left: {p}" for p in new if Path(p).name.endswith((".tmp", ".old"))]
    new = [p for p in new if not (Path(p).name == LOCK_NAME and str(Path(p).parent) in dirs0 | {"."})]
    if succeeded:
        allowed = list(scenario.outputs)
        parents = {str(a) for o in allowed for a in Path(o).parents}  # --out a/b/c creates a and a/b
        problems += [f"created outside the allowed outputs {list(scenario.outputs)}: {p}" for p in new
                     if not _under(p, allowed) and p not in parents]
    else:
        allowed = _failed_run_dirs(root, scenario.outputs) + list(scenario.resumable)
        problems += [f"left behind after the refusal: {p}" for p in new if not _under(p, allowed)]
    return problems[:20]


def _changed_files(root: Path, before, after, scenario: Scenario, succeeded: bool, v: Verdict) -> None:
    files0, files1 = before[0], after[0]
    allowed = list(scenario.may_change) + (list(scenario.outputs) if succeeded else [])
    for rel, (digest, size) in files0.items():
        if _under(rel, allowed) or Path(rel).name == LOCK_NAME:
            continue
        if rel not in files1:
            v.lost.append(f"{rel} deleted")
        elif files1[rel][0] != digest:
            v.modified.append(rel)
            appended = files1[rel][1] >= size and _sha256(root / rel, size) == digest
            if not appended:
                v.lost.append(f"{rel} overwritten")


def run_case(case: Case, folder: Path, *, invoke: Invoker, template: Path | None) -> Verdict:
    """Build the case in ``folder``, run its command(s) with ``invoke``, and judge the result."""
    ws = Workspace(folder, invoke=invoke, template=template)
    try:
        try:
            scenario = case.setup(ws)
        except SetupError as err:
            return Verdict(case.name, case.group, case.expect, [], problems=[f"setup failed: {err}"])
        except Exception as err:  # the situation could not be built: report it, run the other cases
            return Verdict(case.name, case.group, case.expect, [],
                           problems=[f"setup crashed: {type(err).__name__}: {err}"])
        before = snapshot(ws.root)
        cwd = ws.path(scenario.cwd)
        if scenario.parallel is not None:
            outcomes = invoke_parallel(scenario.parallel, cwd, env=scenario.env, umask=scenario.umask)
        else:
            outcomes = [invoke(scenario.argv, cwd, env=scenario.env, umask=scenario.umask, budget=ws.budget())]
        after = snapshot(ws.root)
        verdict = judge(case, ws, before, after, outcomes, scenario)
        for step in scenario.then:
            if step.before is not None:
                step.before()
            out = invoke(step.argv, cwd, env=scenario.env, umask=scenario.umask, budget=ws.budget())
            verdict.traceback |= out.traceback
            verdict.codes.append(out.code)
            verdict.output += "\n" + out.output
            verdict.problems += [f"then `{' '.join(step.argv)}`: {p}"
                                 for p in expectation_problems(step.expect, out, step.message)]
        if scenario.check is not None:
            try:
                verdict.problems += scenario.check(ws, outcomes if scenario.parallel else outcomes[0])
            except Exception as err:  # a check that cannot read an output is a finding, not a harness crash
                verdict.problems.append(f"check failed: {type(err).__name__}: {err}")
        return verdict
    finally:
        ws.close()


# ----------------------------------------------------------------------------------------------------------
# Reusable checks
# ----------------------------------------------------------------------------------------------------------

def dangerous(value: Any) -> bool:
    """Whether a spreadsheet would run this cell as a formula (OWASP rule; plain numbers are numbers)."""
    return isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value)


def read_back(ws: Workspace, rel: str) -> pd.DataFrame:
    """Read an output as the next step of a user's pipeline would (lexcoder's own reader)."""
    from lexcoder.io import read_table
    return read_table(ws.path(rel))


def readable(rel: str, n_rows: int | None = 300, magic: bytes | None = None, only_if_ok: bool = False):
    """Check: ``rel`` starts with ``magic`` (compression) and reads back with ``n_rows`` rows and prob columns."""
    def check(ws: Workspace, out: Outcome) -> list[str]:
        if only_if_ok and out.code != 0:
            return []
        path = ws.path(rel)
        if not path.is_file():
            return [f"{rel} was not written"]
        problems = []
        if magic is not None and not path.read_bytes().startswith(magic):
            problems.append(f"{rel} is not compressed as its suffix says (starts {path.read_bytes()[:6]!r})")
        try:
            df = read_back(ws, rel)
        except Exception as err:
            return problems + [f"{rel} cannot be read back: {err}"]
        if n_rows is not None and len(df) != n_rows:
            problems.append(f"{rel} has {len(df)} rows, expected {n_rows}")
        if f"{LABELS[0]}_prob" not in df.columns:
            problems.append(f"{rel} lacks {LABELS[0]}_prob")
        return problems
    return check


def all_checks(*checks):
    def check(ws: Workspace, out) -> list[str]:
        return [p for c in checks for p in c(ws, out)]
    return check


def run_finished(rel: str = "out"):
    """Check: ``rel`` holds a complete run (metrics, predictions of every row, a model)."""
    def check(ws: Workspace, out) -> list[str]:
        run = ws.path(rel)
        missing = [n for n in ("metrics.json", "predictions.parquet", "config.toml", "manifest.json")
                   if not (run / n).is_file()]
        if missing:
            return [f"{rel} lacks {missing}"]
        preds = pd.read_parquet(run / "predictions.parquet")
        data = pd.read_parquet(run / "data.parquet")
        return [] if len(preds) == len(data) else [f"{rel}: {len(preds)} predictions for {len(data)} rows"]
    return check


def modes(rel: str, file_mode: int, dir_mode: int):
    """Check: every file under ``rel`` has ``file_mode`` and every folder ``dir_mode`` (the umask)."""
    def check(ws: Workspace, out) -> list[str]:
        root = ws.path(rel)
        paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.name != LOCK_NAME]
        bad = []
        for p in paths:
            want = dir_mode if p.is_dir() else file_mode
            have = p.stat().st_mode & 0o777
            if have != want:
                bad.append(f"{p.relative_to(ws.root)} {oct(have)}")
        return [f"permissions do not follow the umask (want {oct(file_mode)}/{oct(dir_mode)}): "
                f"{', '.join(bad[:6])}"] if bad else []
    return check


def same_predictions_as_template(rel: str = "out"):
    """Check: the run's predictions equal the uninterrupted template run's, bit for bit."""
    def check(ws: Workspace, out) -> list[str]:
        if ws.template is None:
            return ["no template run to compare with"]
        a = pd.read_parquet(ws.path(rel) / "predictions.parquet")
        b = pd.read_parquet(ws.template / "run" / "predictions.parquet")
        cols = [c for c in b.columns if c.endswith("_prob")]
        if list(a["id"]) != list(b["id"]) or not a[cols].equals(b[cols]):
            return [f"{rel}: predictions differ from an uninterrupted run of the same inputs"]
        return []
    return check


def no_file_named(fragment: str, inside: str):
    """Check: no file or folder whose name holds ``fragment`` exists in the case folder outside ``inside``."""
    def check(ws: Workspace, out) -> list[str]:
        hits = [p for p in ws.root.rglob(f"*{fragment}*") if not _under(str(p.relative_to(ws.root)), [inside])]
        return [f"written outside the run folder: {', '.join(str(h) for h in hits[:3])}"] if hits else []
    return check


def csv_neutralised(rel: str, columns: Sequence[str], *, keep: bool = False, encoding: str = "utf-8-sig"):
    """Check: no cell of ``columns`` in the CSV ``rel`` would run as a formula (``keep``: some still do)."""
    def check(ws: Workspace, out) -> list[str]:
        path = ws.path(rel)
        if not path.is_file():
            return [f"{rel} was not written"]
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
        cells = [v for c in columns if c in df.columns for v in df[c]]
        bad = [v for v in cells if dangerous(v)]
        if keep:
            return [] if bad else [f"{rel}: --keep-formulas given but no formula cell kept verbatim"]
        return [f"{rel}: {len(bad)} cell(s) would run as formulas, e.g. {bad[0][:40]!r}"] if bad else []
    return check


def unique_columns(rel: str, only_if_ok: bool = True):
    def check(ws: Workspace, out: Outcome) -> list[str]:
        if only_if_ok and out.code != 0:
            return []
        path = ws.path(rel)
        if path.suffix == ".csv":
            header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
        else:
            import pyarrow.parquet as pq
            header = pq.read_schema(path).names
        dup = sorted({h for h in header if header.count(h) > 1})
        return [f"{rel} has duplicate columns {dup}"] if dup else []
    return check


def output_mentions(pattern: str, when_code: int = 0):
    def check(ws: Workspace, out: Outcome) -> list[str]:
        if out.code == when_code and not re.search(pattern, out.flat, re.I):
            return [f"exit {when_code} without saying /{pattern}/"]
        return []
    return check


# ----------------------------------------------------------------------------------------------------------
# Scenario builders
# ----------------------------------------------------------------------------------------------------------

def run_cmd(out: str = "out", cfg: str = "cfg.toml", *extra: str, check=None, **kw) -> Scenario:
    return Scenario(["run", cfg, "--out", out, *extra], outputs=(out,), check=check, **kw)


def data_run(ws: Workspace, df: pd.DataFrame, data: str = "data.csv", *, check=None, **sections) -> Scenario:
    """The user saved ``df`` as ``data`` and runs the standard config on it."""
    if df is not None:
        ws.write(df, data)
    ws.config(path=data, **sections)
    return run_cmd(check=check)


def predict_cmd(inp: str, out: str, *extra: str, run: str = "run", check=None, outputs=None, **kw) -> Scenario:
    return Scenario(["predict", run, inp, "--out", out, *extra], outputs=(out,) if outputs is None else outputs,
                    check=check, **kw)


def formula_table(df: pd.DataFrame | None = None) -> pd.DataFrame:
    """Ids and texts that a spreadsheet would run as formulas (every row: the audit queue is full of them)."""
    df = base_table() if df is None else df
    starts = ["=", "+", "@", "-"]
    df["id"] = [starts[i % 4] + v for i, v in enumerate(df["id"])]
    df["text"] = ["=HYPERLINK(\"http://x.example\",\"click\") " + t if i % 3 == 0 else starts[i % 4] + t
                  for i, t in enumerate(df["text"])]
    return df


# ----------------------------------------------------------------------------------------------------------
# The catalogue — input files
# ----------------------------------------------------------------------------------------------------------

@case("input_semicolon_csv", "input", EITHER, message=r"delimit|separat|;|semicolon")
def _(ws):
    """Excel in a European locale saved the table with ';' between cells: detect it, or say so."""
    ws.write(base_table(), "data.csv", sep=";")
    return data_run(ws, None)


@case("input_tab_separated_csv", "input", EITHER, message=r"delimit|separat|tab")
def _(ws):
    """A tab-separated file named .csv."""
    ws.write(base_table(), "data.csv", sep="\t")
    return data_run(ws, None)


@case("input_tsv", "input", OK)
def _(ws):
    """A proper .tsv file."""
    return data_run(ws, base_table(), "data.tsv")


@case("input_latin1_csv", "input", EITHER, message=r"UTF-8|encoding")
def _(ws):
    """A Windows-1252/Latin-1 CSV with accents: decode it or refuse naming the encoding."""
    df = base_table()
    df.loc[::7, "text"] = "Société générale: " + df.loc[::7, "text"]
    ws.write(df, "data.csv", encoding="latin-1", errors="replace")
    return data_run(ws, None)


@case("input_utf8_bom", "input", OK)
def _(ws):
    """Excel's 'CSV UTF-8' starts with a byte-order mark; the first column must still be 'id'."""
    ws.write(base_table(), "data.csv", encoding="utf-8-sig")
    return data_run(ws, None)


@case("input_utf16_csv", "input", EITHER, message=r"UTF-8|UTF-16|encoding")
def _(ws):
    """Excel's 'Unicode text' is UTF-16."""
    ws.write(base_table(), "data.csv", encoding="utf-16")
    return data_run(ws, None)


@case("input_header_only", "input", REFUSED, message=r"no rows|empty|header")
def _(ws):
    """A CSV with the header and no rows (traceback before)."""
    ws.write(base_table().head(0), "data.csv")
    return data_run(ws, None)


@case("input_empty_file", "input", REFUSED, message=r"data\.csv")
def _(ws):
    """A 0-byte data file."""
    ws.text("data.csv", "")
    return data_run(ws, None)


@case("input_blank_lines_only", "input", REFUSED, message=r"data\.csv")
def _(ws):
    """A data file holding only blank lines."""
    ws.text("data.csv", "\n\n   \n\n")
    return data_run(ws, None)


@case("input_single_digit_texts", "input", REFUSED, message=r"text|vocabular|word")
def _(ws):
    """The text column holds single digits (a code column picked by mistake): empty TF-IDF vocabulary."""
    df = base_table()
    df["text"] = [str(i % 10) for i in range(len(df))]
    return data_run(ws, df)


@case("input_huge_cell", "input", OK)
def _(ws):
    """One cell of 3 MB (a whole judgment pasted into a cell), beyond Python's csv field limit."""
    df = base_table()
    df.loc[5, "text"] = " ".join([df.loc[5, "text"]] * 20000)[:3_000_000]
    return data_run(ws, df)


@case("input_quoted_newlines", "input", OK)
def _(ws):
    """Texts with line breaks, quotes and commas inside quoted cells."""
    df = base_table()
    df.loc[::5, "text"] = df.loc[::5, "text"] + '\nSecond line, with "quotes", commas;\r\nand CRLF.'
    return data_run(ws, df)


@case("input_crlf_line_endings", "input", OK)
def _(ws):
    """A CSV with Windows line endings."""
    ws.write(base_table(), "data.csv", lineterminator="\r\n")
    return data_run(ws, None)


@case("input_nul_byte", "input", EITHER, message=r"data\.csv|NUL|null")
def _(ws):
    """A NUL byte inside a text cell (copied from a PDF)."""
    raw = base_table().to_csv(index=False).replace("This", "Th\x00is", 1)
    ws.text("data.csv", raw)
    return data_run(ws, None)


@case("input_duplicate_column_names", "input", REFUSED, message=r"unilateral_change|duplicate|twice|more than once")
def _(ws):
    """Two columns named unilateral_change (one was a second coder's): pandas would silently rename one."""
    df = base_table()
    df["unilateral_change_2"] = 1 - df["unilateral_change"]
    text = df.to_csv(index=False).replace("unilateral_change_2", "unilateral_change", 1)
    ws.text("data.csv", text)
    return data_run(ws, None)


@case("input_whitespace_column_names", "input", EITHER, message=r"text")
def _(ws):
    """Column names with stray spaces (' text', 'id ')."""
    df = base_table().rename(columns={"text": " text", "id": "id "})
    return data_run(ws, df)


@case("input_column_case_mismatch", "input", REFUSED, message=r"did you mean")
def _(ws):
    """The config says text_column = "Text" but the file has 'text'."""
    ws.write(base_table(), "data.csv")
    ws.config(data={"text_column": "Text", "path": "data.csv"})
    return run_cmd()


@case("input_missing_label_column", "input", REFUSED, message=r"unilateral_chnage")
def _(ws):
    """A label column name with a typo."""
    ws.write(base_table(), "data.csv")
    ws.config(data={"label_columns": [LABELS[0], "unilateral_chnage"], "path": "data.csv"})
    return run_cmd()


@case("input_labels_yes_no", "input", OK)
def _(ws):
    """Labels coded Yes/No."""
    df = base_table()
    for lab in LABELS:
        df[lab] = df[lab].map({1: "Yes", 0: "No"})
    return data_run(ws, df)


@case("input_labels_float_strings", "input", OK)
def _(ws):
    """Labels written as 1.0/0.0 (a column that once held a missing value)."""
    df = base_table()
    for lab in LABELS:
        df[lab] = df[lab].astype(float)
    return data_run(ws, df)


@case("input_label_value_2", "input", REFUSED, message=r"unilateral_change.*row")
def _(ws):
    """A label cell holding 2 (a typo)."""
    df = base_table()
    df["unilateral_change"] = df["unilateral_change"].astype(object)
    df.loc[17, "unilateral_change"] = 2
    return data_run(ws, df)


@case("input_label_missing_cells", "input", REFUSED, message=r"drop_missing_labels")
def _(ws):
    """Some label cells left empty."""
    df = base_table().astype({"unilateral_termination": "Int8"})
    df.loc[[3, 40, 41], "unilateral_termination"] = pd.NA
    return data_run(ws, df)


@case("input_label_never_positive", "input", EITHER, message=r"choice_of_law|positive|no .*1")
def _(ws):
    """A label with no positive example at all (nothing to learn)."""
    df = base_table()
    df["choice_of_law"] = 0
    ws.write(df, "data.csv")
    ws.config(data={"label_columns": [*LABELS, "choice_of_law"], "path": "data.csv"})
    return run_cmd()


@case("input_ids_duplicate", "input", REFUSED, message=r"unique")
def _(ws):
    """Two rows share an id."""
    df = base_table()
    df.loc[10, "id"] = df.loc[11, "id"]
    return data_run(ws, df)


@case("input_ids_equal_as_numbers", "input", EITHER, message=r"unique|7\.0")
def _(ws):
    """Ids 7 and 7.0 (Excel turned one into a number): refuse as duplicates, or keep both exactly as written."""
    df = base_table()
    df["id"] = [str(i) for i in range(len(df))]
    df.loc[20, "id"] = "7.0"

    def check(ws, out):
        if out.code != 0:
            return []
        ids = set(pd.read_parquet(ws.path("out/predictions.parquet"))["id"].astype(str))
        return [] if {"7", "7.0"} <= ids else ["ids 7 and 7.0 were merged or reformatted"]
    return data_run(ws, df, check=check)


@case("input_ids_empty", "input", REFUSED, message=r"id")
def _(ws):
    """Empty id cells."""
    df = base_table()
    df.loc[[4, 9], "id"] = None
    return data_run(ws, df)


@case("input_ids_leading_zeros", "input", OK)
def _(ws):
    """Ids like 007 and 7 are different ids and must stay as written."""
    df = base_table()
    df["id"] = [f"{i:03d}" if i % 2 else str(i) for i in range(len(df))]

    def check(ws, out):
        ids = set(pd.read_parquet(ws.path("out/predictions.parquet"))["id"].astype(str))
        return [] if {"001", "003", "2"} <= ids else ["ids with leading zeros were reformatted"]
    return data_run(ws, df, check=check)


@case("input_empty_texts", "input", REFUSED, message=r"drop_empty_texts")
def _(ws):
    """Some text cells empty."""
    df = base_table()
    df.loc[[2, 8], "text"] = None
    return data_run(ws, df)


@case("input_all_texts_dropped", "input", REFUSED, message=r"no rows|empty")
def _(ws):
    """drop_empty_texts = true but every text is empty."""
    df = base_table()
    df["text"] = ""
    ws.write(df, "data.csv")
    ws.config(data={"drop_empty_texts": True, "path": "data.csv"})
    return run_cmd()


@case("input_group_cells_empty", "input", EITHER, message=r"group|doc_id")
def _(ws):
    """Half the group cells are empty: they must not be pooled silently into one group ''."""
    df = base_table()
    df.loc[df.index % 2 == 0, "doc_id"] = None
    return data_run(ws, df, check=output_mentions(r"empty group|group[^.]{0,40}(empty|missing|blank)"))


@case("input_label_reserved_name", "input", REFUSED, message=r"reserve")
def _(ws):
    """A label column called 'group' (a name lexcoder uses internally)."""
    df = base_table().rename(columns={"unilateral_change": "group"})
    ws.write(df, "data.csv")
    ws.config(data={"label_columns": [*LABELS[:2], "group"], "path": "data.csv"})
    return run_cmd()


@case("input_unicode_column_names", "input", OK)
def _(ws):
    """German column names with umlauts and spaces."""
    df = base_table().rename(columns={"text": "Klausel Text", LABELS[1]: "Kündigung"})
    ws.write(df, "data.csv")
    ws.config(data={"text_column": "Klausel Text", "label_columns": [LABELS[0], "Kündigung", LABELS[2]],
                    "path": "data.csv"})
    return run_cmd()


@case("input_excel_ok", "input", OK)
def _(ws):
    """An .xlsx file with TRUE/FALSE label cells."""
    df = base_table()
    for lab in LABELS:
        df[lab] = df[lab].astype(bool)
    return data_run(ws, df, "data.xlsx")


def _two_sheets(ws: Workspace) -> None:
    with pd.ExcelWriter(ws.path("data.xlsx")) as xl:
        pd.DataFrame({"note": ["coded by A. and B.", "see sheet Data"]}).to_excel(xl, sheet_name="Notes",
                                                                                 index=False)
        base_table().to_excel(xl, sheet_name="Data", index=False)


@case("input_excel_second_sheet", "input", REFUSED, message=r"sheet.*Data|Data.*sheet")
def _(ws):
    """The data is on the second sheet; the first holds notes: hint `sheet =` and list the sheets."""
    _two_sheets(ws)
    return data_run(ws, None, "data.xlsx")


@case("input_excel_sheet_by_name", "input", OK)
def _(ws):
    """The same workbook with sheet = "Data"."""
    _two_sheets(ws)
    ws.config(data={"path": "data.xlsx", "sheet": "Data"})
    return run_cmd()


@case("input_excel_missing_sheet", "input", REFUSED, message=r"Daten.*(Data|Notes)|sheet")
def _(ws):
    """sheet = "Daten" does not exist: list the sheets there are."""
    _two_sheets(ws)
    ws.config(data={"path": "data.xlsx", "sheet": "Daten"})
    return run_cmd()


@case("input_xlsx_not_excel", "input", REFUSED, message=r"data\.xlsx")
def _(ws):
    """A CSV renamed to .xlsx."""
    ws.write(base_table(), "data.csv")
    ws.path("data.csv").rename(ws.path("data.xlsx"))
    return data_run(ws, None, "data.xlsx")


@case("input_jsonl_ok", "input", OK)
def _(ws):
    """A JSON-lines file."""
    return data_run(ws, base_table(), "data.jsonl")


@case("input_jsonl_broken_line", "input", REFUSED, message=r"line \d+")
def _(ws):
    """One JSONL line cut off in the middle: name the line, not a byte offset."""
    lines = base_table().to_json(orient="records", lines=True, force_ascii=False).splitlines()
    lines[57] = lines[57][:40]
    ws.text("data.jsonl", "\n".join(lines) + "\n")
    return data_run(ws, None, "data.jsonl")


@case("input_jsonl_blank_lines", "input", EITHER, message=r"line \d+")
def _(ws):
    """Blank lines between JSON records (an editor added them)."""
    lines = base_table().to_json(orient="records", lines=True, force_ascii=False).splitlines()
    ws.text("data.jsonl", "\n".join(lines[:100]) + "\n\n" + "\n".join(lines[100:]) + "\n\n")
    return data_run(ws, None, "data.jsonl")


@case("input_csv_gz", "input", OK)
def _(ws):
    """A gzipped CSV."""
    return data_run(ws, base_table(), "data.csv.gz")


@case("input_csv_bz2", "input", OK)
def _(ws):
    """A bzip2-compressed CSV."""
    return data_run(ws, base_table(), "data.csv.bz2")


@case("input_csv_zip", "input", OK)
def _(ws):
    """A zipped CSV (one file in the archive)."""
    return data_run(ws, base_table(), "data.csv.zip")


@case("input_gz_not_gzipped", "input", REFUSED, message=r"data\.csv\.gz")
def _(ws):
    """A plain CSV named .csv.gz."""
    ws.write(base_table(), "data.csv")
    ws.path("data.csv").rename(ws.path("data.csv.gz"))
    return data_run(ws, None, "data.csv.gz")


@case("input_truncated_gzip", "input", REFUSED, message=r"data\.csv\.gz")
def _(ws):
    """A .csv.gz cut off half-way (interrupted download)."""
    ws.write(base_table(), "data.csv.gz")
    raw = ws.path("data.csv.gz").read_bytes()
    ws.text("data.csv.gz", raw[: len(raw) // 2])
    return data_run(ws, None, "data.csv.gz")


@case("input_parquet_ok", "input", OK)
def _(ws):
    """A Parquet file."""
    return data_run(ws, base_table(), "data.parquet")


@case("input_parquet_corrupt", "input", REFUSED, message=r"data\.parquet")
def _(ws):
    """Random bytes named .parquet."""
    ws.text("data.parquet", os.urandom(4096))
    return data_run(ws, None, "data.parquet")


@case("input_stata_dta", "input", OK)
def _(ws):
    """A Stata .dta file."""
    return data_run(ws, base_table(), "data.dta")


@case("input_directory_as_data", "input", REFUSED, message=r"folder|director|not found")
def _(ws):
    """data.path names a folder."""
    ws.path("data.csv").mkdir()
    return data_run(ws, None)


@case("input_unknown_extension", "input", REFUSED, message=r"docx")
def _(ws):
    """A Word file as data."""
    ws.text("data.docx", b"PK\x03\x04 not really word")
    return data_run(ws, None, "data.docx")


@case("input_no_extension", "input", REFUSED, message=r"extension|type")
def _(ws):
    """A data file without an extension."""
    ws.write(base_table(), "data.csv")
    ws.path("data.csv").rename(ws.path("data"))
    return data_run(ws, None, "data")


@case("input_text_is_label_column", "input", REFUSED, message=r"text")
def _(ws):
    """text_column is also listed as a label."""
    ws.write(base_table(), "data.csv")
    ws.config(data={"label_columns": [*LABELS, "text"], "path": "data.csv"})
    return run_cmd()


# ----------------------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------------------

def _cfg_text(ws: Workspace, text: str, encoding: str = "utf-8") -> Scenario:
    ws.write(base_table(), "data.csv")
    ws.text("cfg.toml", text, encoding)
    return run_cmd()


GOOD_TOML = ('[data]\npath = "data.csv"\ntext_column = "text"\nid_column = "id"\n'
             f'label_columns = {json.dumps(LABELS)}\ngroup_column = "doc_id"\n')


@case("config_toml_syntax_error", "config", REFUSED, message=r"cfg\.toml.*line")
def _(ws):
    """A missing closing quote."""
    return _cfg_text(ws, GOOD_TOML.replace('"text"', '"text', 1))


@case("config_utf16", "config", EITHER, message=r"UTF|encod")
def _(ws):
    """Notepad saved the config as 'Unicode' (UTF-16) (traceback before)."""
    return _cfg_text(ws, GOOD_TOML, "utf-16")


@case("config_utf8_bom", "config", EITHER, message=r"UTF|BOM|encod")
def _(ws):
    """Notepad saved the config as UTF-8 with a byte-order mark."""
    return _cfg_text(ws, GOOD_TOML, "utf-8-sig")


@case("config_unknown_key_typo", "config", REFUSED, message=r"lable_columns")
def _(ws):
    """label_columns misspelt lable_columns."""
    return _cfg_text(ws, GOOD_TOML.replace("label_columns", "lable_columns"))


@case("config_unknown_section", "config", REFUSED, message=r"modle")
def _(ws):
    """A section [modle] (typo)."""
    return _cfg_text(ws, GOOD_TOML + '\n[modle]\nkind = "tfidf"\n')


@case("config_duplicate_key", "config", REFUSED, message=r"cfg\.toml")
def _(ws):
    """The same key twice in [data]."""
    return _cfg_text(ws, GOOD_TOML + 'text_column = "text"\n')


@case("config_param_not_a_number", "config", REFUSED, message=r"\bC\b")
def _(ws):
    """[model.params] C = "lots": refuse before loading and splitting (traceback before)."""
    return _cfg_text(ws, GOOD_TOML + '\n[model.params]\nC = "lots"\n')


@case("config_param_negative", "config", REFUSED, message=r"min_df")
def _(ws):
    """[model.params] min_df = -3."""
    return _cfg_text(ws, GOOD_TOML + "\n[model.params]\nmin_df = -3\n")


@case("config_param_unknown", "config", REFUSED, message=r"colour")
def _(ws):
    """[model.params] colour = "blue": a parameter no model has must not be ignored silently."""
    return _cfg_text(ws, GOOD_TOML + '\n[model.params]\ncolour = "blue"\n')


@case("config_model_kind_unknown", "config", REFUSED, message=r"kind")
def _(ws):
    """kind = "svm"."""
    return _cfg_text(ws, GOOD_TOML + '\n[model]\nkind = "svm"\n')


@case("config_split_not_sum_one", "config", REFUSED, message=r"sum")
def _(ws):
    """train/val/test = 0.5/0.2/0.2."""
    return _cfg_text(ws, GOOD_TOML + "\n[split]\ntrain = 0.5\nval = 0.2\ntest = 0.2\n")


@case("config_split_extreme_fractions", "config", REFUSED, message=r"val|test|group|fraction")
def _(ws):
    """0.98/0.01/0.01 with 10 documents: 1% of 10 groups is no group; honour it or refuse, never change it."""
    return _cfg_text(ws, GOOD_TOML + "\n[split]\ntrain = 0.98\nval = 0.01\ntest = 0.01\n")


@case("config_split_negative_fraction", "config", REFUSED, message=r"positive|train|val|test")
def _(ws):
    """A negative fraction."""
    return _cfg_text(ws, GOOD_TOML + "\n[split]\ntrain = 1.2\nval = -0.1\ntest = -0.1\n")


@case("config_kfold_more_folds_than_groups", "config", REFUSED, message=r"fold|group")
def _(ws):
    """20 folds over 10 documents."""
    return _cfg_text(ws, GOOD_TOML + '\n[split]\nmethod = "kfold"\nn_folds = 20\n')


def _split_column(ws: Workspace, values: dict[str, str]) -> pd.DataFrame:
    df = base_table()
    docs = sorted(df["doc_id"].unique())
    names = list(values)
    df["part"] = df["doc_id"].map({d: values[names[min(i * len(names) // len(docs), len(names) - 1)]]
                                   for i, d in enumerate(docs)})
    ws.write(df, "data.csv")
    ws.config(split={"method": "column", "column": "part"})
    return df


def _grouped_with_val(ws: Workspace, out) -> list[str]:
    splits = pd.read_parquet(ws.path("out/splits.parquet"))
    data = pd.read_parquet(ws.path("out/data.parquet"))
    merged = splits.merge(data[["id", "group"]], on="id")
    problems = [] if (merged["split"] == "val").any() else ["no validation rows"]
    per_group = merged.groupby("group")["split"].nunique()
    if (per_group > 1).any():
        problems.append(f"{int((per_group > 1).sum())} document(s) straddle splits")
    return problems


@case("config_split_column_train_test_only", "config", OK)
def _(ws):
    """method = "column" with only train/test values: carve validation out of train, grouped (traceback before)."""
    _split_column(ws, {"a": "train", "b": "train", "c": "test"})
    return run_cmd(check=_grouped_with_val)


@case("config_split_column_dev_name", "config", OK)
def _(ws):
    """method = "column" with train/dev/test."""
    _split_column(ws, {"a": "train", "b": "dev", "c": "test"})
    return run_cmd(check=_grouped_with_val)


@case("config_split_column_bad_values", "config", REFUSED, message=r"holdout|part")
def _(ws):
    """method = "column" with a value 'holdout'."""
    _split_column(ws, {"a": "train", "b": "val", "c": "holdout"})
    return run_cmd()


@case("config_split_column_missing", "config", REFUSED, message=r"part")
def _(ws):
    """method = "column" naming a column the file does not have."""
    ws.write(base_table(), "data.csv")
    ws.config(split={"method": "column", "column": "part"})
    return run_cmd()


@case("config_missing_data_path", "config", REFUSED, message=r"path")
def _(ws):
    """[data] without path."""
    return _cfg_text(ws, GOOD_TOML.replace('path = "data.csv"\n', ""))


@case("config_data_file_missing", "config", REFUSED, message=r"not found|does not exist")
def _(ws):
    """data.path names a file that is not there."""
    ws.config(data={"path": "lettres.csv"})
    return run_cmd()


@case("config_relative_path_other_cwd", "config", OK)
def _(ws):
    """Config and data in project/, command run from the folder above: the path is relative to the config."""
    ws.write(base_table(), "project/data.csv")
    ws.config("project/cfg.toml")
    return run_cmd("out", "project/cfg.toml")


@case("config_is_directory", "config", REFUSED, message=r"cfg")
def _(ws):
    """The config argument is a folder."""
    ws.path("cfg").mkdir()
    return run_cmd("out", "cfg")


@case("config_missing_file", "config", REFUSED, message=r"init")
def _(ws):
    """The config file does not exist."""
    return run_cmd("out", "nope.toml")


@case("config_empty_file", "config", REFUSED, message=r"data")
def _(ws):
    """An empty config file."""
    return _cfg_text(ws, "")


@case("config_data_file_given_as_config", "config", REFUSED, message=r"TOML|config")
def _(ws):
    """The user swapped the arguments: `lexcoder run data.csv`."""
    ws.write(base_table(), "data.csv")
    return run_cmd("out", "data.csv")


@case("config_label_columns_empty", "config", REFUSED, message=r"label_columns")
def _(ws):
    """label_columns = []."""
    return _cfg_text(ws, GOOD_TOML.replace(json.dumps(LABELS), "[]"))


@case("config_label_columns_string", "config", REFUSED, message=r"label_columns")
def _(ws):
    """label_columns = "limitation_of_liability" (a string, not a list)."""
    return _cfg_text(ws, GOOD_TOML.replace(json.dumps(LABELS), f'"{LABELS[0]}"'))


@case("config_threshold_out_of_range", "config", REFUSED, message=r"fixed")
def _(ws):
    """thresholds.fixed = 1.5."""
    return _cfg_text(ws, GOOD_TOML + '\n[thresholds]\nmethod = "fixed"\nfixed = 1.5\n')


@case("config_bootstrap_negative", "config", REFUSED, message=r"bootstrap")
def _(ws):
    """evaluate.bootstrap = -1."""
    return _cfg_text(ws, GOOD_TOML + "\n[evaluate]\nbootstrap = -1\n")


@case("set_malformed_no_equals", "config", REFUSED, message=r"section\.key")
def _(ws):
    """--set split.seed (no value) (traceback before for some spellings)."""
    ws.standard()
    return run_cmd("out", "cfg.toml", "--set", "split.seed")


@case("set_empty_key", "config", REFUSED, message=r"section\.key|key")
def _(ws):
    """--set =3."""
    ws.standard()
    return run_cmd("out", "cfg.toml", "--set", "=3")


@case("set_unknown_key", "config", REFUSED, message=r"sed")
def _(ws):
    """--set split.sed=3 (typo)."""
    ws.standard()
    return run_cmd("out", "cfg.toml", "--set", "split.sed=3")


@case("set_bad_value", "config", REFUSED, message=r"seed")
def _(ws):
    """--set split.seed=abc."""
    ws.standard()
    return run_cmd("out", "cfg.toml", "--set", "split.seed=abc")


@case("set_into_scalar", "config", REFUSED, message=r"data\.path")
def _(ws):
    """--set data.path.x=1: data.path is a string, not a section."""
    ws.standard()
    return run_cmd("out", "cfg.toml", "--set", "data.path.x=1")


@case("set_label_list", "config", OK)
def _(ws):
    """--set 'data.label_columns=["limitation_of_liability"]' trains one label."""
    ws.standard()

    def check(ws, out):
        labels = list(json.loads(ws.path("out/metrics.json").read_text())["labels"])
        return [] if labels == [LABELS[0]] else [f"metrics for {labels}, expected [{LABELS[0]!r}]"]
    return run_cmd("out", "cfg.toml", "--set", f'data.label_columns=["{LABELS[0]}"]', check=check)


# ----------------------------------------------------------------------------------------------------------
# Run folders
# ----------------------------------------------------------------------------------------------------------

@case("out_is_cwd_holding_data", "rundir", REFUSED, message=r"out|folder")
def _(ws):
    """`lexcoder run cfg.toml --out .` with the data in ./data.parquet (it replaced the data before)."""
    ws.write(base_table(), "data.parquet")
    ws.config(data={"path": "data.parquet"})
    return Scenario(["run", "cfg.toml", "--out", "."], outputs=())


@case("out_holds_user_files", "rundir", REFUSED, message=r"out|folder")
def _(ws):
    """--out names a folder with the user's own config.toml, report.html and metrics.json."""
    ws.standard()
    for name, text in {"config.toml": "# my notes\n", "report.html": "<p>my report</p>",
                       "metrics.json": '{"mine": 1}'}.items():
        ws.text(f"results/{name}", text)
    return run_cmd("results")


@case("out_is_a_file", "rundir", REFUSED, message=r"file")
def _(ws):
    """--out names an existing file."""
    ws.standard()
    ws.text("notes.txt", "important notes\n")
    return run_cmd("notes.txt")


@case("out_inside_another_run", "rundir", REFUSED, message=r"run|out")
def _(ws):
    """--out run/sub: a new run inside a finished run's folder would mix two runs."""
    ws.finished_run()
    return run_cmd("run/sub")


@case("out_is_models_folder_of_run", "rundir", REFUSED, message=r"out|folder|run")
def _(ws):
    """--out run/models."""
    ws.finished_run()
    return run_cmd("run/models")


@case("out_empty_existing_folder", "rundir", OK)
def _(ws):
    """--out names an empty folder that already exists."""
    ws.standard()
    ws.path("out").mkdir()
    return run_cmd(check=run_finished())


@case("out_hidden_file_only", "rundir", EITHER, message=r"DS_Store|out")
def _(ws):
    """--out holds only a .DS_Store (macOS Finder)."""
    ws.standard()
    ws.text("out/.DS_Store", b"\x00\x00\x00\x01Bud1")
    return run_cmd()


@case("out_deep_new_path", "rundir", OK)
def _(ws):
    """--out a/b/c/exp1 (parents missing)."""
    ws.standard()
    return run_cmd("a/b/c/exp1", check=run_finished("a/b/c/exp1"))


@case("rerun_finished_without_resume", "rundir", REFUSED, message=r"resume")
def _(ws):
    """The same command twice: the finished run must not be overwritten."""
    ws.standard()
    ws.train()
    return run_cmd()


@case("resume_finished_run", "rundir", OK)
def _(ws):
    """--resume on a finished run: nothing to redo, results unchanged."""
    ws.standard()
    ws.train()
    before = ws.path("out/metrics.json").read_bytes()

    def check(ws, out):
        return [] if ws.path("out/metrics.json").read_bytes() == before else ["metrics.json changed on resume"]
    return run_cmd("out", "cfg.toml", "--resume", check=check)


@case("resume_after_data_changed", "rundir", REFUSED, message=r"data")
def _(ws):
    """The data file was corrected after the run: --resume must not train on the stale copy."""
    ws.standard()
    ws.train()
    df = base_table()
    df.loc[0, LABELS[0]] = 1 - df.loc[0, LABELS[0]]
    ws.write(df, "data.csv")
    return run_cmd("out", "cfg.toml", "--resume")


@case("resume_after_config_changed", "rundir", REFUSED, message=r"config")
def _(ws):
    """The config changed (C = 3) after the run: --resume must say so."""
    ws.standard()
    ws.train()
    ws.config(model={"params": {"C": 3.0}})
    return run_cmd("out", "cfg.toml", "--resume")


def _ledger(ws: Workspace, rel: str = "corrections.csv", n: int = 3, df: pd.DataFrame | None = None) -> Path:
    """A corrections ledger as `lexcoder corrections apply` writes it: flip the first ``n`` codes of LABELS[0]."""
    df = base_table() if df is None else df
    rows = [{"id": df.loc[i, "id"], "label": LABELS[0], "old_value": int(df.loc[i, LABELS[0]]),
             "new_value": 1 - int(df.loc[i, LABELS[0]]), "reviewer": "A. Coder",
             "timestamp": "2025-01-01T00:00:00+00:00", "note": "", "source_run": "runs/exp1"} for i in range(n)]
    ws.write(pd.DataFrame(rows), rel)
    return ws.path(rel)


@case("resume_after_ledger_changed", "rundir", REFUSED, message=r"ledger|correction")
def _(ws):
    """The ledger gained entries after a --corrections run: --resume --corrections must refuse."""
    ws.standard()
    _ledger(ws, n=2)
    ws.train("out", "--corrections", "corrections.csv")
    _ledger(ws, n=3)
    return run_cmd("out", "cfg.toml", "--resume", "--corrections", "corrections.csv")


@case("resume_adding_corrections", "rundir", REFUSED, message=r"correction")
def _(ws):
    """--resume --corrections on a run started without: never silently ignore the ledger."""
    ws.standard()
    ws.train()
    _ledger(ws)
    return run_cmd("out", "cfg.toml", "--resume", "--corrections", "corrections.csv")


@case("resume_dropping_corrections", "rundir", EITHER, message=r"correction")
def _(ws):
    """--resume without --corrections on a run started with a ledger: refuse, or keep using the ledger."""
    ws.standard()
    _ledger(ws)
    ws.train("out", "--corrections", "corrections.csv")

    def check(ws, out):
        if out.code != 0:
            return []
        manifest = json.loads(ws.path("out/manifest.json").read_text())
        return [] if manifest.get("corrections") else ["the manifest lost the ledger on resume"]
    return run_cmd("out", "cfg.toml", "--resume", check=check)


@case("run_with_corrections_records_ledger", "rundir", OK)
def _(ws):
    """run --corrections: the manifest records the ledger and its hash, metrics use the corrected codes."""
    ws.standard()
    _ledger(ws)

    def check(ws, out):
        manifest = json.loads(ws.path("out/manifest.json").read_text())
        block = manifest.get("corrections") or {}
        digest = hashlib.sha256(ws.path("corrections.csv").read_bytes()).hexdigest()
        return [] if block.get("sha256") == digest else ["manifest does not record the ledger's sha256"]
    return run_cmd("out", "cfg.toml", "--corrections", "corrections.csv", check=check)


@case("rerun_after_failed_run", "rundir", OK)
def _(ws):
    """A run failed validation (a label cell '2'); the user fixed the data and reran the same command."""
    df = base_table().astype({LABELS[2]: object})
    df.loc[3, LABELS[2]] = 2
    ws.write(df, "data.csv")
    ws.config()
    ws.lexcoder("run", "cfg.toml", "--out", "out", expect=2)
    ws.write(base_table(), "data.csv")
    return run_cmd(check=run_finished())


@case("resume_after_failed_run", "rundir", EITHER, message=r"chang|resume|rerun|fail|start")
def _(ws):
    """A failed run, data fixed, then --resume: never repeat the old error from the old data."""
    df = base_table().astype({LABELS[2]: object})
    df.loc[3, LABELS[2]] = 2
    ws.write(df, "data.csv")
    ws.config()
    ws.lexcoder("run", "cfg.toml", "--out", "out", expect=2)
    ws.write(base_table(), "data.csv")
    return run_cmd("out", "cfg.toml", "--resume")


def _damaged(ws: Workspace, how: Callable[[Path], None], argv: list[str]) -> Scenario:
    run = ws.finished_run()
    how(run)
    return Scenario(argv, outputs=("coded.csv",))


def _truncate_model(run: Path) -> None:
    biggest = max((p for p in (run / "models").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 2])


def _delete_model(run: Path) -> None:
    for p in (run / "models").rglob("*"):
        if p.is_file() and p.name != "thresholds.json":
            p.unlink()


def _drop_threshold(run: Path) -> None:
    path = next((run / "models").rglob("thresholds.json"))
    saved = json.loads(path.read_text())
    saved["thresholds"].pop(LABELS[1])
    path.write_text(json.dumps(saved))


PREDICT = ["predict", "run", "data.csv", "--out", "coded.csv"]


@case("damaged_truncated_model", "rundir", REFUSED, message=r"damaged|model")
def _(ws):
    """The largest model file was truncated (disk full, interrupted copy)."""
    return _damaged(ws, _truncate_model, PREDICT)


@case("damaged_missing_model", "rundir", REFUSED, message=r"damaged|model|missing")
def _(ws):
    """The model files were deleted, thresholds.json kept."""
    return _damaged(ws, _delete_model, PREDICT)


@case("damaged_threshold_missing_label", "rundir", REFUSED, message=r"threshold")
def _(ws):
    """thresholds.json lacks one label."""
    return _damaged(ws, _drop_threshold, PREDICT)


@case("damaged_config_deleted_predict", "rundir", REFUSED, message=r"config|run")
def _(ws):
    """config.toml deleted from the run folder, then predict."""
    return _damaged(ws, lambda run: (run / "config.toml").unlink(), PREDICT)


@case("damaged_config_deleted_audit", "rundir", REFUSED, message=r"config|run")
def _(ws):
    """config.toml deleted from the run folder, then audit."""
    return _damaged(ws, lambda run: (run / "config.toml").unlink(), ["audit", "run", "--folds", "3"])


@case("damaged_manifest_corrupt_resume", "rundir", REFUSED, message=r"manifest|damaged")
def _(ws):
    """manifest.json holds garbage; then --resume."""
    ws.standard()
    ws.train()
    ws.text("out/manifest.json", '{"stages": {"load": ')
    return run_cmd("out", "cfg.toml", "--resume")


@case("damaged_manifest_corrupt_rerun", "rundir", REFUSED, message=r"manifest|damaged|out")
def _(ws):
    """manifest.json holds garbage; then the plain command (never overwrite what we cannot read)."""
    ws.standard()
    ws.train()
    ws.text("out/manifest.json", "not json at all")
    return run_cmd()


@case("damaged_predictions_truncated_report", "rundir", REFUSED, message=r"predictions|damaged")
def _(ws):
    """predictions.parquet truncated, then `lexcoder report`."""
    def cut(run: Path) -> None:
        p = run / "predictions.parquet"
        p.write_bytes(p.read_bytes()[:300])
    return _damaged(ws, cut, ["report", "run"])


@case("damaged_metrics_missing_report", "rundir", EITHER, message=r"metrics|damaged|finished")
def _(ws):
    """metrics.json deleted, then `lexcoder report`."""
    scen = _damaged(ws, lambda run: (run / "metrics.json").unlink(), ["report", "run"])
    scen.outputs = ("run",)
    return scen


@case("predict_from_non_run_folder", "rundir", REFUSED, message=r"run")
def _(ws):
    """predict with a folder that is not a run."""
    ws.standard()
    ws.path("notarun").mkdir()
    ws.text("notarun/readme.txt", "hello")
    return predict_cmd("data.csv", "coded.csv", run="notarun")


@case("audit_missing_run_folder", "rundir", REFUSED, message=r"runs/typo|exist")
def _(ws):
    """audit of a folder that does not exist."""
    return Scenario(["audit", "runs/typo"])


# ----------------------------------------------------------------------------------------------------------
# Full disk, read-only folders, permissions
# ----------------------------------------------------------------------------------------------------------

@case("disk_full_early_then_resume", "disk", REFUSED, message=r"space|disk")
def _(ws):
    """--out on a disk with 40 KB free (full while writing data.parquet); after freeing space, --resume
    finishes with the same predictions as an uninterrupted run."""
    ws.standard()
    ws.small_disk("disk", 40_000)
    return _full_then_resume(ws)


def _full_then_resume(ws: Workspace) -> Scenario:
    """``run --out disk/out`` on the small disk; then space is freed and ``--resume`` must finish the run."""
    resume = Step(["run", "cfg.toml", "--out", "disk/out", "--resume"], before=lambda: ws.free_disk("disk"))
    return Scenario(["run", "cfg.toml", "--out", "disk/out"], outputs=("disk/out",), resumable=("disk/out",),
                    then=[resume], check=lambda ws, out: _resumed_same(ws, "disk/out"))


def _resumed_same(ws: Workspace, rel: str) -> list[str]:
    if not ws.path(rel).joinpath("predictions.parquet").is_file():
        return [f"{rel} has no predictions after --resume"]
    return same_predictions_as_template(rel)(ws, None)


@case("disk_full_mid_run_then_resume", "disk", REFUSED, message=r"space|disk")
def _(ws):
    """--out on a disk with 130 KB free (full while saving the model or the report); then free, --resume."""
    ws.standard()
    ws.small_disk("disk", 130_000)
    return _full_then_resume(ws)


@case("disk_full_predict", "disk", REFUSED, message=r"space|disk")
def _(ws):
    """predict --out onto a disk with 20 KB free."""
    ws.finished_run()
    ws.small_disk("disk", 20_000)
    return predict_cmd("data.csv", "disk/coded.csv")


def _audit_on_small_disk(ws: Workspace, room: int) -> Scenario:
    ws.standard()
    disk = ws.small_disk("disk", 2_000_000)
    shutil.copytree(ws.template / "run", disk / "run", dirs_exist_ok=True)
    for name in ("audit_oof.parquet", "audit_oof.json", "label_issues.csv", "label_issues.parquet",
                 "audit_summary.json"):
        (disk / "run" / name).unlink(missing_ok=True)
    ws.leave_room("disk", room)
    return Scenario(["audit", "disk/run", "--folds", "3"])


@case("disk_full_audit", "disk", REFUSED, message=r"space|disk")
def _(ws):
    """audit of a run on a disk with 10 KB left: refused, and the run's files stay as they were."""
    return _audit_on_small_disk(ws, 10_000)


@case("disk_full_audit_at_report", "disk", REFUSED, message=r"space|disk")
def _(ws):
    """audit with room for the review queue but not for the refreshed report: the audit's files are kept
    whole, the report stays as it was, and the message says both (the CLI rebuilds the report after the
    audit, issue 11)."""
    scenario = _audit_on_small_disk(ws, 100_000)
    kept = ("label_issues.csv", "label_issues.parquet", "audit_summary.json", "audit_oof.parquet", "audit_oof.json")
    scenario.resumable = tuple(f"disk/run/{name}" for name in kept)  # may stay after the refusal

    def check(ws: Workspace, out: Outcome) -> list[str]:
        problems = [f"{name} missing after the audit finished" for name in kept
                    if not ws.path(f"disk/run/{name}").is_file()]
        if "audit finished and its results are kept" not in out.flat or "lexcoder report" not in out.flat:
            problems.append("the message does not say that the audit's results are kept and how to rebuild "
                            "the report")
        return problems
    scenario.check = check
    return scenario


@case("readonly_out_parent", "disk", REFUSED, message=r"read-only|permission|write")
def _(ws):
    """--out inside a read-only folder (a colleague's share)."""
    ws.standard()
    ws.read_only("shared")
    return run_cmd("shared/out")


@case("readonly_run_audit", "disk", REFUSED, message=r"read-only|permission|write")
def _(ws):
    """audit of a run on a read-only share."""
    ws.standard()
    ws.read_only("shared", copy_from=ws.template)
    return Scenario(["audit", "shared/run", "--folds", "3"])


@case("readonly_predict_out", "disk", REFUSED, message=r"read-only|permission|write")
def _(ws):
    """predict --out into a read-only folder."""
    ws.finished_run()
    ws.read_only("shared")
    return predict_cmd("data.csv", "shared/coded.csv")


@case("readonly_run_predict", "disk", OK)
def _(ws):
    """predict from a run on a read-only share (reading a run must never need to write into it)."""
    ws.standard()
    ws.read_only("shared", copy_from=ws.template)
    return predict_cmd("data.csv", "coded.csv", run="shared/run", check=readable("coded.csv"))


@case("umask_022_run_outputs", "disk", OK)
def _(ws):
    """umask 022: colleagues on a shared drive must read the run (files 0644, folders 0755)."""
    ws.standard()
    return run_cmd(check=modes("out", 0o644, 0o755))


@case("umask_077_run_outputs", "disk", OK)
def _(ws):
    """umask 077: a private user's run stays private (files 0600, folders 0700)."""
    ws.standard()
    return run_cmd(check=modes("out", 0o600, 0o700), umask=0o077)


@case("umask_022_predict_output", "disk", OK)
def _(ws):
    """umask 022: predict's output is 0644."""
    ws.finished_run()
    return predict_cmd("data.csv", "coded.csv", check=modes("coded.csv", 0o644, 0o755))


# ----------------------------------------------------------------------------------------------------------
# Concurrency
# ----------------------------------------------------------------------------------------------------------

@case("concurrent_two_runs_same_out", "concurrency", ONE_WINS, message=r"in use|lock|busy|running|already")
def _(ws):
    """Two `lexcoder run` on one --out at the same time: one runs, the other says the folder is in use."""
    ws.standard()
    argv = ["run", "cfg.toml", "--out", "out"]
    return Scenario(parallel=[Parallel(argv), Parallel(argv)], outputs=("out",), check=run_finished())


@case("concurrent_audit_while_run_writes", "concurrency", REFUSED, message=r"in use|lock|busy|running")
def _(ws):
    """`lexcoder audit out` started while `lexcoder run --out out` is still writing it (3,000 rows: a slower run)."""
    df = base_table(per_doc=150, n_docs=20)
    # headings ("5.") and boilerplate shared by documents would link them into one split unit: leave them out
    key = df["text"].str.split().str.join(" ").str.lower()
    ws.write(df[(key.str.count(" ") >= 3) & ~key.duplicated(keep=False)], "data.csv")
    ws.config()
    return Scenario(parallel=[Parallel(["run", "cfg.toml", "--out", "out"], expect=OK),
                              Parallel(["audit", "out", "--folds", "3"], expect=REFUSED,
                                       start_when="out/config.toml")],
                    outputs=("out",), check=run_finished())


@case("concurrent_two_audits", "concurrency", ONE_WINS, message=r"in use|lock|busy|running")
def _(ws):
    """Two audits of one run at the same time."""
    ws.finished_run()
    argv = ["audit", "run", "--folds", "5", "--method", "loss"]
    for name in ("audit_oof.parquet", "audit_oof.json"):
        ws.path(f"run/{name}").unlink()
    return Scenario(parallel=[Parallel(argv), Parallel(argv)], outputs=("run",))


@case("concurrent_corrections_apply", "concurrency", ONE_WINS, message=r"in use|lock|busy|running")
def _(ws):
    """Two `corrections apply` of one review at the same time: the ledger must not get the entries twice."""
    ws.finished_run()
    queue = pd.read_csv(ws.path("run/label_issues.csv"), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    queue.loc[:2, "decision"] = "flip"
    ws.write(queue, "reviewed.csv")
    argv = ["corrections", "apply", "run", "reviewed.csv", "--reviewer", "A. Coder"]

    def check(ws, outs):
        ledger = pd.read_csv(ws.path("corrections.csv"), dtype=str)
        return ["ledger holds duplicate entries"] if ledger.duplicated(["id", "label"]).any() else []
    return Scenario(parallel=[Parallel(argv), Parallel(argv)], outputs=("run", "corrections.csv"), check=check)


@case("concurrent_predicts_same_output", "concurrency", EITHER, message=r"exists|overwrite|in use")
def _(ws):
    """Two predicts writing the same output file at once: whatever is left must be one complete table."""
    ws.finished_run()
    argv = ["predict", "run", "data.csv", "--out", "coded.parquet"]
    return Scenario(parallel=[Parallel(argv), Parallel(argv)], outputs=("coded.parquet",),
                    check=lambda ws, outs: readable("coded.parquet")(ws, outs[0]))


# ----------------------------------------------------------------------------------------------------------
# predict
# ----------------------------------------------------------------------------------------------------------

def _predict_case(ws: Workspace, inp: str = "new.csv", df: pd.DataFrame | None = None) -> None:
    ws.finished_run()
    ws.write(base_table(20) if df is None else df, inp)


@case("predict_out_equals_input", "predict", REFUSED, message=r"input|same")
def _(ws):
    """`predict run new.csv --out new.csv` (replaced the input before)."""
    _predict_case(ws)
    return predict_cmd("new.csv", "new.csv", outputs=())


@case("predict_out_equals_input_other_spelling", "predict", REFUSED, message=r"input|same")
def _(ws):
    """--out ./sub/../new.csv is the input under another name."""
    _predict_case(ws)
    ws.path("sub").mkdir()
    return predict_cmd("new.csv", "./sub/../new.csv", outputs=())


@case("predict_out_symlink_to_input", "predict", REFUSED, message=r"input|same|link")
def _(ws):
    """--out is a symbolic link to the input."""
    _predict_case(ws)
    os.symlink("new.csv", ws.path("coded.csv"))
    return predict_cmd("new.csv", "coded.csv", outputs=())


@case("predict_out_exists", "predict", REFUSED, message=r"overwrite|exists")
def _(ws):
    """--out names an existing file (last week's coding)."""
    _predict_case(ws)
    ws.text("coded.csv", "id,note\n1,keep me\n")
    return predict_cmd("new.csv", "coded.csv", outputs=())


@case("predict_out_exists_overwrite", "predict", OK)
def _(ws):
    """--out an existing file with --overwrite."""
    _predict_case(ws)
    ws.text("coded.csv", "id,note\n1,old\n")
    return predict_cmd("new.csv", "coded.csv", "--overwrite", check=readable("coded.csv"))


@case("predict_out_csv_gz", "predict", OK)
def _(ws):
    """--out coded.csv.gz must be gzip that lexcoder reads back."""
    _predict_case(ws)
    return predict_cmd("new.csv", "coded.csv.gz", check=readable("coded.csv.gz", magic=b"\x1f\x8b"))


@case("predict_out_jsonl_gz", "predict", OK)
def _(ws):
    """--out coded.jsonl.gz."""
    _predict_case(ws)
    return predict_cmd("new.csv", "coded.jsonl.gz", check=readable("coded.jsonl.gz", magic=b"\x1f\x8b"))


@case("predict_out_csv_bz2", "predict", OK)
def _(ws):
    """--out coded.csv.bz2."""
    _predict_case(ws)
    return predict_cmd("new.csv", "coded.csv.bz2", check=readable("coded.csv.bz2", magic=b"BZh"))


@case("predict_out_tsv_xz", "predict", OK)
def _(ws):
    """--out coded.tsv.xz."""
    _predict_case(ws)
    return predict_cmd("new.csv", "coded.tsv.xz", check=readable("coded.tsv.xz", magic=b"\xfd7zXZ"))


@case("predict_out_parquet_gz", "predict", EITHER, message=r"parquet|gz|compress")
def _(ws):
    """--out coded.parquet.gz (Parquet compresses itself)."""
    _predict_case(ws)
    return predict_cmd("new.csv", "coded.parquet.gz", check=readable("coded.parquet.gz", only_if_ok=True))


@case("predict_out_xlsx", "predict", OK)
def _(ws):
    """--out coded.xlsx."""
    _predict_case(ws)
    return predict_cmd("new.csv", "coded.xlsx", check=readable("coded.xlsx"))


@case("predict_parquet_column_filled_late", "predict", OK)
def _(ws):
    """Parquet output; a column empty in the first chunk and filled later (crashed after most of the work)."""
    df = base_table(20)
    df["court_note"] = [None] * 200 + ["see appendix"] * 100
    _predict_case(ws, "new.csv", df)

    def check(ws, out):
        got = pd.read_parquet(ws.path("coded.parquet"))
        return [] if got["court_note"].eq("see appendix").sum() == 100 else ["late column values lost"]
    return predict_cmd("new.csv", "coded.parquet", "--chunksize", "100",
                       check=all_checks(readable("coded.parquet"), check))


@case("predict_parquet_input_type_drift", "predict", OK)
def _(ws):
    """Parquet in and out, chunked: a column that is all null in the first row group."""
    df = base_table(20)
    df["year"] = pd.array([None] * 150 + [2020] * 150, dtype="Int64")
    _predict_case(ws, "new.parquet", df)
    return predict_cmd("new.parquet", "coded.parquet", "--chunksize", "100", check=readable("coded.parquet"))


@case("predict_input_has_prob_columns_parquet", "predict", EITHER, message=r"_prob|column")
def _(ws):
    """The input already holds <label>_prob columns (a coded file coded again) — Parquet crashed before."""
    df = base_table(20)
    df[f"{LABELS[0]}_prob"] = 0.5
    df[f"{LABELS[0]}_pred"] = 1
    _predict_case(ws, "new.parquet", df)
    return predict_cmd("new.parquet", "coded.parquet", check=unique_columns("coded.parquet"))


@case("predict_input_has_prob_columns_csv", "predict", EITHER, message=r"_prob|column")
def _(ws):
    """The same with CSV (wrote duplicate headers before)."""
    df = base_table(20)
    df[f"{LABELS[0]}_prob"] = 0.5
    _predict_case(ws, "new.csv", df)
    return predict_cmd("new.csv", "coded.csv", check=unique_columns("coded.csv"))


@case("predict_missing_text_column", "predict", REFUSED, message=r"text")
def _(ws):
    """The input has no 'text' column (it is called 'clause')."""
    _predict_case(ws, "new.csv", base_table(20).rename(columns={"text": "clause"}))
    return predict_cmd("new.csv", "coded.csv")


@case("predict_text_column_option_wrong", "predict", REFUSED, message=r"klausel")
def _(ws):
    """--text-column names a column the input does not have."""
    _predict_case(ws)
    return predict_cmd("new.csv", "coded.csv", "--text-column", "klausel")


@case("predict_header_only_input", "predict", EITHER, message=r"no rows|empty")
def _(ws):
    """An input with a header and no rows."""
    _predict_case(ws, "new.csv", base_table(20).head(0))
    return predict_cmd("new.csv", "coded.csv")


@case("predict_input_missing", "predict", REFUSED, message=r"new\.csv")
def _(ws):
    """The input file does not exist."""
    ws.finished_run()
    return predict_cmd("new.csv", "coded.csv")


@case("predict_out_unknown_extension", "predict", REFUSED, message=r"docx")
def _(ws):
    """--out coded.docx: refuse before coding anything."""
    _predict_case(ws)
    return predict_cmd("new.csv", "coded.docx")


@case("predict_out_into_run_folder", "predict", REFUSED, message=r"run|out")
def _(ws):
    """--out run/predictions.parquet would overwrite the run's own artifact."""
    _predict_case(ws)
    return predict_cmd("new.csv", "run/predictions.parquet", outputs=())


@case("predict_out_existing_folder", "predict", EITHER, message=r"folder|director|coded")
def _(ws):
    """--out names an existing folder."""
    _predict_case(ws)
    ws.path("coded").mkdir()
    return predict_cmd("new.csv", "coded")


@case("predict_empty_texts", "predict", OK)
def _(ws):
    """Some texts to code are empty."""
    df = base_table(20)
    df.loc[[1, 5, 9], "text"] = None
    _predict_case(ws, "new.csv", df)
    return predict_cmd("new.csv", "coded.csv", check=readable("coded.csv"))


@case("predict_latin1_input", "predict", REFUSED, message=r"UTF-8|encod")
def _(ws):
    """A Latin-1 input file."""
    df = base_table(20)
    df.loc[::5, "text"] = "Clause générale: " + df.loc[::5, "text"]
    ws.finished_run()
    ws.write(df, "new.csv", encoding="latin-1", errors="replace")
    return predict_cmd("new.csv", "coded.csv")


@case("predict_chunksize_zero", "predict", REFUSED, message=r"chunksize")
def _(ws):
    """--chunksize 0."""
    _predict_case(ws)
    return predict_cmd("new.csv", "coded.csv", "--chunksize", "0")


@case("predict_ids_leading_zeros", "predict", OK)
def _(ws):
    """Input ids 007 must come out as 007."""
    df = base_table(20)
    df["id"] = [f"{i:04d}" for i in range(len(df))]
    _predict_case(ws, "new.csv", df)

    def check(ws, out):
        got = pd.read_csv(ws.path("coded.csv"), dtype=str)["id"].tolist()
        return [] if got[:3] == ["0000", "0001", "0002"] else [f"ids reformatted: {got[:3]}"]
    return predict_cmd("new.csv", "coded.csv", check=check)


@case("predict_formulas_csv", "predict", OK)
def _(ws):
    """Ids and texts starting with = + - @ are neutralised in the CSV a researcher opens in Excel."""
    _predict_case(ws, "new.csv", formula_table(base_table(20)))
    return predict_cmd("new.csv", "coded.csv", check=csv_neutralised("coded.csv", ["id", "text"],
                                                                       encoding="utf-8"))


@case("predict_formulas_xlsx", "predict", OK)
def _(ws):
    """No live formula in an .xlsx output."""
    _predict_case(ws, "new.csv", formula_table(base_table(20)))

    def check(ws, out):
        from openpyxl import load_workbook
        sheet = load_workbook(ws.path("coded.xlsx")).active
        live = [c.value for row in sheet.iter_rows() for c in row if c.data_type == "f" or dangerous(c.value)]
        return [f"{len(live)} live formula cell(s) in coded.xlsx, e.g. {str(live[0])[:40]!r}"] if live else []
    return predict_cmd("new.csv", "coded.xlsx", check=check)


@case("predict_keep_formulas", "predict", OK)
def _(ws):
    """--keep-formulas writes the cells verbatim (the documented switch)."""
    _predict_case(ws, "new.csv", formula_table(base_table(20)))
    return predict_cmd("new.csv", "coded.csv", "--keep-formulas",
                       check=csv_neutralised("coded.csv", ["id", "text"], keep=True, encoding="utf-8"))


# ----------------------------------------------------------------------------------------------------------
# audit / corrections / report
# ----------------------------------------------------------------------------------------------------------

def _labelled_run(ws: Workspace, label: str, out: str = "out", df: pd.DataFrame | None = None) -> Path:
    """Train a run whose third label column is called ``label``."""
    df = (base_table() if df is None else df).rename(columns={LABELS[2]: label})
    ws.write(df, "data.csv")
    ws.config(data={"label_columns": [LABELS[0], LABELS[1], label], "path": "data.csv"})
    return ws.train(out)


@case("audit_label_path_traversal", "audit", EITHER, message=r"label|ESCAPED")
def _(ws):
    """A label named 'x/../../../ESCAPED' and `audit --label` with it (wrote three folders up before)."""
    label = "x/../../../ESCAPED"
    _labelled_run(ws, label, "a/b/c/out")
    return Scenario(["audit", "a/b/c/out", "--folds", "3", "--label", label], outputs=("a/b/c/out",),
                    check=no_file_named("ESCAPED", "a/b/c/out"))


@case("audit_label_with_slash", "audit", OK)
def _(ws):
    """A label 'terms/termination' and `audit --label` with it: the file stays in the run folder."""
    _labelled_run(ws, "terms/termination")
    return Scenario(["audit", "out", "--folds", "3", "--label", "terms/termination"], outputs=("out",),
                    check=no_file_named("termination", "out"))


@case("audit_label_dotdot", "audit", OK)
def _(ws):
    """A label named '..'."""
    _labelled_run(ws, "..")
    return Scenario(["audit", "out", "--folds", "3", "--label", ".."], outputs=("out",))


@case("run_label_with_dollar", "audit", OK)
def _(ws):
    """A label named '$cost' (crashed the report after training finished)."""
    df = base_table().rename(columns={LABELS[2]: "$cost"})
    ws.write(df, "data.csv")
    ws.config(data={"label_columns": [LABELS[0], LABELS[1], "$cost"], "path": "data.csv"})
    return run_cmd(check=lambda ws, out: [] if ws.path("out/report.html").is_file() else ["no report.html"])


@case("run_label_with_html", "audit", OK)
def _(ws):
    """A label named '<b>change</b>' must be escaped in report.html and report.md."""
    df = base_table().rename(columns={LABELS[2]: "<b>change</b>"})
    ws.write(df, "data.csv")
    ws.config(data={"label_columns": [LABELS[0], LABELS[1], "<b>change</b>"], "path": "data.csv"})

    def check(ws, out):
        # a fenced code block (the resolved config in report.md) shows its text literally: not raw HTML
        outside_code = {ext: re.sub(r"(?ms)^(`{3,}).*?^\1", "", ws.path(f"out/report.{ext}").read_text(encoding="utf-8"))
                        for ext in ("html", "md")}
        return [f"report.{ext} holds the raw HTML of a label name" for ext, text in outside_code.items()
                if "<b>change</b>" in text]
    return run_cmd(check=check)


@case("report_md_escapes_text_html", "audit", OK)
def _(ws):
    """Texts holding <script> tags, then an audit: report.md must escape them as report.html does."""
    df = base_table()
    df["text"] = "<script>alert(1)</script> " + df["text"]
    ws.write(df, "data.csv")
    ws.config()
    ws.train()

    def check(ws, out):
        return [f"report.{ext} holds a raw <script> tag from a text" for ext in ("html", "md")
                if "<script>alert(1)</script>" in ws.path(f"out/report.{ext}").read_text(encoding="utf-8")]
    return Scenario(["audit", "out", "--folds", "3"], outputs=("out",), check=check)


def _formula_run(ws: Workspace) -> None:
    ws.write(formula_table(), "data.csv")
    ws.config()
    ws.train()


@case("audit_formulas_neutralised", "audit", OK)
def _(ws):
    """Ids and texts starting with = + - @ are neutralised in label_issues.csv."""
    _formula_run(ws)
    return Scenario(["audit", "out", "--folds", "3"], outputs=("out",),
                    check=csv_neutralised("out/label_issues.csv", ["id", "text", "label", "reason"]))


@case("audit_keep_formulas", "audit", OK)
def _(ws):
    """audit --keep-formulas writes them verbatim."""
    _formula_run(ws)
    return Scenario(["audit", "out", "--folds", "3", "--keep-formulas"], outputs=("out",),
                    check=csv_neutralised("out/label_issues.csv", ["id", "text"], keep=True))


@case("corrections_roundtrip_neutralised_ids", "audit", OK)
def _(ws):
    """A reviewed queue whose ids were neutralised ('=...) is applied, and a run --corrections with the
    ledger changes exactly the flipped codes of the original ids."""
    _formula_run(ws)
    ws.lexcoder("audit", "out", "--folds", "3")
    queue = pd.read_csv(ws.path("out/label_issues.csv"), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    queue.loc[:2, "decision"] = "flip"
    ws.write(queue, "reviewed.csv", encoding="utf-8-sig")

    def check(ws, out):
        path = ws.path("out2/manifest.json")
        manifest = json.loads(path.read_text()) if path.is_file() else {}
        changed = sum((manifest.get("corrections") or {}).get("labels_changed", {}).values())
        return [] if changed == 3 else [f"the retrained run changed {changed} code(s), expected the 3 flipped"]
    return Scenario(["corrections", "apply", "out", "reviewed.csv", "--reviewer", "A. Coder"],
                    outputs=("out", "corrections.csv"), check=check,
                    then=[Step(["run", "cfg.toml", "--out", "out2", "--corrections", "corrections.csv"])])


@case("corrections_ledger_other_dataset", "audit", REFUSED, message=r"ledger|corrections\.csv|id")
def _(ws):
    """run --corrections with a ledger made for another data set (other ids)."""
    ws.standard()
    _ledger(ws, df=base_table(20))
    return run_cmd("out", "cfg.toml", "--corrections", "corrections.csv")


@case("corrections_ledger_missing", "audit", REFUSED, message=r"corrections|exist")
def _(ws):
    """run --corrections with a ledger that does not exist."""
    ws.standard()
    return run_cmd("out", "cfg.toml", "--corrections", "nope.csv")


@case("corrections_ledger_is_not_a_ledger", "audit", REFUSED, message=r"ledger")
def _(ws):
    """run --corrections data.csv (the data file given as ledger)."""
    ws.standard()
    return run_cmd("out", "cfg.toml", "--corrections", "data.csv")


def _reviewed(ws: Workspace, edit: Callable[[pd.DataFrame], None]) -> None:
    ws.finished_run()
    queue = pd.read_csv(ws.path("run/label_issues.csv"), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    edit(queue)
    ws.write(queue, "reviewed.csv")


APPLY = ["corrections", "apply", "run", "reviewed.csv", "--reviewer", "A. Coder"]


@case("corrections_apply_bad_decision", "audit", REFUSED, message=r"decision")
def _(ws):
    """A decision 'maybe'."""
    _reviewed(ws, lambda q: q.__setitem__("decision", ["maybe"] + ["flip"] * (len(q) - 1)))
    return Scenario(APPLY)


@case("corrections_apply_missing_columns", "audit", REFUSED, message=r"human_value|decision|column")
def _(ws):
    """The reviewer deleted columns from the queue."""
    def edit(q):
        q.drop(columns=["human_value"], inplace=True)
        q["decision"] = "flip"
    _reviewed(ws, edit)
    return Scenario(APPLY)


@case("corrections_apply_unknown_id", "audit", REFUSED, message=r"id")
def _(ws):
    """A reviewed row whose id is not in the run."""
    def edit(q):
        q.loc[0, "id"] = "no_such_id"
        q.loc[0, "decision"] = "flip"
    _reviewed(ws, edit)
    return Scenario(APPLY)


@case("corrections_apply_ledger_is_user_data", "audit", REFUSED, message=r"ledger|data\.csv")
def _(ws):
    """--ledger data.csv (the user's data file): it must not be appended to."""
    _reviewed(ws, lambda q: q.__setitem__("decision", "keep"))
    return Scenario([*APPLY, "--ledger", "data.csv"])


@case("corrections_apply_xlsx_review", "audit", OK)
def _(ws):
    """The reviewer saved the queue as .xlsx (Excel turned numeric-looking cells into numbers)."""
    ws.finished_run()
    queue = pd.read_csv(ws.path("run/label_issues.csv"), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    queue.loc[:1, "decision"] = "flip"
    queue["human_value"] = queue["human_value"].astype(int)
    ws.write(queue, "reviewed.xlsx")
    return Scenario(["corrections", "apply", "run", "reviewed.xlsx", "--reviewer", "A. Coder"],
                    outputs=("run", "corrections.csv"))


# audit options a finished run refuses before any work: (case, options, message pattern, what a user did)
AUDIT_OPTION_CASES = [
    ("audit_folds_one", ["--folds", "1"], r"folds", "--folds 1."),
    ("audit_folds_more_than_rows", ["--folds", "5000"], r"folds|rows|group", "--folds 5000 on 300 rows."),
    ("audit_top_negative", ["--top", "-1"], r"top", "--top -1 (would silently drop the last row)."),
    ("audit_unknown_method", ["--method", "foo"], r"method|foo", "--method foo."),
    ("audit_unknown_model", ["--model", "svm"], r"svm|model|kind", "--model svm."),
    ("audit_unknown_label", ["--label", "privacy"], r"label", "--label that is not one of the run's labels."),
]


def _audit_option_case(options: list[str], doc: str) -> Callable[["Workspace"], Scenario]:
    def setup(ws):
        ws.finished_run()
        return Scenario(["audit", "run", *options], outputs=("run",))
    setup.__doc__ = doc
    return setup


for _name, _options, _message, _doc in AUDIT_OPTION_CASES:
    case(_name, "audit", REFUSED, message=_message)(_audit_option_case(_options, _doc))


# ----------------------------------------------------------------------------------------------------------
# init
# ----------------------------------------------------------------------------------------------------------

@case("init_missing_folder", "init", EITHER, message=r"folder|director|configs")
def _(ws):
    """`lexcoder init configs/my.toml` where configs/ does not exist (traceback before)."""
    return Scenario(["init", "configs/my.toml"], outputs=("configs",))


@case("init_existing_file", "init", REFUSED, message=r"force|exists")
def _(ws):
    """init over an existing config."""
    ws.text("my.toml", "# my own settings\n")
    return Scenario(["init", "my.toml"])


@case("init_existing_file_force", "init", OK)
def _(ws):
    """init --force over an existing config."""
    ws.text("my.toml", "# my own settings\n")
    return Scenario(["init", "my.toml", "--force"], outputs=("my.toml",))


@case("init_path_is_folder", "init", REFUSED, message=r"folder|director|configs")
def _(ws):
    """init with a folder as path."""
    ws.path("configs").mkdir()
    return Scenario(["init", "configs"])


@case("init_read_only_folder", "init", REFUSED, message=r"read-only|permission|write")
def _(ws):
    """init into a read-only folder."""
    ws.read_only("shared")
    return Scenario(["init", "shared/my.toml"])


@case("init_then_run_unedited", "init", REFUSED, message=r"letters\.csv")
def _(ws):
    """`lexcoder init my.toml` then run it without editing: name the missing example file."""
    ws.lexcoder("init", "my.toml")
    return run_cmd("out", "my.toml")
