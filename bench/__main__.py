"""
`make bench`: run the benchmarks and print one table of figures, measures and targets.

    python -m bench                      # all nine, in the issue's order
    python -m bench retrieval            # retrieval peak RSS, 10k vs 500k messages, beside a plain loop
    python -m bench overhead latency     # a subset
    python -m bench --json results.json  # also keep the raw figures

Each benchmark runs in a fresh Python process (its own imports, connections, limiters and heap, none left
over from the one before), with a throw-away ``AIRFLOW_HOME``; its ``run()`` result comes back as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

from bench.common import print_table, quiet

REPO = Path(__file__).resolve().parents[1]
MARKER = "BENCH-RESULT "


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _overhead(r: dict) -> list[dict]:
    def span(name: str, measure: str) -> str:
        median, low, high = r[f"{name}_{measure}_s"]
        return f"{median:.3f} s ({low:.3f}-{high:.3f})"

    figures = (
        f"{r['calls']} calls, {r['messages']} messages, {r['repetitions']} interleaved repetitions, median "
        f"(range): operator wall {span('operator', 'wall')}, CPU {span('operator', 'cpu')}; plain loop wall "
        f"{span('bare', 'wall')}, CPU {span('bare', 'cpu')}; hook alone {r['hook_wall_ratio']:.2f}x wall, "
        f"{r['hook_cpu_ratio']:.2f}x CPU"
    )
    return [_row(r, figures, f"wall {r['wall_ratio']:.2f}x, CPU {r['cpu_ratio']:.2f}x")]


def _latency(r: dict) -> list[dict]:
    figures = (
        f"{r['calls']} calls x {r['latency_ms']:g} ms, {r['workers']} workers ({r['listing_calls']} "
        f"sequential listing calls): {r['wall_s']:.2f} s, ideal {r['ideal_s']:.2f} s"
    )
    return [_row(r, figures, f"{r['ratio']:.2f}x ideal")]


def _ratelimit(rows: list[dict]) -> list[dict]:
    return [
        _row(
            r,
            f"limit {r['limit']}, client {r['client']}: {r['requests']} calls in {r['wall_s']:.1f} s, "
            f"{r['answered_429']} answered 429",
            f"{_pct(r['use'])} of allowed, {_pct(r['share_429'])} 429",
            name=f"rate limit (burst {r['burst']})",
        )
        for r in rows
    ]


def _incremental(rows: list[dict]) -> list[dict]:
    def runs(r: dict) -> str:
        parts = []
        for run, label in (("full", "full"), ("unchanged", "unchanged"), ("changed", "1% changed")):
            part = f"{label} {r['calls_' + run]} calls ({r['lists_' + run]} list, {r['reads_' + run]} read)"
            if "linkup" in r["benchmark"]:
                part += f" {r['credits_' + run]:g} credits"
            parts.append(part)
        return "; ".join(parts)

    return [
        _row(
            r,
            f"{r['conversations']} conversations, {r['changed']} changed: {runs(r)}",
            f"unchanged: {r['lists_unchanged']} list calls / {r['listing_pages']} pages, "
            f"{r['reads_unchanged']} reads",
        )
        for r in rows
    ]


def _memory(rows: list[dict]) -> list[dict]:
    small, large = rows[0], rows[-1]
    growth = large["export_peak_mb"] - small["export_peak_mb"]
    figures = "; ".join(
        f"{r['size']:,} messages: stage peak {r['stage_peak_mb']:.0f} MB, export peak {r['export_peak_mb']:.0f} MB "
        f"({r['export_seconds']:.0f} s)"
        for r in rows
    )
    return [
        {
            "benchmark": "memory",
            "figures": figures,
            "measure": f"export peak {growth:+.1f} MB",
            "target": "<= +50 MB",
            "met": growth <= 50,
        }
    ]


def _retrieval(rows: list[dict]) -> list[dict]:
    from bench.bench_memory import RETRIEVAL_CONVERSATIONS, RETRIEVAL_LIMIT_MB

    small, large = rows[0], rows[-1]
    growth = large["retrieve_peak_mb"] - small["retrieve_peak_mb"]
    plain = large["plain_peak_mb"] - small["plain_peak_mb"]
    figures = (
        f"ConnectSafely first full read ({RETRIEVAL_CONVERSATIONS:,} conversations) beside a plain requests "
        "loop making the same calls: "
        + "; ".join(
            f"{r['messages']:,} messages: retrieve peak {r['retrieve_peak_mb']:.1f} MB "
            f"({r['retrieve_seconds']:.0f} s), plain {r['plain_peak_mb']:.1f} MB ({r['plain_seconds']:.0f} s)"
            for r in rows
        )
    )
    return [
        {
            "benchmark": "retrieval memory",
            "figures": figures,
            "measure": f"retrieve peak {growth:+.1f} MB (plain loop {plain:+.1f} MB)",
            "target": f"<= +{RETRIEVAL_LIMIT_MB:.0f} MB",
            "met": growth <= RETRIEVAL_LIMIT_MB,
        }
    ]


def _triggerer(r: dict) -> list[dict]:
    rows = []
    for row in r["rows"]:
        figures = (
            f"{row['what']}: {row['succeeded']}/{row['triggers']} fired ({row['waiting_at_start']} still "
            f"waiting at the start), {row['wall_s']:.1f} s, ideal {row['ideal_s']:.1f} s (strict "
            f"{row['strict_ideal_s']:.1f} s); {row['polls']} polls, {row['polls_per_s']:.0f}/s (limit "
            f"{row['rate_limit']:g}/s); {row['full_gcs']} full GC(s), longest {row['max_full_gc_ms']:.0f} ms; "
            f"longest stall outside a full GC {row['max_stall_outside_gc_ms']:.0f} ms (worst: "
            f"{row['worst_stalls']}; outside: {row['worst_outside_gc'] or '-'}); lean pollers (a bare httpx GET, "
            f"waiting on the shared timers as ours: {row['lean_polls']} polls): {row['lean_full_gcs']} full GC(s), "
            f"longest {row['lean_max_full_gc_ms']:.0f} ms, stall outside them "
            f"{row['lean_stall_outside_gc_ms']:.0f} ms; plain pollers (plain httpx, the same number of looks: "
            f"{row['plain_polls']} polls, one every {row['plain_interval_s']:.1f} s each, {row['plain_wall_s']:.1f}"
            f" s): {row['plain_full_gcs']} full GC(s), longest {row['plain_max_full_gc_ms']:.0f} ms, stall outside "
            f"them {row['plain_stall_outside_gc_ms']:.0f} ms; sleeping triggers (no look): "
            f"{row['control_full_gcs']} full GC(s), stall {row['control_stall_ms']:.0f} ms; the loop's first look "
            f"(once, before the run) {row['cold_start_ms']:.0f} ms; run by {row['run_by']}"
        )
        measure = (
            f"{row['ratio']:.2f}x ideal ({row['strict_ratio']:.2f}x strict), stall "
            f"{row['max_loop_stall_ms']:.0f} ms, outside full GCs {row['max_stall_outside_gc_ms']:.0f} ms"
        )
        rows.append(_row(row, figures, measure))
    return rows


def _watchers(r: dict) -> list[dict]:
    def span(values: list[float], unit: str) -> str:
        return f"{values[0]:.0f} {unit} ({values[1]:.0f}-{values[2]:.0f})"

    rows = []
    for row in r["rows"]:
        figures = (
            f"{row['watchers']:,} idle watchers, one connection limited to {row['limit_rps']:g}/s (burst "
            f"{row['burst']}), looks every {row['poll_interval_s']:g} s ({row['demand_rps']:g}/s asked), "
            f"{row['seconds']:g} s x {r['repetitions']}: {span(row['mean_rps'], '/s')} mean, busiest second "
            f"{span(row['max_second_calls'], 'calls')}; full GCs {row['full_gcs']} (longest "
            f"{span(row['gc_pause_ms'], 'ms')}), stall outside them {span(row['stall_outside_gc_ms'], 'ms')}"
            + (
                ""
                if row["gc_freeze"]
                else f"; plain pollers (plain httpx, as many looks): full GCs {row['plain_full_gcs']}, stall "
                f"{span(row['plain_stall_ms'], 'ms')}, outside full GCs {span(row['plain_stall_outside_gc_ms'], 'ms')}"
            )
            + f"; sleeping watchers (no look): stall {span(row['control_stall_ms'], 'ms')}, full GCs "
            f"{row['control_full_gcs']}; first look of the loop {row['cold_start_stall_ms']:.0f} ms (once)"
        )
        measure = (
            f"stall {span(row['stall_ms'], 'ms')}, outside full GCs {span(row['stall_outside_gc_ms'], 'ms')}"
        )
        rows.append(_row(row, figures, measure))
    return rows


def _sandbox(r: dict) -> list[dict]:
    figures = f"{r['requests']:,} requests in {r['seconds']:.1f} s from 8 threads"
    return [_row(r, figures, f"{r['requests_per_second']:,.0f} req/s")]


def _row(r: dict, figures: str, measure: str, name: str | None = None) -> dict[str, Any]:
    return {
        "benchmark": name or r["benchmark"],
        "figures": figures,
        "measure": measure,
        "target": r["target"],
        "met": r["met"],
    }


#: name -> summary of its ``run()`` result as table rows, in the issue's order
BENCHMARKS: dict[str, Callable[[Any], list[dict]]] = {
    "overhead": _overhead,
    "latency": _latency,
    "ratelimit": _ratelimit,
    "incremental": _incremental,
    "memory": _memory,
    "retrieval": _retrieval,
    "triggerer": _triggerer,
    "watchers": _watchers,
    "sandbox": _sandbox,
}


def machine() -> str:
    """Host, CPU model and count, memory and Python: where the figures come from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB"
    except (OSError, ValueError):
        memory = ""
    return (
        f"{platform.node()}: {cpu} x {os.cpu_count()}{memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


#: benchmarks whose entry point is not ``bench.bench_{name}.run``: name -> (module suffix, function)
ENTRY_POINTS: dict[str, tuple[str, str]] = {"retrieval": ("memory", "run_retrieval")}


def _child(name: str) -> int:
    """Run one benchmark in this process and print its result after :data:`MARKER`."""
    quiet()
    module, function = ENTRY_POINTS.get(name, (name, "run"))
    result = getattr(import_module(f"bench.bench_{module}"), function)()
    print(MARKER + json.dumps(result, default=str), flush=True)
    return 0


def _spawn(name: str, home: str) -> Any:
    env = {
        **os.environ,
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    }
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--child", name],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith(MARKER)]
    if out.returncode or not lines:
        raise RuntimeError(f"exit {out.returncode}: {(out.stderr or out.stdout).strip()[-2000:]}")
    return json.loads(lines[-1][len(MARKER) :])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--json", type=Path, help="also write every benchmark's raw result here")
    parser.add_argument("--child", choices=list(BENCHMARKS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")

    rows: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    failed = False
    with tempfile.TemporaryDirectory(prefix="linkmsg-bench-home-") as home:
        for name in args.names or list(BENCHMARKS):
            print(f"running {name} ...", file=sys.stderr, flush=True)
            started = time.monotonic()
            try:
                raw[name] = _spawn(name, home)
                rows += BENCHMARKS[name](raw[name])
            except Exception as exc:  # one broken benchmark must not hide the others' figures
                failed = True
                rows.append({"benchmark": name, "figures": f"FAILED: {exc}"[:300], "measure": "-"})
                rows[-1].update(target="-", met=False)
            print(f"  {name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    print_table(f"linkmsg benchmarks on {machine()}", rows)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": raw}, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
