"""The benchmark's report: the tables it prints and the targets it judges, from one run's figures.

Nothing here measures; every function reads the report dictionary :mod:`bench.suite` builds
(the same one ``--json`` writes), so a report can be rendered and judged again from its file.
"""

from __future__ import annotations

import io
import statistics

from bench.stores import FLOOR, JOURNAL, REFERENCE, SIDE_BY_SIDE, SQLITE

__all__ = ["render", "check_targets", "fmt_spread", "TODAY_DOCUMENT_WRITES_PER_S"]

# One writer at 10,000 trades, document format, before the incremental ledger: the figure the
# document-format target is a multiple of.
TODAY_DOCUMENT_WRITES_PER_S = 36
# reconcile() rows: a new reconciler, or one following the log in each format (bench.suite)
RECONCILE_MODES = {"cold": "cold", "following document": "following, document format",
                   "following journal": "following, journal format"}


def fmt_spread(values, fmt="{:.1f}"):
    """``median [min-max]`` of ``values``, or the one value."""
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def _cells(report: dict) -> dict:
    return {(r["impl"], r["history"], r["writers"]): r for r in report.get("writes", [])}


def _grid(report: dict) -> list[tuple[int, int]]:
    """(history, writers) of every cell measured, in the run's order."""
    seen: dict[tuple[int, int], None] = {}
    for r in report.get("writes", []):
        seen.setdefault((r["history"], r["writers"]))
    return list(seen)


def write_cost_ms(row: dict) -> float:
    """What one write costs on average in a cell: wall time per write, plus (for the journal)
    its checkpoint's extra cost spread over the writes between two checkpoints."""
    return 1000.0 / row["writes_per_s"] + row.get("checkpoint", {}).get("amortised_ms", 0.0)


def _side_by_side(report: dict, w) -> None:
    cells = _cells(report)
    grid = _grid(report)
    names = [s for s in SIDE_BY_SIDE if any((s, n, k) in cells for n, k in grid)]
    if not names:
        return
    w("Side by side: writes/s of all writers (x floor = writes/s / append-fsync-floor's in the cell)\n\n")
    w("| history | writers | " + " | ".join(names) + " | journal / SQLite |\n")
    w("| ---: | ---: |" + " ---: |" * (len(names) + 1) + "\n")
    for n, k in grid:
        floor = cells.get((FLOOR, n, k))
        row = []
        for s in names:
            c = cells.get((s, n, k))
            if c is None:
                row.append("-")
            elif floor:
                row.append(f"{c['writes_per_s']:,.0f} ({c['writes_per_s'] / floor['writes_per_s']:.2f}x)")
            else:
                row.append(f"{c['writes_per_s']:,.0f}")
        j, s = cells.get((JOURNAL, n, k)), cells.get((SQLITE, n, k))
        row.append(f"{j['writes_per_s'] / s['writes_per_s']:.2f}x" if j and s else "-")
        w(f"| {n:,} | {k} | " + " | ".join(row) + " |\n")
    w("\nSide by side: worst write, ms (max over the cell's runs / median; the journal's max includes "
      "its checkpoint run)\n\n")
    w("| history | writers | " + " | ".join(names) + " |\n")
    w("| ---: | ---: |" + " ---: |" * len(names) + "\n")
    for n, k in grid:
        row = []
        for s in names:
            c = cells.get((s, n, k))
            row.append("-" if c is None else f"{c['max_ms']:.1f} / {c['ms_per_write']:.2f}")
        w(f"| {n:,} | {k} | " + " | ".join(row) + " |\n")
    w("\n")


def _checkpoints(report: dict, w) -> None:
    rows = [r for r in report.get("writes", []) if r.get("checkpoint")]
    if not rows:
        return
    w("| journal checkpoint | history | writers | checkpoint run's worst write ms | writes between "
      "checkpoints | amortised ms/write |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
    for r in rows:
        c = r["checkpoint"]
        w(f"| {r['impl']} | {r['history']:,} | {r['writers']} | {c['worst_ms']:.1f} | "
          f"{c['writes_between']:,.0f} | {c['amortised_ms']:.4f} |\n")
    w("\n")


def render(report: dict) -> str:
    m = report["machine"]
    out = io.StringIO()
    w = out.write
    w(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, "
      f"Python {m['python']}, SQLite {m['sqlite']}, files on {m['filesystem']}, "
      f"load average at start {', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}\n")
    w(f"repeats per cell: {report['config']['repeat']}, shown as median [min-max]. A write is one "
      f"open or one close transaction; its latency includes waiting for the lock. writes/s counts "
      f"every writer's writes over the cell's wall time. x tradestore = writes/s / tradestore "
      f"(fsync on) writes/s in the same cell. reconcile() cold: a new reconciler, an empty output "
      f"directory; following: the next cycle of a reconciler that has run (`tradestore reconcile "
      f"--every`), after one write.\n\n")
    for impl, why in report.get("left_out", {}).items():
        w(f"{impl}: not available here: {why}\n\n")
    if report.get("writes"):
        _side_by_side(report, w)
        w("| store | history | writers | ms/write (median) | p95 ms | max ms | writes/s (all writers) "
          "| x tradestore |\n")
        w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
        for r in report["writes"]:
            ms = [x["ms_per_write"] for x in r["runs"]]
            ws = [x["writes_per_s"] for x in r["runs"]]
            p95 = statistics.median(x["p95_ms"] for x in r["runs"])
            ratio = r.get("ratio_to_reference")
            w(f"| {r['impl']} | {r['history']:,} | {r['writers']} | {fmt_spread(ms, '{:.2f}')} | "
              f"{p95:.1f} | {r['max_ms']:.1f} | {fmt_spread(ws, '{:.0f}')} | "
              f"{'-' if ratio is None else f'{ratio:.2f}'} |\n")
        w("\n")
        _checkpoints(report, w)
    if report.get("reconcile"):
        w("| reconcile() | history | seconds |\n| --- | ---: | ---: |\n")
        for r in report["reconcile"]:
            w(f"| {RECONCILE_MODES.get(r.get('mode', 'cold'), r.get('mode'))} | {r['history']:,} | "
              f"{fmt_spread(r['seconds'], '{:.3f}')} |\n")
        w("\n")
    if report.get("handoff"):
        w("| lock hand-off between two processes | median | p90 | max |\n| --- | ---: | ---: | ---: |\n")
        for r in report["handoff"]:
            w(f"| {r['lock']} ({r['rounds']} hand-offs) | {r['median_us']:.0f} us | "
              f"{r['p90_us']:.0f} us | {r['max_us']:.0f} us |\n")
        w("\n")
    if report.get("rss"):
        w(f"| peak RSS of one writer, history {report['rss'][0]['history']:,} | peak | interpreter + imports |\n")
        w("| --- | ---: | ---: |\n")
        for r in report["rss"]:
            w(f"| {r['impl']} | {r['rss_peak_kib'] / 1024:.1f} MiB | {r['rss_start_kib'] / 1024:.1f} MiB |\n")
        w("\n")
    if report.get("targets"):
        w("targets:\n")
        for t in report["targets"]:
            mark = ("PASS" if t["ok"] else "FAIL") if t.get("judged", True) else ("info: met" if t["ok"]
                                                                                else "info: not met")
            w(f"  [{mark}] {t['name']}: {t['detail']}\n")
    return out.getvalue()


def check_targets(report: dict) -> list[dict]:
    """The performance targets, judged on this run's figures (only the cells this run measured).

    Each is ``{"name", "ok", "detail"}``; one with ``"judged": False`` is reported and never
    fails a run.
    """
    targets = []
    cells = _cells(report)
    for n in (1000, 10000):
        ours, seed = cells.get((REFERENCE, n, 1)), cells.get(("seed-pattern", n, 1))
        if ours and seed:
            x = ours["writes_per_s"] / seed["writes_per_s"]
            targets.append({"name": f">= 5x seed-pattern writes/s at {n:,} trades, one writer, fsync on",
                            "ok": x >= 5, "detail": f"{x:.1f}x"})
    small, large = cells.get((JOURNAL, 1000, 1)), cells.get((JOURNAL, 100000, 1))
    if small and large:
        a, b = write_cost_ms(small), write_cost_ms(large)
        targets.append({"name": "tradestore-journal write cost at 100,000 trades <= 1.5x its cost at 1,000, "
                                "one writer (checkpoints amortised)",
                        "ok": b <= 1.5 * a, "detail": f"{b / a:.2f}x ({b:.2f} ms vs {a:.2f} ms per write)"})
    for k in (1, 4):
        j, s = cells.get((JOURNAL, 10000, k)), cells.get((SQLITE, 10000, k))
        if j and s:
            t = {"name": f"tradestore-journal writes/s >= sqlite-wal-full's at 10,000 trades, "
                         f"{'one writer' if k == 1 else f'{k} writers'}",
                 "ok": j["writes_per_s"] >= s["writes_per_s"],
                 "detail": f"{j['writes_per_s']:,.0f} vs {s['writes_per_s']:,.0f} ({j['writes_per_s'] / s['writes_per_s']:.2f}x)"}
            if k != 1:
                t["judged"] = False  # the target is one writer's; with competing writers it is reported
            targets.append(t)
    doc = cells.get((REFERENCE, 10000, 1))
    if doc:
        goal = 3 * TODAY_DOCUMENT_WRITES_PER_S
        targets.append({"name": f"tradestore (document format) >= {goal} writes/s at 10,000 trades, one writer "
                                f"(3x the {TODAY_DOCUMENT_WRITES_PER_S} before the incremental ledger)",
                        "ok": doc["writes_per_s"] >= goal, "detail": f"{doc['writes_per_s']:,.0f} writes/s"})
    for r in report.get("reconcile", []):
        mode = r.get("mode", "cold")
        if r["history"] in (10000, 100000) and mode in ("cold", "following journal"):
            what = "" if mode == "cold" else f" ({RECONCILE_MODES[mode]})"
            targets.append({"name": f"reconcile() of {r['history']:,} trades < 1 s{what}", "ok": r["median_s"] < 1.0,
                            "detail": f"{r['median_s']:.3f} s"})
    if JOURNAL in report.get("left_out", {}) and report.get("writes"):
        targets.append({"name": "tradestore-journal targets", "ok": False, "judged": False,
                        "detail": f"not measured: {report['left_out'][JOURNAL]}"})
    return targets
