"""The idiom matrix: every control store of :mod:`tests.idioms` against every chaos scenario.

``python -m tests.idioms.matrix --seeds 3 --quick`` runs each (store, scenario, seed) as a
one-scenario campaign and prints a Markdown table, one row per store, one column per scenario:

- ``PASS``: every property held and the scenario's race or fault was exercised;
- ``caught: PROPERTY, ...``: the scenario failed the store with those properties (for a
  negative control, at least one of them is a property its flaw breaks);
- ``n/a``: the scenario says it cannot observe this store (not applicable);
- ``NOT PROVEN``: nothing failed, but the race or fault was not exercised;
- ``FAIL: PROPERTY``: a correct store failed (a false alarm), or a negative control failed only
  with properties its flaw does not break: both are defects of the harness.

``not run``: the cell was left out of the runs shown. A cell whose seeds disagree shows each outcome with its count (``caught 2/3: ...; PASS 1/3``).
The last column sums the row up: a correct store must have no ``FAIL`` and no ``NOT PROVEN``
(``ok``; else ``FALSE ALARM`` or ``NOT PROVEN``); a negative control must be caught by some
scenario, and by each scenario listed in its ``caught_by`` on every seed (``caught``, else
``ESCAPED``). Exit status 1 when any row is not ``ok``/``caught``,
2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass

from tests.idioms import STORES, Idiom, by_name

VERDICTS = ("PASS", "FAIL", "NOT PROVEN", "NOT APPLICABLE")


@dataclass(frozen=True)
class Cell:
    """The outcome of one scenario on one store for one seed."""

    verdict: str  # one of VERDICTS
    properties: tuple[str, ...] = ()
    detail: str = ""
    elapsed_s: float = 0.0


def verdict_of(result) -> str:
    """PASS, FAIL, NOT PROVEN or NOT APPLICABLE of a scenario result.

    Uses the result's own ``verdict`` when the harness gives one; a result without it is FAIL
    when it has violations, NOT APPLICABLE when it names a reason (``not_applicable``), else PASS.
    """
    given = getattr(result, "verdict", None)
    if given is not None:
        text = str(getattr(given, "value", given)).upper().replace("_", " ").replace("-", " ")
        for name in VERDICTS:
            if text == name or text.endswith(name):
                return name
        if text == "NA":
            return "NOT APPLICABLE"
    if result.violations:
        return "FAIL"
    if getattr(result, "not_applicable", None):
        return "NOT APPLICABLE"
    return "PASS"


def run_cell(store: Idiom, scenario: str, seed: int, quick: bool, writers: int = 3,
             progress=lambda message: None) -> Cell:
    """Run one scenario against one store as a one-scenario campaign."""
    from tradestore_chaos.campaign import Campaign
    from tradestore_chaos.scenarios import available

    module = available()[scenario]
    campaign = Campaign({scenario: module}, store.target, seed, quick=quick, writers=writers, progress=progress)
    started = time.monotonic()
    (result,) = campaign.run()
    props = tuple(sorted({v.property for v in result.violations}))
    detail = "; ".join(f"{v.property}: {v.detail}" for v in result.violations[:2])
    reason = getattr(result, "not_applicable", None) or getattr(result, "reason", None)
    if not detail and reason:
        detail = str(reason)
    return Cell(verdict_of(result), props, detail[:400], time.monotonic() - started)


def is_catch(store: Idiom, cell: Cell) -> bool:
    """A negative control failed with a property its flaw breaks."""
    return not store.correct and cell.verdict == "FAIL" and bool(set(cell.properties) & set(store.breaks))


def label(store: Idiom, cell: Cell) -> str:
    if cell.verdict == "FAIL":
        word = "caught" if is_catch(store, cell) else "FAIL"
        return f"{word}: {', '.join(cell.properties)}"
    return {"NOT APPLICABLE": "n/a"}.get(cell.verdict, cell.verdict)


def cell_text(store: Idiom, cells: list[Cell]) -> str:
    """One table cell for a store and scenario over every seed."""
    counts = Counter(label(store, c) for c in cells)
    if len(counts) == 1:
        return next(iter(counts))
    parts = []
    for text, n in counts.most_common():
        word, _, rest = text.partition(": ")
        parts.append(f"{word} {n}/{len(cells)}" + (f": {rest}" if rest else ""))
    return "; ".join(parts)


def row_summary(store: Idiom, row: dict[str, list[Cell]]) -> str:
    """``ok``/``NOT PROVEN``/``FALSE ALARM`` for a correct store, ``caught``/``ESCAPED`` for a control."""
    cells = [c for cs in row.values() for c in cs]
    if store.correct:
        if any(c.verdict == "FAIL" for c in cells):
            return "FALSE ALARM"
        return "NOT PROVEN" if any(c.verdict == "NOT PROVEN" for c in cells) else "ok"
    missed = [name for name in store.caught_by if name in row and not all(is_catch(store, c) for c in row[name])]
    if missed:
        return f"ESCAPED {', '.join(missed)}"
    return "caught" if any(is_catch(store, c) for c in cells) else "ESCAPED"


def table(stores: list[Idiom], scenarios: list[str], results: dict, seeds: list[int]) -> str:
    """The Markdown table of ``results[(store name, scenario)] -> [Cell per seed]``."""
    head = ["store", "idiom", *scenarios, "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    for store in stores:
        row = {name: results[(store.name, name)] for name in scenarios if (store.name, name) in results}
        cells = [cell_text(store, row[name]) if name in row else "not run" for name in scenarios]
        kind = store.idiom if store.correct else f"flaw: {store.flaw}"
        lines.append("| " + " | ".join([f"`{store.name}`", kind, *cells, row_summary(store, row)]) + " |")
    lines.append("")
    lines.append(f"Seeds {', '.join(map(str, seeds))}.")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tests.idioms.matrix",
        description="Run the chaos scenarios over the idiom control stores and print the matrix as Markdown.",
        epilog="Exit status: 0 every correct store passed and every negative control was caught; "
               "1 a false alarm or an escape; 2 usage error.")
    p.add_argument("--seeds", type=int, default=3, metavar="N", help="number of seeds (default 3)")
    p.add_argument("--first-seed", type=int, default=1, metavar="S", help="seeds are S, S+1, ... (default 1)")
    p.add_argument("--store", action="append", metavar="NAME", help="a store of the corpus (repeatable; default all)")
    p.add_argument("--scenario", action="append", metavar="NAME", help="a scenario (repeatable; default all)")
    p.add_argument("--correct-only", action="store_true", help="only the positive controls")
    p.add_argument("--quick", action="store_true", help="the campaign's CI size")
    p.add_argument("--writers", type=int, default=3, metavar="N", help="competing writer processes (default 3)")
    p.add_argument("--out", metavar="FILE", help="also write the table to FILE")
    p.add_argument("--json", metavar="FILE", help="write every cell (verdict, properties, detail) to FILE")
    p.add_argument("--render", metavar="FILE", nargs="+",
                   help="run nothing: print the table of cells saved by --json (a later file's cells replace "
                        "an earlier one's, so a re-run of some rows updates a full run)")
    return p


def load_cells(paths: list[str]) -> tuple[dict, list[int], dict]:
    """Cells, seeds and run settings saved by ``--json`` in ``paths`` (later files win)."""
    results: dict[tuple[str, str], list[Cell]] = {}
    seeds: list[int] = []
    settings: dict = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        seeds = seeds or saved["seeds"]
        if saved["seeds"] != seeds:
            raise ValueError(f"{path}: seeds {saved['seeds']} differ from {seeds} of the files before it")
        settings = {k: saved[k] for k in ("quick", "writers")}
        for key, cells in saved["cells"].items():
            store, scenario = key.rsplit(" ", 1)
            results[(store, scenario)] = [Cell(c["verdict"], tuple(c["properties"]), c["detail"], c["elapsed_s"])
                                          for c in cells]
    return results, seeds, settings


def _render(args, stores: list[Idiom], scenarios: list[str]) -> int:
    try:
        results, seeds, settings = load_cells(args.render)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: --render: {exc}", file=sys.stderr)
        return 2
    stores = [s for s in stores if any(k[0] == s.name for k in results)]
    text = table(stores, scenarios, results, seeds)
    text += f" {'Quick' if settings.get('quick') else 'Full'} size, {settings.get('writers')} writers.\n"
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    return _status(stores, scenarios, results)


def _status(stores: list[Idiom], scenarios: list[str], results: dict) -> int:
    verdicts = [row_summary(s, {n: results[(s.name, n)] for n in scenarios if (s.name, n) in results}) for s in stores]
    return 0 if all(v in ("ok", "caught") for v in verdicts) else 1


def main(argv: list[str] | None = None) -> int:
    from tradestore_chaos.scenarios import available

    args = parser().parse_args(argv)
    known = list(available())
    scenarios = args.scenario or known
    unknown = [s for s in scenarios if s not in known]
    try:
        stores = [by_name(n) for n in args.store] if args.store else list(STORES)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    if unknown:
        print(f"error: unknown scenario(s) {', '.join(unknown)}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    if args.seeds < 1:
        print(f"error: --seeds {args.seeds}: give at least 1", file=sys.stderr)
        return 2
    if args.correct_only:
        stores = [s for s in stores if s.correct]
    if args.render:
        return _render(args, stores, scenarios)
    seeds = [args.first_seed + k for k in range(args.seeds)]
    total = len(stores) * len(scenarios) * len(seeds)
    results: dict[tuple[str, str], list[Cell]] = {}
    started = time.monotonic()
    done = 0
    for store in stores:
        for scenario in scenarios:
            for seed in seeds:
                cell = run_cell(store, scenario, seed, args.quick, args.writers)
                results.setdefault((store.name, scenario), []).append(cell)
                done += 1
                print(f"[{done}/{total} {time.monotonic() - started:6.0f}s] {store.name} {scenario} seed {seed}: "
                      f"{label(store, cell)} ({cell.elapsed_s:.1f}s)"
                      + (f" -- {cell.detail[:200]}" if cell.verdict != "PASS" and cell.detail else ""),
                      file=sys.stderr, flush=True)
    text = table(stores, scenarios, results, seeds)
    text += f" {'Quick' if args.quick else 'Full'} size, {args.writers} writers, {time.monotonic() - started:.0f} s.\n"
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"seeds": seeds, "quick": args.quick, "writers": args.writers,
                       "cells": {f"{k[0]} {k[1]}": [asdict(c) for c in v] for k, v in results.items()}}, f, indent=1)
    return _status(stores, scenarios, results)


if __name__ == "__main__":
    sys.exit(main())
