"""Benchmark reports: the machine, the ratio rows, Markdown and PNG plots.

``run.py`` calls these after a run; ``run.py --report FILE.json`` calls them on
a JSON it wrote earlier (this suite's, or the older ``--json`` files of
spawn/pingpong, echo and HTTP runs in ``results/``). Standard library only,
except :func:`write_plots`, which needs matplotlib (the ``bench`` extra) and
says so when it is missing.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

BASELINE = "asyncio"
FLOOR = "floor"
# GC less is left out when asyncio spent less than this in GC: a ratio of
# two near-zero times is noise.
GC_LESS_MIN = 0.001


# ------------------------------------------------------------------ machine


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def cgroup_cpu_quota() -> str:
    """The cgroup CPU limit as text: "none", "1.5 CPUs", or "unknown"."""
    v2 = _read("/sys/fs/cgroup/cpu.max")
    if v2 is not None:
        quota, period = v2.split()[:2]
        if quota == "max":
            return "none (cpu.max = max)"
        return f"{int(quota) / int(period):g} CPUs (cpu.max = {v2.strip()})"
    quota_v1 = _read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    period_v1 = _read("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
    if quota_v1 is not None and period_v1 is not None:
        if int(quota_v1) < 0:
            return "none (cfs_quota_us = -1)"
        return f"{int(quota_v1) / int(period_v1):g} CPUs (cgroup v1)"
    return "unknown (no cgroup CPU files)"


def machine() -> dict[str, Any]:
    """What the figures depend on: CPUs, quota, memory, OS, interpreter."""
    cpuinfo = _read("/proc/cpuinfo") or ""
    model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.splitlines()
            if ":" in ln and ln.split(":", 1)[0].strip() == "model name"
        ),
        platform.processor() or "unknown",
    )
    meminfo = _read("/proc/meminfo") or ""
    mem_kib = next(
        (
            int(ln.split()[1])
            for ln in meminfo.splitlines()
            if ln.startswith("MemTotal")
        ),
        None,
    )
    getaffinity = getattr(os, "sched_getaffinity", None)
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(getaffinity(0)) if getaffinity else os.cpu_count(),
        "cgroup_cpu_quota": cgroup_cpu_quota(),
        "cpu_model": model,
        "mem_total_gib": round(mem_kib / 1024**2, 1) if mem_kib else None,
        "platform": platform.platform(),
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_build": " ".join(platform.python_build()),
        "gil": getattr(sys, "_is_gil_enabled", lambda: True)(),
        "loadavg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def machine_line(m: dict[str, Any]) -> str:
    """One line; fields an older JSON lacks are left out."""
    cpus = f"{m.get('cpu_count')} CPUs"
    if m.get("usable_cpus") is not None:
        cpus += f" ({m['usable_cpus']} usable; cgroup CPU quota: "
        cpus += f"{m.get('cgroup_cpu_quota')})"
    parts = [cpus]
    if m.get("cpu_model"):
        parts.append(str(m["cpu_model"]))
    if m.get("mem_total_gib"):
        parts.append(f"{m['mem_total_gib']} GiB RAM")
    text = ", ".join(parts) + f"; {m.get('platform')}; "
    text += f"{m.get('python_implementation', 'CPython')} {m.get('python_version')}"
    if not m.get("gil", True):
        text += ", free-threaded"
    load = m.get("loadavg_at_start")
    if load:
        text += f", load average {load[0]:.2f} at start"
    return text


# ------------------------------------------------------------------ rows


def human_n(n: int) -> str:
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= size and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def workload_label(workload: str, n: int) -> str:
    if workload == "tree":
        return f"tree depth {n}"
    if workload in ("startup", "version"):
        return f"{workload} (x{n})"
    return f"{workload} {human_n(n)}"


def cpu_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians and ratios per cell, from the cell summaries in the JSON.

    x asyncio = asyncio wall / wall (> 1: faster than asyncio); x floor =
    wall / floor wall (how many times the floor's time; >= 1 for any real
    runtime); GC less = 1 - GC s / asyncio GC s, when asyncio's GC s is at
    least GC_LESS_MIN.
    """
    index = {(r["workload"], r["n"], r["runtime"]): r for r in results}
    rows = []
    for r in results:
        med = r.get("median", {})
        row: dict[str, Any] = {
            "workload": r["workload"],
            "n": r["n"],
            "label": workload_label(r["workload"], r["n"]),
            "runtime": r["runtime"],
            "wall_s": med.get("wall_s"),
            "gc_s": med.get("gc_s"),
            "gc_collections": med.get("gc_collections"),
            "peak_rss_mb": med.get("peak_rss_mb"),
            "import_s": med.get("import_s"),
            "spread": r.get("wall_spread"),
            "runs": f"{r.get('runs_ok', 0)}/{r.get('runs_total', 0)}",
            "error": None,
            "x_asyncio": None,
            "x_floor": None,
            "gc_less": None,
        }
        if not r.get("runs_ok"):
            errors = r.get("errors") or ["not run"]
            row["error"] = errors[0]
            rows.append(row)
            continue
        wall, gc_s = row["wall_s"], row["gc_s"]
        base = index.get((r["workload"], r["n"], BASELINE))
        if base and base.get("runs_ok"):
            b_wall = base["median"].get("wall_s")
            b_gc = base["median"].get("gc_s")
            row["x_asyncio"] = b_wall / wall if b_wall and wall else None
            if b_gc is not None and b_gc >= GC_LESS_MIN and gc_s is not None:
                row["gc_less"] = 1 - gc_s / b_gc
        floor = index.get((r["workload"], r["n"], FLOOR))
        if floor and floor.get("runs_ok"):
            f_wall = floor["median"].get("wall_s")
            row["x_floor"] = wall / f_wall if f_wall and wall else None
        rows.append(row)
    return rows


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if digits == 3 and value >= 10:
        return f"{value:.2f}"
    return f"{value:.{digits}f}"


def fmt_count(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}".replace("-", "\u2212")


CPU_HEADERS = [
    "workload",
    "runtime",
    "wall s",
    "GC s",
    "colls",
    "RSS MB",
    "x asyncio",
    "x floor",
    "GC less",
    "spread",
    "runs",
]


def cpu_cells(row: dict[str, Any]) -> list[str]:
    """One row of the table as text; an error row has a message last."""
    if row["error"] is not None:
        return [row["label"], row["runtime"], "ERROR", row["error"]]
    wall = fmt(row["wall_s"])
    if row.get("import_s") is not None:
        wall += f" (import {row['import_s'] * 1000:.1f} ms)"
    return [
        row["label"],
        row["runtime"],
        wall,
        fmt(row["gc_s"]),
        fmt_count(row["gc_collections"]),
        fmt(row["peak_rss_mb"], 1),
        fmt(row["x_asyncio"], 2),
        fmt(row["x_floor"], 2),
        fmt_pct(row["gc_less"]),
        fmt_pct(row["spread"]),
        row["runs"],
    ]


# ------------------------------------------------------------------ markdown


def _md_table(headers: list[str], rows: list[list[str]], right_from: int) -> str:
    align = ["---" if i < right_from else "---:" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    for row in rows:
        cells = row + [""] * (len(headers) - len(row))
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


# Column order of the matrix and the plots; other names follow in the order
# they appear.
RUNTIME_ORDER = (
    "curcor",
    "curcor-p1",
    "curcor-p2",
    "curcor-defgc",
    "asyncio",
    "uvloop",
    "trio",
    "floor",
    "floor-defgc",
    "go",
)


def _runtimes_in_order(rows: list[dict[str, Any]]) -> list[str]:
    names = list(dict.fromkeys(r["runtime"] for r in rows))
    known = [n for n in RUNTIME_ORDER if n in names]
    return known + [n for n in names if n not in RUNTIME_ORDER]


def cpu_markdown(rows: list[dict[str, Any]]) -> str:
    """A matrix of median wall times, then the full table with ratios."""
    runtimes = _runtimes_in_order(rows)
    by = {(r["label"], r["runtime"]): r for r in rows}
    labels = list(dict.fromkeys(r["label"] for r in rows))
    matrix = []
    for label in labels:
        line = [label]
        for rt in runtimes:
            r = by.get((label, rt))
            if r is None:
                line.append("")
            elif r["error"] is not None:
                line.append("error")
            else:
                line.append(fmt(r["wall_s"]))
        matrix.append(line)
    parts = [
        "Median wall time, seconds (lower is better; empty: not applicable):",
        "",
        _md_table(["workload", *runtimes], matrix, 1),
        "",
        "Every figure, with the ratios (x asyncio = asyncio wall / wall, > 1 "
        "is faster than asyncio; x floor = wall / floor wall, how many times "
        "the floor's time; GC less = 1 - GC s / asyncio GC s):",
        "",
        _md_table(CPU_HEADERS, [cpu_cells(r) for r in rows], 2),
    ]
    return "\n".join(parts)


def load_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Medians per server of an echo or HTTP payload, with the ratio."""
    meta = payload.get("meta", {})
    mode = meta.get("mode", "echo")
    rate_key = "req_per_s" if mode == "http" else "msg_per_s"
    baseline = "asyncio-h11" if mode == "http" else "asyncio-streams"

    def med(runs: list[dict[str, Any]], key: str) -> float | None:
        values = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(values) if values else None

    base_runs = next(
        (
            [r for r in res["runs"] if r.get("ok")]
            for res in payload.get("results", [])
            if res["server"] == baseline
        ),
        [],
    )
    base = med(base_runs, rate_key)
    rows = []
    for res in payload.get("results", []):
        ok = [r for r in res["runs"] if r.get("ok")]
        rate = med(ok, rate_key)
        rows.append(
            {
                "mode": mode,
                "server": res["server"],
                "rate": rate,
                "unit": "req/s" if mode == "http" else "msg/s",
                "baseline": baseline,
                "x_baseline": rate / base if rate and base else None,
                "server_cpu": med(ok, "server_cpu"),
                "client_cpu": med(ok, "client_cpu"),
                "server_rss_mb": med(ok, "server_peak_rss_mb"),
                "runs": f"{len(ok)}/{len(res['runs'])}",
                "error": None if ok else (res.get("errors") or ["not run"])[0],
            }
        )
    return rows


def load_markdown(payload: dict[str, Any]) -> str:
    rows = load_rows(payload)
    if not rows:
        return ""
    meta = payload.get("meta", {})
    unit, baseline = rows[0]["unit"], rows[0]["baseline"]
    headers = ["server", unit, f"x {baseline}", "srv CPU", "gen CPU"]
    headers += ["srv RSS MB", "runs"]
    body = []
    for r in rows:
        if r["error"] is not None:
            body.append([r["server"], "ERROR", r["error"]])
            continue
        body.append(
            [
                r["server"],
                f"{r['rate']:,.0f}",
                fmt(r["x_baseline"], 2),
                fmt(r["server_cpu"], 2),
                fmt(r["client_cpu"], 2),
                fmt(r["server_rss_mb"], 1),
                r["runs"],
            ]
        )
    what = (
        f"{meta.get('conns')} keep-alive connections, GET / -> hello"
        if meta.get("mode") == "http"
        else f"{meta.get('conns')} connections, {meta.get('size')}-byte messages"
    )
    head = (
        f"{what}; {meta.get('warmup_s')} s warm-up, {meta.get('seconds')} s "
        f"counted; {meta.get('pinning', '')}:"
    )
    return head + "\n\n" + _md_table(headers, body, 1)


def _json_text(payload: dict[str, Any]) -> str:
    import json

    return json.dumps(payload.get("workloads", payload).get("results", []))


def suite_markdown(payload: dict[str, Any], plots: list[str]) -> str:
    """The whole report of a suite (or older) JSON as Markdown."""
    meta = payload.get("meta", {})
    m = meta.get("machine") or {
        "cpu_count": meta.get("cpu_count"),
        "platform": meta.get("platform"),
        "python_version": meta.get("python_version"),
    }
    out = [
        f"# curcor benchmarks ({meta.get('mode', '?')}), {meta.get('date', '?')}",
        "",
        f"Machine: {machine_line(m)}.",
        "",
    ]
    if meta.get("command"):
        commit = f" (checkout {meta['commit']})" if meta.get("commit") else ""
        out += [f"Command: `{meta['command']}`{commit}.", ""]
    if meta.get("versions"):
        versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
        out += [f"Versions: {versions}.", ""]
    runs = meta.get("runs")
    how = (
        f"Medians of {runs} runs, each in its own process, runs interleaved "
        "(run 1 of every cell, then run 2, ...)."
    )
    if '"floor"' in _json_text(payload):
        how += (
            " The floor (benchmarks/floor.py) is a deque and `coro.send` with "
            "no features (no cancellation, no timers beyond what a workload "
            "needs, no I/O, one thread), run with curcor's governed GC "
            "settings; floor-defgc is the same with CPython's default GC, as "
            'curcor-defgc is curcor-p2 with gc = "default".'
        )
    out += [how, ""]
    for note in meta.get("notes", []):
        out += [f"- {note}"]
    if meta.get("notes"):
        out.append("")
    workloads = payload.get("workloads")
    if (
        workloads is None
        and "results" in payload
        and meta.get("mode")
        not in (
            "echo",
            "http",
        )
    ):
        workloads = payload  # an older spawn/pingpong --json file
    if workloads is not None:
        rows = cpu_rows(workloads["results"])
        out += ["## Workloads", "", cpu_markdown(rows), ""]
        busy = [
            r
            for res in workloads["results"]
            for r in res.get("runs", [])
            if r.get("foreign_cpu_cores", 0.0) > 0.25
        ]
        if busy:
            worst = max(r["foreign_cpu_cores"] for r in busy)
            total = sum(len(res.get("runs", [])) for res in workloads["results"])
            out += [
                f"Other processes used more than a quarter of a core during "
                f"{len(busy)} of {total} runs (up to {worst:.2f} cores).",
                "",
            ]
    for key, title in (("echo", "Echo"), ("http", "HTTP hello")):
        section = payload.get(key)
        if section is None and meta.get("mode") == key:
            section = payload
        if section:
            out += [f"## {title}", "", load_markdown(section), ""]
    if plots:
        out += ["## Plots", ""]
        out += [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
        out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------ plots


def write_plots(payload: dict[str, Any], prefix: Path) -> tuple[list[str], str]:
    """PNG plots beside ``prefix``: (the files written, a line saying so)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "plots: skipped (matplotlib missing: pip install -e .[bench])"
    written: list[str] = []
    workloads = payload.get("workloads")
    if workloads is None and payload.get("meta", {}).get("mode") not in (
        "echo",
        "http",
    ):
        workloads = payload if "results" in payload else None
    if workloads is not None:
        rows = [r for r in cpu_rows(workloads["results"]) if r["error"] is None]
        specs = [
            ("wall", "wall_s", "median wall time, s (log scale)", True),
            ("gc", "gc_s", "median GC time, s (log scale; 0 not drawn)", True),
            ("rss", "peak_rss_mb", "median peak RSS, MiB (log scale)", True),
        ]
        for name, key, ylabel, log in specs:
            path = prefix.with_name(f"{prefix.name}-{name}.png")
            _grouped_bars(plt, rows, key, ylabel, log, path)
            written.append(str(path))
    nets: list[dict[str, Any]] = [
        payload[k] for k in ("echo", "http") if payload.get(k) is not None
    ]
    if payload.get("meta", {}).get("mode") in ("echo", "http"):
        nets = [payload]
    if nets:
        path = prefix.with_name(f"{prefix.name}-net.png")
        fig, axes = plt.subplots(1, len(nets), figsize=(6 * len(nets), 4))
        axes_list = list(axes) if len(nets) > 1 else [axes]
        for ax, net in zip(axes_list, nets, strict=True):
            rows = [r for r in load_rows(net) if r["rate"]]
            ax.bar([r["server"] for r in rows], [r["rate"] for r in rows])
            ax.set_ylabel(rows[0]["unit"] if rows else "")
            ax.set_title(f"{net['meta'].get('mode')} (median, higher is better)")
            ax.tick_params(axis="x", rotation=30)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(str(path))
    return written, f"plots: {', '.join(Path(p).name for p in written)}"


def _grouped_bars(
    plt: Any,
    rows: list[dict[str, Any]],
    key: str,
    ylabel: str,
    log: bool,
    path: Path,
) -> None:
    labels = list(dict.fromkeys(r["label"] for r in rows))
    runtimes = _runtimes_in_order(rows)
    by = {(r["label"], r["runtime"]): r.get(key) for r in rows}
    width = 0.8 / max(1, len(runtimes))
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(labels)), 4.5))
    for i, rt in enumerate(runtimes):
        xs, ys = [], []
        for j, label in enumerate(labels):
            value = by.get((label, rt))
            if value:  # None or 0 cannot be drawn on a log scale
                xs.append(j + (i - (len(runtimes) - 1) / 2) * width)
                ys.append(value)
        ax.bar(xs, ys, width=width, label=rt)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right")
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small", ncol=min(4, len(runtimes)))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
