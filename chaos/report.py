"""Campaign reports: the verdict table for the terminal, and JSON + HTML files for people.

The HTML page opens with a short summary of what failed or was not proven, then draws, per
scenario and per round, one SVG timeline with a lane per process: a filled bar for every
interval the process held the lock (so overlapping critical sections would be visible at
once), a thin tick for every operation (green ok, grey rejected), an orange mark where an
operation was cut off by a kill (its end is unknown), and a red cross for every kill. A
scenario with no competing processes (crash points, power loss) says what it did instead.
"""

from __future__ import annotations

import html
import json
import pathlib
import textwrap
from typing import Iterable

from tradestore_harness.result import NOT_APPLICABLE, ScenarioResult

COLUMNS = ("scenario", "verdict", "invoked", "ok", "rejected", "unknown", "kills/cut", "crash pts",
           "corrupt inj/healed", "states", "violations", "time")
TEXT_COLUMNS = (0, 1, 10)  # left-aligned

LEGEND = textwrap.fill("columns: operations invoked = ok (acknowledged) + rejected (refused or raised) + unknown "
          "(cut off by a kill: may or may not be in the log); kills/cut = SIGKILLs / of them, kills that cut a "
                        "write between its lock and its acknowledgement; crash pts = file-system "
          "calls crashed at or faulted; corrupt inj/healed = files damaged / healed by one reconcile; "
          "states = log versions or derived sets checked; violations = properties that failed", 110)


def _row(r: ScenarioResult) -> list[str]:
    violations = ", ".join(sorted({v.property for v in r.violations})) or "-"
    return [r.scenario, "n/a" if r.verdict == NOT_APPLICABLE else r.verdict, str(r.invoked), str(r.ok), str(r.rejected), str(r.unknown), f"{r.kills}/{r.writes_cut}",
            str(r.crash_points), f"{r.corruptions_injected}/{r.corruptions_healed}",
            str(r.states_checked), violations, f"{r.elapsed_s:.1f}s"]


def by_property(results: Iterable[ScenarioResult]) -> dict[str, dict[str, int]]:
    """Violated property -> {scenario -> number of violations}, in first-seen order."""
    summary: dict[str, dict[str, int]] = {}
    for r in results:
        for v in r.violations:
            per = summary.setdefault(v.property, {})
            per[r.scenario] = per.get(r.scenario, 0) + 1
    return summary


def findings(results: Iterable[ScenarioResult], per_scenario: int = 3) -> str:
    """What the user acts on: a per-property summary, the first violations of each scenario,
    why each NOT PROVEN scenario is not proven, and why a scenario did not apply."""
    results = list(results)
    lines = []
    summary = by_property(results)
    if summary:
        lines.append("violated properties:")
        for prop, per in summary.items():
            where = ", ".join(f"{name} ({n})" for name, n in per.items())
            lines.append(f"  {prop}: {sum(per.values())} in {where}")
        lines.append("first violations:")
    for r in results:
        for v in r.violations[:per_scenario]:
            lines.append(f"  {r.scenario}: {v.property}: {v.detail}")
        if len(r.violations) > per_scenario:
            lines.append(f"  {r.scenario}: ... and {len(r.violations) - per_scenario} more")
    for r in results:
        if r.verdict == "NOT PROVEN":
            lines.append(f"  {r.scenario}: NOT PROVEN: {'; '.join(r.unproven)}")
        elif r.not_applicable is not None:
            lines.append(f"  {r.scenario}: not applicable: {r.not_applicable}")
    return "\n".join(lines)


def table(results: Iterable[ScenarioResult]) -> str:
    """A plain-text verdict table, one row per scenario."""
    rows = [list(COLUMNS)] + [_row(r) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.ljust(w) if i in TEXT_COLUMNS else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: pathlib.Path, summary: dict, results: list[ScenarioResult], timelines: dict) -> None:
    doc = dict(summary, scenarios=[dict(r.to_dict(), timeline=timelines.get(r.scenario)) for r in results])
    path.write_text(json.dumps(doc, indent=1, default=repr) + "\n", encoding="utf-8")


_COLORS = {"ok": "#2e9e44", "fail": "#9a9a9a", "unknown": "#f08c00"}


def svg_timeline(data: dict, width: int = 1100, lane_h: int = 22) -> str:
    """One SVG for one round: a lane per process with lock holds, operations and kills. An
    operation cut off by a kill (no outcome) is a mark at its start, not a bar to the end."""
    lanes = data.get("lanes") or []
    span = max(data.get("t1") or 0.0, 1e-6)
    left = 170
    scale = (width - left - 10) / span
    height = lane_h * len(lanes) + 24
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="monospace" font-size="11">']
    for n, lane in enumerate(lanes):
        y = n * lane_h
        label = html.escape(f"{lane['worker']} {lane['pid']}")
        parts.append(f'<text x="2" y="{y + 14}">{label}</text>')
        parts.append(f'<line x1="{left}" y1="{y + lane_h - 2}" x2="{width - 10}" y2="{y + lane_h - 2}" stroke="#eee"/>')
        for start, end in lane["locks"]:
            w = max((end - start) * scale, 0.8)
            parts.append(f'<rect x="{left + start * scale:.2f}" y="{y + 3}" width="{w:.2f}" height="{lane_h - 8}" '
                         f'fill="#3b6fd4" fill-opacity="0.55"><title>lock held {start:.4f}s to {end:.4f}s</title></rect>')
        for start, end, f, outcome in lane["ops"]:
            x1 = left + start * scale
            if end is None:  # cut off: it may or may not have taken effect; its end is unknown
                yy = y + lane_h - 4
                parts.append(f'<path d="M{x1:.2f},{yy - 4} l4,4 l-4,4 l-4,-4 z" fill="{_COLORS["unknown"]}">'
                             f'<title>{html.escape(f)} unknown (cut off), invoked at {start:.4f}s</title></path>')
                continue
            x2 = left + max(end * scale, start * scale + 1)
            color = _COLORS.get(outcome, "#000")
            parts.append(f'<line x1="{x1:.2f}" y1="{y + lane_h - 4}" x2="{x2:.2f}" y2="{y + lane_h - 4}" '
                         f'stroke="{color}" stroke-width="3"><title>{html.escape(f)} {outcome} '
                         f'{start:.4f}s to {end:.4f}s</title></line>')
        for t in lane["kills"]:
            x = left + t * scale
            parts.append(f'<text x="{x - 4:.2f}" y="{y + 15}" fill="#d00" font-weight="bold">'
                         f'x<title>SIGKILL at {t:.4f}s</title></text>')
    axis_y = lane_h * len(lanes) + 16
    parts.append(f'<text x="{left}" y="{axis_y}">0 s</text>')
    parts.append(f'<text x="{width - 80}" y="{axis_y}">{span:.3f} s</text>')
    parts.append("</svg>")
    return "".join(parts)


def _what_it_did(r: ScenarioResult) -> str:
    """For a scenario with no process timeline (it crashes, faults or power-cuts one process's
    file-system calls): what it did, in numbers and its own notes."""
    done = [f"{r.invoked} operations ({r.ok} ok, {r.rejected} rejected, {r.unknown} unknown)"]
    if r.crash_points:
        done.append(f"{r.crash_points} file-system calls crashed at or faulted")
    if r.states_checked:
        done.append(f"{r.states_checked} states checked")
    if r.corruptions_injected:
        done.append(f"{r.corruptions_injected} files damaged")
    return (f"<p>No competing processes to draw: {html.escape('; '.join(done))}.</p>")


def _timelines(r: ScenarioResult, data: dict | None) -> str:
    rounds = (data or {}).get("rounds") or []
    if not rounds:
        return _what_it_did(r)
    out = []
    for group in rounds:
        if len(rounds) > 1 or group.get("label"):
            out.append(f"<h3>{html.escape(group.get('label') or r.scenario)}</h3>")
        out.append(svg_timeline(group))
    return "".join(out)


def _summary(results: list[ScenarioResult]) -> str:
    """The short list at the top of the page: what failed or was not proven, and why."""
    items = []
    for prop, per in by_property(results).items():
        where = ", ".join(f"{html.escape(name)} ({n})" for name, n in per.items())
        items.append(f"<li><b>{html.escape(prop)}</b> violated {sum(per.values())} times: {where}</li>")
    for r in results:
        if r.verdict == "NOT PROVEN":
            items.append(f"<li><b>{html.escape(r.scenario)}</b> NOT PROVEN: {html.escape('; '.join(r.unproven))}</li>")
    return f"<ul class=summary>{''.join(items)}</ul>" if items else ""


def write_html(path: pathlib.Path, summary: dict, results: list[ScenarioResult], timelines: dict) -> None:
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _row(r)) + "</tr>" for r in results)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    sections = []
    for r in results:
        violations = "".join(f"<li><b>{html.escape(v.property)}</b>: {html.escape(v.detail)}</li>"
                             for v in r.violations[:50])
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in r.notes + [f"NOT PROVEN: {u}" for u in r.unproven])
        if r.not_applicable:
            notes += f"<li>not applicable: {html.escape(r.not_applicable)}</li>"
        sections.append(
            f"<h2>{html.escape(r.scenario)}: {html.escape(r.verdict)}</h2>"
            f"<ul>{violations}{notes}</ul>{'' if r.not_applicable else _timelines(r, timelines.get(r.scenario))}")
    verdict = html.escape(summary["verdict"])
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>chaos report</title>
<style>body{{font-family:sans-serif;margin:1em}} td,th{{padding:2px 8px;border-bottom:1px solid #ddd;font-family:monospace}}</style>
</head><body><h1>{verdict}</h1>{_summary(results)}
<p>target <b>{html.escape(summary['target'])}</b>, seed <b>{summary['seed']}</b>,
{summary['elapsed_s']:.1f} s. One timeline per round; lanes are processes; blue bars are lock-hold intervals
(they must never overlap across lanes), ticks are operations (green ok, grey rejected), orange diamonds are
operations cut off by a kill (their outcome is unknown), red x are kills.</p>
<p>{html.escape(LEGEND)}</p>
<table><tr>{head}</tr>{rows}</table>{''.join(sections)}</body></html>
"""
    path.write_text(page, encoding="utf-8")
