"""``python -m chaos``: run the chaos campaign and print a verdict.

Exit status: 0 every applicable scenario passed, 1 a property was violated (or, with
``--controls``, a negative control escaped), 2 usage or setup error, 3 nothing was violated
but at least one scenario is NOT PROVEN (its race or fault did not happen).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import sys
import tempfile

from tradestore.logfile import lock_path
from tradestore_chaos import report, scenarios
from tradestore_chaos.campaign import Campaign, reproduce_command
from tradestore_harness.processes import START_METHODS
from tradestore_harness.result import FAIL, NOT_APPLICABLE, NOT_PROVEN, PASS
from tradestore_harness.targets import DEFAULT, TargetError, controls, registry, resolve_target

EPILOG = """\
examples:
  python -m chaos                          default campaign against tradestore (about 75 CPU-seconds:
                                           minutes of wall time on a busy 2-core machine)
  python -m chaos --quick --seed 7         CI size, reproducible schedule
  python -m chaos --target tradestore-journal   the same campaign on the journal format
  python -m chaos --target unsafe-no-lock  watch a broken store get caught
  python -m chaos --target mybot.store:make_store --report out/
  python -m chaos --controls --quick       prove the prover: every negative control is caught
  python -m chaos --skip power-loss        everything but one scenario

verdicts: each scenario is PASS (its fault happened and every property held), FAIL (a
property was violated), NOT PROVEN (its race or fault was not exercised: no rival seen
waiting, no crash point hit, too few kills cut a write) or NOT APPLICABLE (it cannot observe
this target; the reason is printed). NOT PROVEN is not a pass: the last line then reads
"NOT PROVEN" and the exit status is 3.

exit status: 0 every applicable scenario passed; 1 a property was violated (--controls: a
control escaped); 2 usage or setup error; 3 no violation, but a scenario is NOT PROVEN.
"""
EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_NOT_PROVEN = 0, 1, 2, 3


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m chaos",
        description="Run competing writer processes, kills and file corruption against a trade "
                    "store and check that no acknowledged trade is lost, no cap is exceeded, and "
                    "the log and derived files stay valid.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", action="store_true", help="list scenarios and targets, then exit")
    p.add_argument("--scenario", action="append", metavar="NAME",
                   help="run only this scenario (repeatable; default: all)")
    p.add_argument("--skip", action="append", metavar="NAME",
                   help="leave this scenario out (repeatable)")
    p.add_argument("--target", default=DEFAULT, metavar="NAME",
                   help=f"store to test: a target name (see --list) or module:factory (default {DEFAULT})")
    p.add_argument("--seed", type=int, help="seed of every random choice (default: a fresh one, printed)")
    p.add_argument("--duration", type=float, metavar="SECONDS",
                   help="length of each time-driven scenario (kill-storm, writers under reconcile, ...)")
    p.add_argument("--writers", type=int, default=3, metavar="N", help="competing writer processes (default 3)")
    p.add_argument("--quick", action="store_true", help="the CI size: fewer rounds, shorter storms")
    p.add_argument("--start-method", choices=START_METHODS, default="spawn",
                   help="how kill-storm restarts killed writers: spawn (default, a fresh interpreter each) "
                        "or forkserver (forked from a clean pre-imported server: for long storms)")
    p.add_argument("--report", type=pathlib.Path, metavar="DIR",
                   help="write report.json and report.html (with lock/ops/kill timelines) to DIR")
    p.add_argument("--controls", action="store_true",
                   help="run the campaign against every negative control instead; fails if any escapes")
    p.add_argument("--keep", type=pathlib.Path, metavar="DIR",
                   help="keep every scenario's working files (logs, histories) in DIR")
    return p


def _list() -> int:
    available = scenarios.available()
    print("scenarios:")
    for name, module in available.items():
        print(f"  {name:24} {module.DESCRIPTION}")
    for module_name, why in scenarios.missing().items():
        print(f"  ({module_name}: not available: {why})")
    print("targets:")
    for name, factory in registry().items():
        doc = (factory.__doc__ or "").replace("``", "").strip().splitlines()
        print(f"  {name:26} {doc[0] if doc and name != DEFAULT else 'tradestore.TradeStore (ours)'}")
    print("  module:factory             your own store: factory(trade_log, lock_file, **limits)")
    return 0


def _select(names: list[str] | None, skip: list[str] | None = None) -> dict:
    available = scenarios.available()
    broken = scenarios.missing()
    if broken:  # a campaign that silently skipped a scenario would prove less than it claims
        raise SystemExit("scenario modules failed to import: "
                         + "; ".join(f"{m}: {why}" for m, why in broken.items()))
    unknown = [n for n in (names or []) + (skip or []) if n not in available]
    if unknown:
        raise SystemExit(f"unknown scenario {', '.join(unknown)}; known: {', '.join(available)}")
    chosen = {n: available[n] for n in (names or available) if n not in (skip or [])}
    if not chosen:
        raise SystemExit("--skip left no scenario to run")
    return chosen


def _preflight(target: str) -> None:
    """Resolve ``target`` and build one store in a scratch directory: a target that cannot
    even be constructed is a setup error (exit 2), not a finding."""
    factory = resolve_target(target)
    with tempfile.TemporaryDirectory(prefix="chaos-preflight-") as scratch:
        try:
            log = os.path.join(scratch, "trades.json")
            factory(log, lock_path(log), max_positions=7)
        except Exception as exc:  # whatever the user's factory raises, report it as setup
            raise TargetError(f"target {target!r}: building a store failed: {type(exc).__name__}: {exc}") from None


def _campaign(args, chosen: dict, target: str, seed: int, progress=print) -> Campaign:
    keep = args.keep / target.replace(":", "_") if args.keep else None
    campaign = Campaign(chosen, target, seed, quick=args.quick, duration=args.duration,
                        writers=args.writers, progress=progress, keep=keep, start_method=args.start_method)
    campaign.run()
    return campaign


def _reproduce(args, target: str, seed: int, names: list[str]) -> str:
    return reproduce_command(target, seed, names, quick=args.quick, writers=args.writers, duration=args.duration)


def verdict_line(campaign: Campaign, args, seed: int) -> str:
    """The last line: PASS, FAIL or NOT PROVEN, with what to do next."""
    counts = {v: sum(r.verdict == v for r in campaign.results) for v in (PASS, NOT_PROVEN, NOT_APPLICABLE)}
    tally = f"{counts[PASS]} passed"
    if counts[NOT_PROVEN]:
        tally += f", {counts[NOT_PROVEN]} not proven"
    if counts[NOT_APPLICABLE]:
        tally += f", {counts[NOT_APPLICABLE]} not applicable"
    status = campaign.status
    if status == PASS:
        return f"PASS: every property held ({tally}; {campaign.elapsed_s:.1f} s, seed {seed})"
    if status == FAIL:
        failing = [r.scenario for r in campaign.results if r.verdict == FAIL]
        return (f"FAIL: {', '.join(campaign.violated())} violated ({tally}; seed {seed}); reproduce with: "
                f"{_reproduce(args, args.target, seed, failing)}")
    unproven = [r.scenario for r in campaign.unproven()]
    return (f"NOT PROVEN: no property violated, but {', '.join(unproven) or 'no scenario'} did not exercise "
            f"{'its' if len(unproven) == 1 else 'their'} fault ({tally}; seed {seed}); rerun with: "
            f"{_reproduce(args, args.target, seed, unproven)}")


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.list:
        return _list()
    if args.writers < 2:
        p.error("--writers must be at least 2: races need competitors")
    if args.duration is not None and args.duration <= 0:
        p.error("--duration must be positive")
    try:
        chosen = _select(args.scenario, args.skip)
        _preflight(args.target)
    except (SystemExit, TargetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.keep and args.keep.exists() and any(args.keep.iterdir()):
        print(f"error: --keep {args.keep} is not empty; give a new or empty directory", file=sys.stderr)
        return EXIT_USAGE
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1_000_000)
    progress = lambda line: print(line, flush=True)  # noqa: E731
    if args.controls:
        return _run_controls(args, chosen, seed)
    print(f"chaos campaign: target {args.target}, seed {seed}, {len(chosen)} scenarios"
          f"{' (quick)' if args.quick else ''}", flush=True)
    campaign = _campaign(args, chosen, args.target, seed, progress)
    print()
    print(report.table(campaign.results))
    print(report.LEGEND)
    print()
    details = report.findings(campaign.results)
    if details:
        print(details)
        print()
    verdict = verdict_line(campaign, args, seed)
    print(verdict, flush=True)
    if args.report:
        _write_report(args.report, campaign, seed, verdict)
    return {PASS: EXIT_PASS, FAIL: EXIT_FAIL, NOT_PROVEN: EXIT_NOT_PROVEN}[campaign.status]


def _write_report(directory: pathlib.Path, campaign: Campaign, seed: int, verdict: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    summary = {"target": campaign.target, "seed": seed, "quick": campaign.quick, "verdict": verdict,
               "status": campaign.status, "passed": campaign.passed, "violated": campaign.violated(),
               "elapsed_s": campaign.elapsed_s}
    report.write_json(directory / "report.json", summary, campaign.results, campaign.timelines)
    report.write_html(directory / "report.html", summary, campaign.results, campaign.timelines)
    print(f"report: {directory / 'report.json'}, {directory / 'report.html'}")


def _run_controls(args, chosen: dict, seed: int) -> int:
    """Prove the prover: every negative control must violate at least one property."""
    names = controls()
    print(f"negative controls: {len(names)} broken stores, seed {seed}; each must be caught", flush=True)
    escaped, summary = [], []
    for name in names:
        print(f"-- {name}", flush=True)
        campaign = _campaign(args, chosen, name, seed, progress=lambda line: print("   " + line, flush=True))
        caught = campaign.violated()
        by_scenario = {r.scenario: sorted({v.property for v in r.violations}) for r in campaign.results if r.violations}
        summary.append({"target": name, "caught": bool(caught), "properties": caught,
                        "by_scenario": by_scenario, "elapsed_s": campaign.elapsed_s})
        if not caught:
            escaped.append(name)
    print()
    width = max(len(n) for n in names)
    for row in summary:
        state = "caught   " if row["caught"] else "ESCAPED  "
        print(f"{row['target']:{width}}  {state}{', '.join(row['properties'])}")
        if row["by_scenario"]:
            print(f"{'':{width}}  {'':9}by {', '.join(row['by_scenario'])}")
    print()
    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        (args.report / "controls.json").write_text(json.dumps({"seed": seed, "controls": summary}, indent=1))
    if escaped:
        print(f"FAIL: {', '.join(escaped)} escaped every check (seed {seed})")
        return 1
    print(f"PASS: all {len(names)} negative controls were caught (seed {seed})")
    return 0
