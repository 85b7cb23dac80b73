"""Curcor benchmark harness (standard library; matplotlib for the plots).

    python benchmarks/run.py --suite          # make bench: everything, + files
    python benchmarks/run.py --suite --quick  # make bench-quick (< 3 min)
    python benchmarks/run.py                  # the workloads, all runtimes
    python benchmarks/run.py --quick          # smaller; curcor, asyncio, floor
    python benchmarks/run.py --maxprocs-ab    # curcor, CURCOR_MAXPROCS=1 vs 2
    python benchmarks/run.py --echo           # TCP echo, 1 KiB x 100 conns
    python benchmarks/run.py --http           # HTTP hello, 50 keep-alive conns
    python benchmarks/run.py --runtimes asyncio,uvloop,trio --json peers.json
    python benchmarks/run.py --report results/suite-....json  # redraw

Every run is its own fresh process (``benchmarks/workloads.py``, or the Go
binary built from ``benchmarks/go``), which prints one JSON line; runs are
interleaved (run 1 of everything, then run 2, ...) so slow drift of the
machine spreads over all rows; the table shows medians. See
benchmarks/README.md for the columns and docs/benchmarks.md for the
methodology.

Exit status: 0 when every run succeeded (and, with --maxprocs-ab, every
ratio is within the spec's 1.10), 1 otherwise, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORKLOADS_PY = HERE / "workloads.py"
ECHO_PY = HERE / "echo.py"
HTTP_PY = HERE / "http_hello.py"
GO_DIR = HERE / "go"
RESULTS_DIR = HERE / "results"

sys.path.insert(0, str(HERE))
import report  # noqa: E402  (benchmarks/report.py: Markdown, plots, machine)
import workloads as wl  # noqa: E402  (the sizes and names, nothing else)

# Runtime names as the tables show them. curcor-pN is curcor with
# CURCOR_MAXPROCS=N; plain curcor uses the default (usable CPUs). floor is
# benchmarks/floor.py with curcor's governed GC settings, floor-defgc the same
# with CPython's default GC. go is benchmarks/go, built when `go` is on PATH.
# curcor-mypyc is curcor-p2 with the optional compiled hot path
# (tools/mypyc_build.py, built into a temporary directory before the runs).
# curcor-defgc is curcor-p2 with gc = "default" (CPython's own thresholds),
# beside the governed default (issue 6).
ALL_RUNTIMES = (
    "curcor-p1",
    "curcor-p2",
    "curcor-mypyc",
    "curcor-defgc",
    "asyncio",
    "uvloop",
    "trio",
    "floor",
    "floor-defgc",
    "go",
)
KNOWN_RUNTIMES = ("curcor", *ALL_RUNTIMES)
QUICK_RUNTIMES = ("curcor", "curcor-mypyc", "asyncio", "floor")
MYPYC = "curcor-mypyc"
DEFGC = "curcor-defgc"
MYPYC_BUILD_TIMEOUT = 300.0
DEFAULT_WORKLOADS = ",".join(
    [
        "spawn:100000",
        "spawn:1000000",
        "pingpong:200000",
        "fanin:10000",
        "tree:6",
        "mutex:100000",
        "select:100000",
        "timers:100000",
        "startup:10",
        "version:10",
    ]
)
# --quick: every workload, smaller; finishes in about a minute on 2 cores.
QUICK_WORKLOADS = ",".join(
    [
        "spawn:100000",
        "pingpong:50000",
        "fanin:2000",
        "tree:5",
        "mutex:20000",
        "select:20000",
        "timers:20000",
        "startup:5",
        "version:5",
    ]
)
AB_WORKLOADS = "spawn:1000000,pingpong:200000"
AB_LIMIT = 1.10  # R-SCHED: N workers no more than 10% slower than 1
EXIT_UNAVAILABLE = 3  # from workloads.py: the runtime cannot be imported
BASELINE = "asyncio"
FLOOR = "floor"
DEFAULT_TIMEOUT = 300.0
BUSY_LIMIT = 0.25  # foreign CPU (cores) during a run above which we warn
GO_BUILD_TIMEOUT = 300.0

# --echo: the servers in benchmarks/echo.py (same order as its SERVERS)
ECHO_SERVERS = (
    "curcor",
    "curcor-socket",
    "asyncio-streams",
    "asyncio-protocol",
    "uvloop-streams",
    "uvloop-protocol",
    "trio",
)
ECHO_BASELINE = "asyncio-streams"
ECHO_START_TIMEOUT = 20.0  # s for a server to print its port

# --http: the servers in benchmarks/http_hello.py (same order as its SERVERS)
HTTP_SERVERS = ("curcor", "asyncio-h11", "uvloop-h11")
HTTP_BASELINE = "asyncio-h11"


@dataclass
class Cell:
    """All runs of one (workload, n, runtime[, maxprocs]) combination.

    ``runtime`` is the name in the tables (``curcor-p1``); ``child`` is the
    runtime the child process runs (``curcor``) and ``maxprocs`` the
    ``CURCOR_MAXPROCS`` it gets (None: inherited).
    """

    workload: str
    n: int
    runtime: str
    maxprocs: str | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    child: str = ""

    def __post_init__(self) -> None:
        self.child = self.child or self.runtime

    def ok_runs(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r.get("ok")]

    def median(self, key: str) -> float | None:
        values = [r[key] for r in self.ok_runs() if r.get(key) is not None]
        return statistics.median(values) if values else None

    def spread(self) -> float | None:
        """(max - min) / median of the wall times, or None."""
        walls = [r["wall_s"] for r in self.ok_runs()]
        if len(walls) < 2:
            return None
        return (max(walls) - min(walls)) / statistics.median(walls)

    def summary(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "n": self.n,
            "runtime": self.runtime,
            "curcor_maxprocs": self.maxprocs,
            "runs_ok": len(self.ok_runs()),
            "runs_total": len(self.runs),
            "median": {
                k: self.median(k)
                for k in (
                    "wall_s",
                    "gc_s",
                    "gc_collections",
                    "peak_rss_mb",
                    "import_s",
                )
            },
            "wall_spread": self.spread(),
            "errors": self.errors,
            "runs": self.runs,
        }


def parse_workloads(text: str) -> list[tuple[str, int]]:
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, n = item.partition(":")
        if name not in wl.WORKLOADS:
            known = ", ".join(wl.WORKLOADS)
            raise ValueError(f"unknown workload {name!r} (known: {known})")
        try:
            size = int(n.replace("_", "")) if n else wl.DEFAULT_N[name]
        except ValueError:
            raise ValueError(f"bad size in {item!r}")
        if size < 1:
            raise ValueError(f"size must be >= 1 in {item!r}")
        out.append((name, size))
    return out


def plan_cell(workload: str, n: int, runtime: str) -> Cell | None:
    """The cell that runs ``workload`` on ``runtime``, or None (not applicable).

    The startup workloads do not depend on maxprocs or on GC settings, so
    every curcor-pN runs them as plain curcor and floor-defgc not at all;
    ``version`` is curcor's only.
    """
    maxprocs = None
    child = runtime
    if runtime.startswith("curcor-p"):
        child, maxprocs = "curcor", runtime.removeprefix("curcor-p")
    if runtime in (MYPYC, DEFGC):
        child, maxprocs = "curcor", "2"
    if workload in wl.PROCESS_WORKLOADS:
        if runtime in ("floor-defgc", DEFGC) or (
            workload == "version" and child != "curcor"
        ):
            return None
        if runtime == MYPYC:
            return Cell(workload, n, MYPYC, child="curcor")
        if child == "curcor":
            return Cell(workload, n, "curcor")
    return Cell(workload, n, runtime, maxprocs, child=child)


def plan_cells(
    workloads: list[tuple[str, int]], runtimes: list[str], maxprocs: list[str | None]
) -> list[Cell]:
    cells: list[Cell] = []
    seen: set[tuple[str, int, str, str | None]] = set()
    for w, n in workloads:
        for r in runtimes:
            for mp in maxprocs:
                cell = plan_cell(w, n, r)
                if cell is None:
                    continue
                if mp is not None:
                    cell.maxprocs = mp
                key = (w, n, cell.runtime, cell.maxprocs)
                if key not in seen:
                    seen.add(key)
                    cells.append(cell)
    return cells


def busy_cpu_s() -> float | None:
    """CPU seconds the whole machine has spent busy (Linux /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal ...
    busy = sum(int(x) for x in fields[1:4] + fields[6:9])
    return busy / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_child(
    python: str,
    cell: Cell,
    timeout: float,
    go_bin: str | None = None,
    mypyc_dir: str | None = None,
) -> tuple[dict[str, Any], int | None]:
    """One run in a fresh process. Never raises for a failing child."""
    env = dict(os.environ)
    if cell.maxprocs is not None:
        env["CURCOR_MAXPROCS"] = cell.maxprocs
    if cell.runtime == DEFGC:
        env["CURCOR_GC"] = "default"
    if cell.runtime == MYPYC:
        # The compiled build first on the path; workloads.py refuses to run
        # (EXPECT_COMPILED) if the pure-Python curcor loads instead.
        assert mypyc_dir is not None
        paths = [mypyc_dir, *filter(None, [env.get("PYTHONPATH")])]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["EXPECT_COMPILED"] = "1"
    workload, n = cell.workload, cell.n
    if cell.child == "go" and workload not in wl.PROCESS_WORKLOADS:
        assert go_bin is not None
        cmd = [go_bin, "-workload", workload, "-n", str(n)]
    else:
        cmd = [python, str(WORKLOADS_PY), "--runtime", cell.child]
        cmd += ["--workload", workload, "--n", str(n)]
        if go_bin is not None and cell.child == "go":
            cmd += ["--go-bin", go_bin]
    base = {"runtime": cell.runtime, "workload": workload, "n": n, "ok": False}
    busy0, child0 = busy_cpu_s(), children_cpu_s()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
        start_new_session=True,  # own process group: killable as a whole
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_child(proc)
        return {**base, "error": f"timeout after {timeout:g} s (killed)"}, None
    except BaseException:  # KeyboardInterrupt: leave no child behind
        kill_child(proc)
        raise
    elapsed = time.perf_counter() - t0
    busy1, child1 = busy_cpu_s(), children_cpu_s()
    record: dict[str, Any] = {}
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            try:
                record = json.loads(line)
                break
            except json.JSONDecodeError:
                pass
    record.setdefault("ok", False)
    record["child_runtime"] = record.pop("runtime", cell.child)
    record["process_s"] = elapsed
    record["child_cpu_s"] = child1 - child0
    if busy0 is not None and busy1 is not None:
        # CPU used by other processes while this run lasted, in cores
        foreign = max(0.0, (busy1 - busy0) - (child1 - child0))
        record["foreign_cpu_cores"] = foreign / elapsed if elapsed else 0.0
    record["returncode"] = proc.returncode
    if proc.returncode != 0 or not record["ok"]:
        record["ok"] = False
        if "error" not in record:
            tail = [ln for ln in err.strip().splitlines() if ln.strip()]
            why = tail[-1] if tail else "no output"
            record["error"] = f"exit {proc.returncode}: {why}"
        record["stderr_tail"] = err[-4000:]
    return {**base, **record}, proc.returncode


def build_mypyc(tmpdir: str) -> tuple[str | None, str]:
    """Build the compiled hot path into ``tmpdir``: (its directory or None,
    a line saying so). Uses tools/mypyc_build.py; needs mypy and a C
    compiler, and skips the curcor-mypyc column without them."""
    out = str(Path(tmpdir) / "mypyc")
    tool = HERE.parent / "tools" / "mypyc_build.py"
    try:
        proc = subprocess.run(
            [sys.executable, str(tool), "--out", out],
            capture_output=True,
            text=True,
            timeout=MYPYC_BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"{MYPYC}: skipped (the build took over {MYPYC_BUILD_TIMEOUT:g} s)"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"{MYPYC}: skipped (tools/mypyc_build.py failed: {last})"
    return out, f"{MYPYC}: built with mypyc into {out}"


def build_go(tmpdir: str) -> tuple[str | None, str]:
    """Build benchmarks/go into ``tmpdir``: (binary or None, a line saying so).

    Offline (GOPROXY=off: the program has no dependencies); the build cache
    goes to ``tmpdir`` when no HOME is set.
    """
    go = shutil.which("go")
    if go is None:
        return None, (
            "go: skipped (no `go` on PATH; `apt-get install golang-go` adds the "
            "Go column)"
        )
    binary = str(Path(tmpdir) / "curcorbench")
    env = {**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=mod"}
    if not env.get("HOME") and not env.get("GOCACHE"):
        env["GOCACHE"] = str(Path(tmpdir) / "gocache")
    try:
        proc = subprocess.run(
            [go, "build", "-o", binary, "."],
            cwd=GO_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=GO_BUILD_TIMEOUT,
            check=False,
        )
        version = subprocess.run(
            [go, "version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
    except subprocess.TimeoutExpired:
        return None, f"go: skipped (go build took over {GO_BUILD_TIMEOUT:g} s)"
    if proc.returncode != 0:
        tail = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        return None, f"go: skipped (go build failed: {tail[-1] if tail else '?'})"
    return binary, f"go: built benchmarks/go with {version}"


def busy_note(record: dict[str, Any]) -> str:
    foreign = record.get("foreign_cpu_cores", 0.0)
    return f" (others busy: {foreign:.2f} core)" if foreign > BUSY_LIMIT else ""


def kill_child(proc: subprocess.Popen[str]) -> None:
    """Kill the child (by its pid, which is also its process group id)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if digits == 3 and value >= 10:
        return f"{value:.2f}"
    return f"{value:.{digits}f}"


def print_table(headers: list[str], rows: list[list[str]], left: int) -> None:
    """Columns before `left` are left-aligned, the rest right-aligned.

    A row shorter than the headers is an error row: its last cell is a message
    that runs past the columns and does not widen them.
    """
    widths = [len(h) for h in headers]
    for row in rows:
        sized = row if len(row) >= len(headers) else row[:-1]
        for i, cell in enumerate(sized):
            widths[i] = max(widths[i], len(cell))

    def line(cells: list[str]) -> str:
        parts = []
        for i, cell in enumerate(cells):
            if len(cells) < len(headers) and i == len(cells) - 1:
                parts.append(cell)
            elif i < left:
                parts.append(cell.ljust(widths[i]))
            else:
                parts.append(cell.rjust(widths[i]))
        return "  ".join(parts).rstrip()

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def comparison_table(cells: list[Cell]) -> None:
    rows = report.cpu_rows([c.summary() for c in cells])
    print_table(report.CPU_HEADERS, [report.cpu_cells(r) for r in rows], left=2)


def ab_table(cells: list[Cell], a: str, b: str) -> bool:
    """Print medians per maxprocs and the ratio B/A; True when all pass."""
    headers = ["workload", f"P={a} wall s", f"P={b} wall s", f"P={b}/P={a}"]
    headers += [f"P={a} GC s", f"P={b} GC s", "runs", "verdict"]
    rows, all_pass = [], True
    keys = dict.fromkeys((c.workload, c.n) for c in cells)
    for workload, n in keys:
        ca = next(c for c in cells if (c.workload, c.n, c.maxprocs) == (workload, n, a))
        cb = next(c for c in cells if (c.workload, c.n, c.maxprocs) == (workload, n, b))
        name = f"{workload} {report.human_n(n)}"
        wa, wb = ca.median("wall_s"), cb.median("wall_s")
        if wa is None or wb is None:
            why = (ca.errors or cb.errors or ["no successful run"])[0]
            rows.append([name, "ERROR", why])
            all_pass = False
            continue
        ratio = wb / wa
        ok = ratio <= AB_LIMIT
        all_pass &= ok
        runs = f"{len(ca.ok_runs())}+{len(cb.ok_runs())}"
        verdict = f"{'PASS' if ok else 'FAIL'} (<= {AB_LIMIT:.2f})"
        rows.append(
            [
                name,
                fmt(wa),
                fmt(wb),
                f"{ratio:.3f}",
                fmt(ca.median("gc_s")),
                fmt(cb.median("gc_s")),
                runs,
                verdict,
            ]
        )
    print_table(headers, rows, left=1)
    return all_pass


# ----------------------------------------------------------------------- echo


def echo_cpus() -> tuple[int | None, int | None, str]:
    """(server CPU, load-generator CPU, description); None = not pinned."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    allowed = sorted(getaffinity(0)) if getaffinity else []
    if len(allowed) >= 2:
        server, client = allowed[0], allowed[1]
        return (
            server,
            client,
            f"server pinned to CPU {server}, load generator to CPU {client} "
            "(sched_setaffinity)",
        )
    return None, None, "not pinned (fewer than 2 usable CPUs)"


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str | None:
    """The child's first stdout line, or None after ``timeout`` / at EOF."""
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return None
    line = proc.stdout.readline()
    return line or None


def _peak_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run_load_once(
    python: str,
    server: str,
    args: argparse.Namespace,
    cpus: tuple[int | None, int | None],
    script: Path,
    client_args: list[str],
) -> tuple[dict[str, Any], int | None]:
    """One server process and one load-generator process; both killed by pid
    at the end. Never raises for a failing child. ``script`` holds both sides
    (echo.py or http_hello.py); ``client_args`` are the generator's load
    options."""
    import tempfile

    extra: dict[str, Any] = {}  # filled after both children are reaped
    with tempfile.TemporaryFile(mode="w+") as srv_err:
        record, rc = _run_load_once(
            python, server, args, cpus, srv_err, extra, script, client_args
        )
    record.update(extra)
    return record, rc


def _run_load_once(
    python: str,
    server: str,
    args: argparse.Namespace,
    cpus: tuple[int | None, int | None],
    srv_err: Any,
    extra: dict[str, Any],
    script: Path,
    client_args: list[str],
) -> tuple[dict[str, Any], int | None]:
    base: dict[str, Any] = {"server": server, "ok": False}
    srv_cpu, cli_cpu = cpus
    srv_cmd = [python, str(script), "--server", server]
    if srv_cpu is not None:
        srv_cmd += ["--cpu", str(srv_cpu)]
    busy0, child0 = busy_cpu_s(), children_cpu_s()
    t0 = time.perf_counter()
    srv = subprocess.Popen(
        srv_cmd,
        stdout=subprocess.PIPE,
        stderr=srv_err,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # own process group: killable as a whole
    )
    cli: subprocess.Popen[str] | None = None
    try:
        line = _read_line(srv, ECHO_START_TIMEOUT)
        if line is None:
            srv.poll()
            if srv.returncode is None:
                why = f"no port within {ECHO_START_TIMEOUT:g} s"
            else:
                srv_err.seek(0)
                tail = [ln for ln in srv_err.read().splitlines() if ln.strip()]
                why = f"exit {srv.returncode}: {tail[-1] if tail else 'no output'}"
            return {**base, "error": f"server: {why}"}, srv.returncode
        hello = json.loads(line)
        cli_cmd = [python, str(script), "--client", "--port", str(hello["port"])]
        cli_cmd += [*client_args, "--server-pid", str(srv.pid)]
        if cli_cpu is not None:
            cli_cmd += ["--cpu", str(cli_cpu)]
        cli = subprocess.Popen(
            cli_cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = cli.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return {**base, "error": f"client timeout after {args.timeout:g} s"}, None
        record: dict[str, Any] = {}
        for ln in reversed(out.splitlines()):
            if ln.startswith("{"):
                try:
                    record = json.loads(ln)
                    break
                except json.JSONDecodeError:
                    pass
        record.setdefault("ok", False)
        record["client_returncode"] = cli.returncode
        record["server_cpus"] = hello.get("cpus")
        record["client_cpus"] = record.pop("cpus", None)
        record["runtime_version"] = hello.get("runtime_version")
        record["python"] = hello.get("python")
        record["server_peak_rss_mb"] = _peak_rss_mb(srv.pid)
        if srv.poll() is not None:
            record["ok"] = False
            record.setdefault("error", f"server exited ({srv.returncode}) mid-run")
        if cli.returncode != 0 or not record["ok"]:
            record["ok"] = False
            if "error" not in record:
                tail = [ln for ln in err.strip().splitlines() if ln.strip()]
                why = tail[-1] if tail else "no output"
                record["error"] = f"client exit {cli.returncode}: {why}"
            record["client_stderr_tail"] = err[-4000:]
        return {**base, **record}, None
    finally:
        # Kill both by pid (= process group id), reap them, then account.
        for proc in (cli, srv):
            if proc is not None:
                kill_child(proc)
        srv_err.seek(0)
        srv_tail = srv_err.read()[-4000:]
        elapsed = time.perf_counter() - t0
        busy1, child1 = busy_cpu_s(), children_cpu_s()
        if busy0 is not None and busy1 is not None:
            foreign = max(0.0, (busy1 - busy0) - (child1 - child0))
            extra["foreign_cpu_cores"] = foreign / elapsed if elapsed else 0.0
        extra["process_s"] = elapsed
        if srv_tail.strip():
            extra["server_stderr_tail"] = srv_tail


@dataclasses.dataclass
class LoadBench:
    """One server-against-load-generator benchmark (echo, HTTP hello)."""

    mode: str  # "echo" or "http": the JSON meta "mode"
    servers: tuple[str, ...]
    baseline: str  # the server the ratios divide by
    rate_key: str  # "msg_per_s" or "req_per_s" in a run's record
    unit: str  # "msg/s" or "req/s"
    ratio_header: str  # the table column of rate / baseline rate
    script: Path  # holds both the server and the load generator
    conns: int
    warmup: float
    seconds: float
    client_args: list[str]
    label: str  # the table's workload cell
    banner: str  # the "# ..." progress line's description
    title: str  # the report's first line, before ", Python ..."
    setup: str  # the report's second line, before "; generator: ..."
    legend: str  # the note under the table
    mib_column: bool = False  # echo also reports MiB/s both ways
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


def load_table(cells: dict[str, list[dict[str, Any]]], bench: LoadBench) -> None:
    """Medians per server, with the ratio to the baseline server."""
    headers = ["workload", "server", bench.unit, bench.ratio_header]
    headers += ["MiB/s"] if bench.mib_column else []
    headers += ["srv CPU", "gen CPU", "srv RSS MB", "conn min-max", "spread", "runs"]

    def med(runs: list[dict[str, Any]], key: str) -> float | None:
        values = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(values) if values else None

    base_runs = [r for r in cells.get(bench.baseline, []) if r.get("ok")]
    base = med(base_runs, bench.rate_key)
    rows = []
    for server, runs in cells.items():
        ok = [r for r in runs if r.get("ok")]
        if not ok:
            errors = [r.get("error", "?") for r in runs]
            rows.append(
                [bench.label, server, "ERROR", errors[0] if errors else "not run"]
            )
            continue
        rate = med(ok, bench.rate_key)
        rates = [r[bench.rate_key] for r in ok]
        spread = (max(rates) - min(rates)) / rate if len(rates) > 1 and rate else None
        lo = min(r["conn_min"] for r in ok)
        hi = max(r["conn_max"] for r in ok)
        row = [bench.label, server, f"{rate:,.0f}"]
        row.append(fmt(rate / base if base and rate else None, 2))
        if bench.mib_column:
            row.append(fmt(med(ok, "mib_per_s"), 1))
        row += [
            fmt(med(ok, "server_cpu"), 2),
            fmt(med(ok, "client_cpu"), 2),
            fmt(med(ok, "server_peak_rss_mb"), 1),
            f"{lo}-{hi}",
            "-" if spread is None else f"{spread:.0%}",
            f"{len(ok)}/{len(runs)}",
        ]
        rows.append(row)
    print_table(headers, rows, left=2)


def echo_bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> LoadBench:
    """The echo benchmark, from --echo-* options."""
    if args.echo_conns < 1 or args.echo_size < 1 or args.echo_seconds <= 0:
        parser.error("--echo-conns, --echo-size, --echo-seconds must be positive")
    size, conns = args.echo_size, args.echo_conns
    warmup, seconds = args.echo_warmup, args.echo_seconds
    label = f"echo {report.human_n(size) if size % 1024 else str(size // 1024) + 'KiB'}"
    return LoadBench(
        mode="echo",
        servers=ECHO_SERVERS,
        baseline=ECHO_BASELINE,
        rate_key="msg_per_s",
        unit="msg/s",
        ratio_header="x streams",
        script=ECHO_PY,
        conns=conns,
        warmup=warmup,
        seconds=seconds,
        client_args=[
            *("--conns", str(conns), "--size", str(size)),
            *("--seconds", str(seconds), "--warmup", str(warmup)),
        ],
        label=f"{label} c{conns}",
        banner=f"{conns} conns x {size} B",
        title="curcor echo benchmark",
        setup=f"{conns} connections, closed loop of {size}-byte messages",
        legend=(
            f"x streams = msg/s / {ECHO_BASELINE} msg/s; MiB/s counts both "
            "directions; srv CPU / gen CPU = cores used by the server / the "
            "generator over the counted window (1.00 = saturated); conn min-max = "
            "fewest and most echoes of one connection in one run"
        ),
        mib_column=True,
        meta={"size": size},
    )


def http_bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> LoadBench:
    """The HTTP hello benchmark, from --http-* options."""
    if args.http_conns < 1 or args.http_seconds <= 0 or args.http_warmup < 0:
        parser.error("--http-conns and --http-seconds must be positive")
    conns, warmup, seconds = args.http_conns, args.http_warmup, args.http_seconds
    return LoadBench(
        mode="http",
        servers=HTTP_SERVERS,
        baseline=HTTP_BASELINE,
        rate_key="req_per_s",
        unit="req/s",
        ratio_header="x asyncio-h11",
        script=HTTP_PY,
        conns=conns,
        warmup=warmup,
        seconds=seconds,
        client_args=[
            *("--conns", str(conns), "--seconds", str(seconds)),
            *("--warmup", str(warmup)),
        ],
        label=f"http hello c{conns}",
        banner=f"{conns} keep-alive conns",
        title="curcor HTTP hello benchmark",
        setup=(
            f"{conns} keep-alive connections, closed loop of GET / (no "
            "pipelining), 5-byte body"
        ),
        legend=(
            f"x asyncio-h11 = req/s / {HTTP_BASELINE} req/s (> 1: faster); every "
            "server parses with h11; srv CPU / gen CPU = cores used by the server "
            "/ the generator over the counted window (1.00 = saturated); conn "
            "min-max = fewest and most responses of one connection in one run"
        ),
        meta={"request": "GET / HTTP/1.1, Host: x; response body hello"},
    )


def main_load(
    bench: LoadBench, args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[int, dict[str, Any]]:
    """Run ``bench`` on each server, interleaved; print the table; write JSON.

    Returns the exit status and the JSON payload (also for the suite report).
    """
    servers = args.runtimes.split(",") if args.runtimes else list(bench.servers)
    servers = [s.strip() for s in servers if s.strip()]
    for s in servers:
        if s not in bench.servers:
            parser.error(f"unknown {bench.mode} server {s!r} (known: {bench.servers})")
    runs = args.runs or 3
    if runs < 1:
        parser.error("--runs must be >= 1")
    if args.timeout == DEFAULT_TIMEOUT:  # a run is ~5 s: fail fast
        args.timeout = bench.warmup + bench.seconds + 40.0
    srv_cpu, cli_cpu, pinning = echo_cpus()
    cells: dict[str, list[dict[str, Any]]] = {s: [] for s in servers}
    started = time.perf_counter()
    started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    print(
        f"# {bench.mode}: {len(servers)} servers x {runs} runs, {bench.banner}, "
        f"{bench.warmup:g} s warm-up + {bench.seconds:g} s measured; {pinning}",
        file=sys.stderr,
    )
    _run_load(bench, args, servers, runs, cells, (srv_cpu, cli_cpu))
    elapsed = time.perf_counter() - started
    print(f"# done in {elapsed:.0f} s", file=sys.stderr)
    print()

    child_python = next(
        (r["python"] for rs in cells.values() for r in rs if r.get("python")), "?"
    )
    gen_loop = next(
        (r["loop"] for rs in cells.values() for r in rs if r.get("loop")), "?"
    )
    print(
        f"{bench.title}, Python {child_python}, {os.cpu_count()} CPUs, medians "
        f"of {runs} runs, each server and the load generator in their own "
        "processes"
    )
    print(
        f"{bench.setup}, {bench.warmup:g} s warm-up then {bench.seconds:g} s "
        f"counted; generator: benchmarks/{bench.script.name} --client on "
        f"{gen_loop}; {pinning}"
    )
    print()
    load_table(cells, bench)
    print()
    print(bench.legend)
    all_runs = [r for rs in cells.values() for r in rs]
    _warn_if_busy(all_runs)
    # The payload is built always: the suite report needs it.
    meta = {
        "date": started_at,
        "mode": bench.mode,
        "argv": sys.argv,
        "python": args.python,
        "python_version": child_python,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "runs": runs,
        "timeout_s": args.timeout,
        "conns": bench.conns,
        **bench.meta,
        "warmup_s": bench.warmup,
        "seconds": bench.seconds,
        "pinning": pinning,
        "server_cpu": srv_cpu,
        "generator_cpu": cli_cpu,
        "generator_loop": gen_loop,
        "elapsed_s": elapsed,
    }
    results = [
        {
            "server": s,
            "runtime_version": next(
                (r.get("runtime_version") for r in rs if r.get("ok")), None
            ),
            "runs": rs,
            "errors": [r.get("error") for r in rs if not r.get("ok")],
        }
        for s, rs in cells.items()
    ]
    payload = {"meta": meta, "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return (0 if all(r.get("ok") for r in all_runs) else 1), payload


def _run_load(
    bench: LoadBench,
    args: argparse.Namespace,
    servers: list[str],
    runs: int,
    cells: dict[str, list[dict[str, Any]]],
    cpus: tuple[int | None, int | None],
) -> None:
    """Interleaved: run 1 of every server, then run 2, ...; fills ``cells``."""
    unavailable: dict[str, str] = {}
    total = runs * len(servers)
    done = 0
    for rep in range(runs):
        for server in servers:
            done += 1
            prefix = f"[{done}/{total}] {bench.label} {server} run {rep + 1}/{runs}"
            if server in unavailable:
                cells[server].append({"ok": False, "error": unavailable[server]})
                print(f"{prefix}: skipped ({server} unavailable)", file=sys.stderr)
                continue
            record, rc = run_load_once(
                args.python, server, args, cpus, bench.script, bench.client_args
            )
            cells[server].append(record)
            if record["ok"]:
                print(
                    f"{prefix}: {record[bench.rate_key]:,.0f} {bench.unit}, server "
                    f"CPU {record.get('server_cpu', float('nan')):.2f}, generator "
                    f"CPU {record['client_cpu']:.2f}{busy_note(record)}",
                    file=sys.stderr,
                )
            else:
                print(f"{prefix}: ERROR {record['error']}", file=sys.stderr)
                if rc == EXIT_UNAVAILABLE:
                    unavailable[server] = f"skipped: {record['error']}"


def _warn_if_busy(all_runs: list[dict[str, Any]]) -> None:
    busy_runs = [r for r in all_runs if r.get("foreign_cpu_cores", 0.0) > BUSY_LIMIT]
    if busy_runs:
        worst = max(r["foreign_cpu_cores"] for r in busy_runs)
        print(
            f"\nwarning: other processes were busy during {len(busy_runs)} of "
            f"{len(all_runs)} runs (up to {worst:.2f} of a core); with the "
            "server and the generator on one core each, that skews the "
            "figures: rerun when quiet"
        )


def _terminate(signum: int, frame: Any) -> None:
    # SIGTERM / SIGHUP: unwind like Ctrl-C so the running child is killed too
    # (it has its own process group and would not get the signal).
    raise SystemExit(128 + signum)


def build_parser() -> argparse.ArgumentParser:
    doc = (__doc__ or "").strip()
    parser = argparse.ArgumentParser(
        description=doc.splitlines()[0],
        epilog="\n".join(doc.splitlines()[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--suite",
        action="store_true",
        help="the whole suite (workloads, echo, HTTP) with JSON, Markdown and "
        "PNG in --out (make bench; with --quick: make bench-quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smaller sizes ({QUICK_WORKLOADS}); {','.join(QUICK_RUNTIMES)} only",
    )
    parser.add_argument(
        "--skip-net", action="store_true", help="--suite without echo and HTTP"
    )
    parser.add_argument(
        "--out",
        default=str(RESULTS_DIR),
        metavar="DIR",
        help="where --suite writes its files (default benchmarks/results)",
    )
    parser.add_argument(
        "--report",
        metavar="FILE.json",
        help="write the Markdown and plots of an earlier --json/--suite file "
        "beside it, run nothing",
    )
    parser.add_argument(
        "--maxprocs-ab",
        action="store_true",
        help="curcor only: CURCOR_MAXPROCS=1 and =2 interleaved, >= 5 runs each",
    )
    parser.add_argument(
        "--echo",
        action="store_true",
        help="TCP echo: every server in benchmarks/echo.py against one load "
        "generator (--runtimes then names echo servers)",
    )
    parser.add_argument(
        "--http",
        action="store_true",
        help="HTTP hello: every server in benchmarks/http_hello.py against one "
        "load generator (--runtimes then names HTTP servers)",
    )
    parser.add_argument("--http-conns", type=int, default=50, metavar="N")
    parser.add_argument(
        "--http-seconds", type=float, default=3.0, metavar="S", help="counted"
    )
    parser.add_argument(
        "--http-warmup", type=float, default=0.5, metavar="S", help="not counted"
    )
    parser.add_argument("--echo-conns", type=int, default=100, metavar="N")
    parser.add_argument("--echo-size", type=int, default=1024, metavar="BYTES")
    parser.add_argument(
        "--echo-seconds", type=float, default=3.0, metavar="S", help="counted"
    )
    parser.add_argument(
        "--echo-warmup", type=float, default=0.5, metavar="S", help="not counted"
    )
    parser.add_argument(
        "--ab-maxprocs",
        default="1,2",
        metavar="A,B",
        help="the two CURCOR_MAXPROCS values for --maxprocs-ab (default 1,2)",
    )
    parser.add_argument(
        "--runtimes",
        default=None,
        help=f"comma-separated, default {','.join(ALL_RUNTIMES)} "
        f"({','.join(QUICK_RUNTIMES)} with --quick); known: "
        f"{','.join(KNOWN_RUNTIMES)}",
    )
    parser.add_argument(
        "--workloads",
        default=None,
        help=f"name[:n],... default {DEFAULT_WORKLOADS} "
        f"({AB_WORKLOADS} with --maxprocs-ab)",
    )
    parser.add_argument(
        "--runs",
        "-k",
        type=int,
        default=None,
        help="runs per cell, median reported (default 3; 5 minimum with --maxprocs-ab)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="per-run timeout, s (default 300; with --echo/--http, warm-up + "
        "seconds + 40)",
    )
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter for the children"
    )
    parser.add_argument(
        "--curcor-src",
        metavar="DIR",
        help="benchmark the curcor package under DIR (a src/ directory, e.g. "
        "of `git archive HEAD src | tar -x -C /tmp/snap`) instead of the "
        "installed one: prepended to the children's PYTHONPATH",
    )
    parser.add_argument("--json", metavar="FILE", help="also write results here")
    return parser


def precompile_curcor(src: str | None) -> None:
    """Write curcor's bytecode (``__pycache__``) before anything is timed.

    The other runtimes are installed with their bytecode; a checkout of
    curcor has none until something writes it, and with
    PYTHONDONTWRITEBYTECODE set (as on some machines) every child would
    compile curcor's source again: 20-25 ms inside each timed run. compileall
    writes it whatever that variable says, and children then read it.
    """
    import compileall
    import importlib.util

    dirs: list[str] = []
    if src:
        dirs.append(str(Path(src) / "curcor"))
    else:
        spec = importlib.util.find_spec("curcor")
        if spec is not None and spec.submodule_search_locations:
            dirs += list(spec.submodule_search_locations)
        else:  # not installed: workloads.py falls back to the checkout's src/
            dirs.append(str(Path(__file__).resolve().parent.parent / "src" / "curcor"))
    for d in dirs:
        compileall.compile_dir(d, quiet=1)


def main(argv: list[str] | None = None) -> int:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminate)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.curcor_src:
        src = Path(args.curcor_src).resolve()
        if not (src / "curcor" / "__init__.py").is_file():
            parser.error(f"--curcor-src: no curcor/__init__.py under {src}")
        # Every child (workloads, servers, `curcor version`) inherits it.
        paths = [str(src), *filter(None, [os.environ.get("PYTHONPATH")])]
        os.environ["PYTHONPATH"] = os.pathsep.join(paths)

    if args.report:
        return main_report(Path(args.report))
    precompile_curcor(args.curcor_src)
    if args.http:
        if args.echo or args.maxprocs_ab or args.quick or args.workloads:
            parser.error(
                "--http does not combine with --echo/--quick/--maxprocs-ab/--workloads"
            )
        return main_load(http_bench(args, parser), args, parser)[0]
    if args.echo:
        if args.maxprocs_ab or args.quick or args.workloads:
            parser.error(
                "--echo does not combine with --quick/--maxprocs-ab/--workloads"
            )
        return main_load(echo_bench(args, parser), args, parser)[0]
    if args.suite:
        if args.maxprocs_ab or args.json:
            parser.error("--suite does not combine with --maxprocs-ab/--json")
        return main_suite(args, parser)
    return main_cpu(args, parser)[0]


def main_cpu(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[int, dict[str, Any]]:
    """The in-process workloads (or the maxprocs A/B): table, JSON payload."""
    if args.maxprocs_ab:
        runtimes = ["curcor"]
        runs = max(args.runs or 5, 5)
        procs = [p.strip() for p in args.ab_maxprocs.split(",")]
        if len(procs) != 2 or not all(p.isdigit() and int(p) > 0 for p in procs):
            parser.error("--ab-maxprocs takes two positive integers, e.g. 1,2")
        maxprocs_values: list[str | None] = list(procs)
        workload_spec = args.workloads or AB_WORKLOADS
    else:
        default = QUICK_RUNTIMES if args.quick else ALL_RUNTIMES
        runtimes = args.runtimes.split(",") if args.runtimes else list(default)
        runtimes = [r.strip() for r in runtimes if r.strip()]
        for r in runtimes:
            if r not in KNOWN_RUNTIMES and not re.fullmatch(r"curcor-p[1-9]\d*", r):
                parser.error(f"unknown runtime {r!r} (known: {KNOWN_RUNTIMES})")
        runs = args.runs or 3
        maxprocs_values = [None]
        default_spec = QUICK_WORKLOADS if args.quick else DEFAULT_WORKLOADS
        workload_spec = args.workloads or default_spec
    if runs < 1:
        parser.error("--runs must be >= 1")
    try:
        workloads = parse_workloads(workload_spec)
    except ValueError as exc:
        parser.error(str(exc))

    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="curcor-bench-") as tmpdir:
        go_bin = None
        if "go" in runtimes:
            print("# building benchmarks/go ...", file=sys.stderr)
            go_bin, note = build_go(tmpdir)
            print(f"# {note}", file=sys.stderr)
            if go_bin is None:
                runtimes.remove("go")
                notes.append(note)
        mypyc_dir = None
        if MYPYC in runtimes:
            print(f"# building {MYPYC} ...", file=sys.stderr)
            mypyc_dir, note = build_mypyc(tmpdir)
            print(f"# {note}", file=sys.stderr)
            if mypyc_dir is None:
                runtimes.remove(MYPYC)
                notes.append(note)
        cells = plan_cells(workloads, runtimes, maxprocs_values)
        started = time.perf_counter()
        started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        _run_cells(args, cells, runs, go_bin, mypyc_dir)
    elapsed = time.perf_counter() - started
    print(f"# done in {elapsed:.0f} s", file=sys.stderr)
    print()

    mode = "maxprocs-ab" if args.maxprocs_ab else "quick" if args.quick else "full"
    child_python = next(
        (r["python"] for c in cells for r in c.runs if "python" in r), "?"
    )
    m = report.machine()
    print(
        f"curcor benchmarks ({mode}), Python {child_python}, medians of {runs} "
        f"runs, each in its own process; {report.machine_line(m)}"
    )
    for note in notes:
        print(note)
    print()
    if args.maxprocs_ab:
        a, b = maxprocs_values
        ok = ab_table(cells, str(a), str(b))
    else:
        comparison_table(cells)
        ok = all(c.ok_runs() and not c.errors for c in cells)
        print()
        print(
            "x asyncio = asyncio wall / wall (> 1: faster than asyncio); x floor "
            "= wall / floor wall; GC less = 1 - GC s / asyncio GC s; startup "
            "rows time whole processes (see benchmarks/workloads.py)"
        )

    busy_runs = [
        r for c in cells for r in c.runs if r.get("foreign_cpu_cores", 0.0) > BUSY_LIMIT
    ]
    if busy_runs:
        worst = max(r["foreign_cpu_cores"] for r in busy_runs)
        print(
            f"\nwarning: other processes were busy during {len(busy_runs)} of "
            f"{sum(len(c.runs) for c in cells)} runs (up to {worst:.2f} of a "
            "core); on a small machine that skews the figures, rerun when quiet"
        )

    payload: dict[str, Any] = {
        "meta": {
            "date": started_at,
            "mode": mode,
            "argv": sys.argv,
            "python": args.python,
            "python_version": child_python,
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "machine": m,
            "runs": runs,
            "timeout_s": args.timeout,
            "env_curcor_maxprocs": os.environ.get("CURCOR_MAXPROCS"),
            "curcor_src": args.curcor_src,
            "notes": notes,
            "elapsed_s": elapsed,
        },
        "results": [c.summary() for c in cells],
    }
    if args.maxprocs_ab:
        payload["meta"]["ab_maxprocs"] = maxprocs_values
        payload["meta"]["ab_limit"] = AB_LIMIT
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return (0 if ok else 1), payload


def _run_cells(
    args: argparse.Namespace,
    cells: list[Cell],
    runs: int,
    go_bin: str | None,
    mypyc_dir: str | None = None,
) -> None:
    """Interleaved: run 1 of every cell, then run 2, ...; fills ``cells``."""
    unavailable: dict[str, str] = {}
    total = runs * len(cells)
    print(
        f"# {len(cells)} cells x {runs} runs, each in a fresh {args.python},"
        f" timeout {args.timeout:g} s",
        file=sys.stderr,
    )
    done = 0
    for rep in range(runs):
        for cell in cells:
            done += 1
            label = f"{report.workload_label(cell.workload, cell.n)} {cell.runtime}"
            if cell.maxprocs is not None and cell.runtime == "curcor":
                label += f" P={cell.maxprocs}"
            prefix = f"[{done}/{total}] {label} run {rep + 1}/{runs}"
            if cell.runtime in unavailable:
                cell.errors.append(f"skipped: {unavailable[cell.runtime]}")
                print(
                    f"{prefix}: skipped ({cell.runtime} unavailable)", file=sys.stderr
                )
                continue
            record, rc = run_child(args.python, cell, args.timeout, go_bin, mypyc_dir)
            cell.runs.append(record)
            if record["ok"]:
                gc_s = record.get("gc_s")
                gc_text = "" if gc_s is None else f", GC {gc_s:.3f} s"
                print(
                    f"{prefix}: {record['wall_s']:.3f} s{gc_text},"
                    f" {record['peak_rss_mb']:.0f} MB"
                    f"{busy_note(record)}",
                    file=sys.stderr,
                )
            else:
                cell.errors.append(record["error"])
                print(f"{prefix}: ERROR {record['error']}", file=sys.stderr)
                if rc == EXIT_UNAVAILABLE:
                    unavailable[cell.runtime] = record["error"]


def main_suite(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """make bench / bench-quick: every workload, echo and HTTP, then files.

    Full: the defaults of each part, medians of --runs (3). Quick: the quick
    workloads on curcor, asyncio and the floor (3 runs), then echo and HTTP
    with curcor and the asyncio baseline only, one run each of a 0.3 s
    warm-up and a 1 s window.
    """
    started = time.perf_counter()
    mode = "quick" if args.quick else "full"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rc, cpu = main_cpu(argparse.Namespace(**{**vars(args), "json": None}), parser)
    suite: dict[str, Any] = {"workloads": cpu}
    if not args.skip_net:
        for key, make in (("echo", echo_bench), ("http", http_bench)):
            net_args = argparse.Namespace(**vars(args))
            net_args.json = None
            net_args.runtimes = None
            if args.quick:
                net_args.runtimes = (
                    f"curcor,{ECHO_BASELINE if key == 'echo' else HTTP_BASELINE}"
                )
                net_args.runs = 1
                net_args.echo_warmup = net_args.http_warmup = 0.3
                net_args.echo_seconds = net_args.http_seconds = 1.0
            print(file=sys.stderr)
            net_rc, suite[key] = main_load(make(net_args, parser), net_args, parser)
            rc = max(rc, net_rc)

    meta = dict(cpu["meta"])
    meta["mode"] = mode
    meta["elapsed_s"] = time.perf_counter() - started
    meta["command"] = "python " + " ".join(sys.argv)
    meta["versions"] = _versions(suite)
    meta["commit"] = _commit()
    suite = {"meta": meta, **suite}
    if args.quick:
        stem = "quick"
    else:
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d-%H%M")
        stem = f"suite-{stamp}"
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(suite, indent=2) + "\n")
    written = _write_report(suite, out / stem)
    print(f"\nwrote {json_path}, {', '.join(written)}")
    print(f"# suite done in {meta['elapsed_s']:.0f} s", file=sys.stderr)
    return rc


def _commit() -> str | None:
    """The checkout's commit, "+changes" when the tree differs from it; the
    version string the runs report comes from the installed metadata and
    can be older (an editable install keeps the one it was built with)."""

    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", *args], cwd=HERE, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() if out.returncode == 0 else ""

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "..")
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (head + ("+changes" if dirty else "")) or None


def _versions(suite: dict[str, Any]) -> dict[str, Any]:
    """The version of each runtime, from the first successful run of each."""
    versions: dict[str, Any] = {}
    for cell in suite["workloads"]["results"]:
        for run in cell["runs"]:
            if run.get("ok") and run.get("runtime_version"):
                name = run.get("child_runtime", cell["runtime"])
                if name.startswith("floor"):
                    continue
                versions.setdefault(
                    "python" if name == "asyncio" else name, run["runtime_version"]
                )
    return versions


def _write_report(payload: dict[str, Any], prefix: Path) -> list[str]:
    """``prefix``.md and ``prefix``-*.png; the names written."""
    plots, note = report.write_plots(payload, prefix)
    print(f"# {note}", file=sys.stderr)
    md = prefix.with_name(prefix.name + ".md")
    md.write_text(report.suite_markdown(payload, plots))
    return [str(md), *plots]


def main_report(path: Path) -> int:
    """--report FILE.json: the Markdown and plots of an earlier run."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"run.py: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    written = _write_report(payload, path.with_suffix(""))
    print(f"wrote {', '.join(written)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the running child was already killed
        print("run.py: interrupted", file=sys.stderr)
        sys.exit(130)
