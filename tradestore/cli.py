"""The ``tradestore`` command line: inspect and change a trade log from a shell or a cron job.

Limits come from flags or from a shared ``tradestore.toml`` (so every bot process enforces the
same ones); flags win.

Guarantees, for every command:

- exit status (:data:`EXIT_CODES`): 0 done; 1 the operation was refused or failed (a risk
  check, an unknown trade, an unreadable log, an integrity violation, a derived file that
  differs, an aborted reconcile, a disk error); 2 usage or configuration (bad arguments, a
  bad or missing config file): nothing was attempted; 130 interrupted; 141 the reader of the
  output went away (``tradestore status | head``), quietly, as a Unix tool killed by SIGPIPE;
- an error is one line on stderr (with ``--json``, one JSON object: ``error``, ``message``,
  ``exit``, and ``check``/``reason`` for a risk refusal);
- ``--json`` prints one JSON document on stdout (``reconcile --every``: one per line, per
  cycle) whose numbers are JSON numbers, never strings.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import logging
import math
import os
import select
import signal
import sys
import tomllib
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, NoReturn

from . import __version__, accounting, integrity, journal, risk
from .errors import CorruptTradeLog, RiskRejected, TradeStoreError, UnsafePath
from .ledger import Ledger
from .store import TradeStore

DEFAULT_CONFIG = "tradestore.toml"

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 1, 2, 130, 141
EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_FAILED: "refused or failed: a risk check, an unknown trade, an unreadable log, an integrity\n"
                 "       violation, a derived file that differs, an aborted reconcile, a disk error",
    EXIT_USAGE: "usage or configuration: bad arguments or config file, a missing optional driver;\n"
                "       nothing was attempted",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
    EXIT_BROKEN_PIPE: "the reader of the output went away (`tradestore status | head`); quietly",
}

# Options settable from [limits] in the config file or from flags: every limit of RiskLimits
# (the one definition the store and the reconciler share) and the store's lock timeout.
LIMIT_OPTIONS: dict[str, type] = {**risk.RiskLimits.option_types(), "lock_timeout": float}
# What each option means, for --help (its default is read from the library).
LIMIT_HELP: dict[str, str] = {
    "max_positions": "open positions at most",
    "starting_capital": "USD equity before the first trade",
    "max_corr_group_risk_pct": "open risk of one correlation group, % of equity",
    "asset_consecutive_loss_cap": "consecutive losses that block a symbol",
    "loss_cap_cooldown_hours": "hours before a loss-capped symbol may trade again",
    "max_drawdown_pct": "no opens beyond this drawdown from peak equity, %",
    "max_daily_loss_pct": "no opens after this loss since 00:00 UTC, % of equity",
    "max_weekly_loss_pct": "no opens after this loss since Monday 00:00 UTC, % of equity",
    "caution_drawdown_pct": "drawdown from peak at which the reports say CAUTION, %",
    "max_portfolio_heat_pct": "open risk of all positions, % of equity",
    "lock_timeout": "seconds to wait for the lock before failing",
}


def _limit_default(name: str) -> str:
    """The library's default of a limit, for --help (the library is the one place it is set)."""
    defaults = {f.name: f.default for f in dataclasses.fields(risk.RiskLimits)}
    defaults.update((n, p.default) for n, p in inspect.signature(TradeStore).parameters.items())
    value = defaults[name]
    return "off" if value is None else f"{value:g}"


def config_example() -> str:
    """The ``tradestore.toml`` that ``tradestore init`` writes: every limit at the library's
    default, the built-in correlation groups written out (the table replaces them when
    present), the limits that are off by default as comments. Read back, it gives exactly
    ``RiskLimits()``."""
    defaults = risk.RiskLimits()
    limits = []
    for f in dataclasses.fields(risk.RiskLimits):
        value = getattr(defaults, f.name)
        if f.name == "correlation_groups":
            continue
        limits.append(f"# {f.name} = {_EXAMPLE_VALUES[f.name]}" if value is None else f"{f.name} = {value!r}")
        if f.name in _EXAMPLE_NOTES:
            limits[-1] = f"{limits[-1]:<36}# {_EXAMPLE_NOTES[f.name]}"
    groups = [f"{name} = {json.dumps(list(symbols))}" for name, symbols in defaults.correlation_groups.items()]
    return "\n".join([
        'trade_log = "trades.json"          # relative to this file',
        '# the lock file is always the log\'s path + ".lock" (trades.json.lock); no setting needed',
        '# log_format = "journal"           # a new log appends each write to trades.json.journal; an',
        "                                   # existing log keeps its format (`tradestore convert` changes it)",
        "",
        "[limits]",
        *limits,
        "",
        "[correlation_groups]                # replaces the built-in groups: keep the ones you want",
        *groups,
        "",
    ])


# Example values of the limits that are off by default, written commented out.
_EXAMPLE_VALUES = {"loss_cap_cooldown_hours": 48, "max_drawdown_pct": 15, "max_daily_loss_pct": 5,
                   "max_weekly_loss_pct": 10, "max_portfolio_heat_pct": 6, "caution_drawdown_pct": 10}
_EXAMPLE_NOTES = {"caution_drawdown_pct": "only makes the reports' drawdown_status read CAUTION"}


class UsageError(Exception):
    """Bad configuration or arguments: exit status 2."""


def positive_seconds(text: str) -> float:
    """argparse type of ``--every``: a finite number of seconds greater than 0."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number of seconds greater than 0, e.g. 900")
    return seconds


def load_config(path: str | None) -> tuple[dict, str]:
    """Read the TOML config. Returns (config, directory paths in it are relative to)."""
    explicit = path is not None
    path = path or DEFAULT_CONFIG
    if not os.path.exists(path):
        if explicit:
            raise UsageError(f"config file {path} does not exist")
        return {}, os.getcwd()
    try:
        with open(path, "rb") as f:
            config = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:  # TOML is UTF-8 text
        raise UsageError(f"{path}: invalid TOML ({exc})") from None
    except OSError as exc:  # a directory, unreadable, ...
        raise UsageError(f"config file {path} cannot be read ({exc.strerror or exc})") from None
    # The shapes the rest relies on: a wrong one is the file's fault, said here (not a traceback).
    for key, kind, what in (("limits", dict, "a [limits] table"),
                            ("correlation_groups", dict, "a [correlation_groups] table"),
                            ("trade_log", str, "a path string"), ("lock_file", str, "a path string")):
        if key in config and not isinstance(config[key], kind):
            raise UsageError(f"{path}: {key} = {config[key]!r} must be {what}")
    unknown = set(config.get("limits", {})) - set(LIMIT_OPTIONS)
    if unknown:
        raise UsageError(f"{path}: unknown [limits] keys {sorted(unknown)}; known: {sorted(LIMIT_OPTIONS)}")
    if "log_format" in config:
        try:
            journal.check_format(config["log_format"])
        except ValueError as exc:
            raise UsageError(f"{path}: {exc}") from None
    return config, os.path.dirname(os.path.abspath(path))


def store_from_args(args: argparse.Namespace) -> TradeStore:
    """A TradeStore configured by the config file, overridden by flags."""
    config, base = load_config(args.config)
    options = dict(config.get("limits", {}))
    for name in LIMIT_OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    if "correlation_groups" in config:
        options["correlation_groups"] = config["correlation_groups"]
    trade_log = args.log or os.path.join(base, config.get("trade_log", "trades.json"))
    lock_file = args.lock or (os.path.join(base, config["lock_file"]) if "lock_file" in config else None)
    try:
        return TradeStore(trade_log, lock_file, fsync=not args.no_fsync,
                          log_format=config.get("log_format", "document"), **options)
    except (TypeError, ValueError) as exc:  # a bad limit, or a path refused (UnsafePath): configuration
        raise UsageError(str(exc) if isinstance(exc, TradeStoreError) else f"bad limit in configuration: {exc}") from None


def _emit_json(document: Any) -> None:
    print(json.dumps(document, indent=2, allow_nan=False))


def _print_trade(trade: dict, as_json: bool) -> None:
    if as_json:
        _emit_json(trade)
        return
    line = f"{trade['id']} {trade['status']} {trade['symbol']} {trade['direction']} size {trade['size']:g} @ {trade['entry_price']:g}"
    if trade["status"] == "CLOSED":
        r_multiple = "" if trade.get("r_multiple") is None else f" ({trade['r_multiple']}R)"
        line += f" -> {trade['exit_price']:g}  pnl {trade['pnl_usd']:+.2f} USD{r_multiple}"
    else:
        line += f"  stop {trade['stop_price']:g}  target {trade['target_price']:g}"
    print(line)


def status_report(store: TradeStore) -> dict[str, Any]:
    """What ``tradestore status`` shows, as typed values (the ``--json`` document)."""
    ledger = Ledger(store.get_all_trades())
    limits = store.limits
    equity = ledger.equity(limits.starting_capital)
    open_trades = ledger.open_trades()
    groups = {name: {"used_usd": float(risk.group_risk(ledger, limits, name)),
                     "budget_usd": limits.max_corr_group_risk_pct / 100 * equity}
              for name in limits.correlation_groups}
    capped = [{"symbol": symbol, "reason": reason}
              for symbol, reason in risk.loss_capped(ledger, store.now(), limits).items()]
    heat_cap = limits.max_portfolio_heat_pct
    return {
        "trade_log": store.trade_log,
        "trades": len(ledger.trades),
        "next_id": store.get_next_id(),
        "starting_capital": limits.starting_capital,
        "realized_pnl": ledger.realized_pnl(),
        "equity": equity,
        "positions": {"open": len(open_trades), "max": limits.max_positions},
        "open_trades": [{"id": t["id"], "symbol": t["symbol"], "direction": t["direction"], "size": t["size"],
                         "entry_price": t["entry_price"], "risk_usd": accounting.initial_risk(t)} for t in open_trades],
        "open_risk_usd": float(accounting.total_open_risk(open_trades)),
        "open_risk_budget_usd": heat_cap / 100 * equity if heat_cap else None,
        "group_risk": groups,
        "loss_capped": capped,
        "integrity_violations": integrity.ledger_violations(ledger),
    }


def cmd_status(store: TradeStore, args: argparse.Namespace) -> int:
    report = status_report(store)
    if args.json:
        _emit_json(report)
        return EXIT_OK
    limits = store.limits
    print(f"trade log    {report['trade_log']} ({report['trades']} trades, next id {report['next_id']})")
    print(f"equity       {report['equity']:.2f} USD (starting {limits.starting_capital:.2f}, realized {report['realized_pnl']:+.2f})")
    print(f"positions    {report['positions']['open']}/{report['positions']['max']}")
    for t in report["open_trades"]:
        print(f"  open       {t['id']} {t['symbol']} {t['direction']} size {t['size']:g} @ {t['entry_price']:g}  risk {t['risk_usd']:.2f} USD")
    budget = report["open_risk_budget_usd"]
    print(f"open risk    {report['open_risk_usd']:.2f} USD"
          + (f" / {budget:.2f} USD ({limits.max_portfolio_heat_pct:g}% of equity)" if budget is not None else ""))
    for name, use in report["group_risk"].items():
        print(f"group risk   {name} {use['used_usd']:.2f}/{use['budget_usd']:.2f} USD ({limits.max_corr_group_risk_pct:g}% of equity)")
    print("loss-capped  " + ("; ".join(c["reason"] for c in report["loss_capped"]) or "none"))
    problems = report["integrity_violations"]
    print("integrity    " + ("ok" if not problems else f"{len(problems)} violation(s); run `tradestore verify`"))
    return EXIT_OK


def cmd_open(store: TradeStore, args: argparse.Namespace) -> int:
    trade = store.open_trade(args.symbol, args.direction, args.entry, args.stop, args.target, args.size,
                             args.setup, args.grade, args.notes)
    _print_trade(trade, args.json)
    return EXIT_OK


def cmd_close(store: TradeStore, args: argparse.Namespace) -> int:
    _print_trade(store.close_trade(args.trade_id, args.exit_price, args.reason, args.lessons), args.json)
    return EXIT_OK


def cmd_partial(store: TradeStore, args: argparse.Namespace) -> int:
    _print_trade(store.partial_close(args.trade_id, args.close_pct, args.exit_price, args.reason), args.json)
    return EXIT_OK


def cmd_update(store: TradeStore, args: argparse.Namespace) -> int:
    updates: dict[str, object] = {}
    for item in args.set:
        field, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set {item!r}: expected FIELD=VALUE")
        try:
            updates[field] = float(value) if field in ("stop_price", "target_price") else value
        except ValueError:
            raise UsageError(f"--set {item!r}: {field} must be a number") from None
    if not updates:
        raise UsageError("give at least one --set FIELD=VALUE")
    _print_trade(store.update_trade(args.trade_id, updates), args.json)
    return EXIT_OK


def cmd_verify(store: TradeStore, args: argparse.Namespace) -> int:
    problems = store.verify_integrity()
    report: dict[str, Any] = {"trade_log": store.trade_log, "trades": len(store.get_all_trades()),
                              "violations": problems, "derived": None}
    if not problems and args.out is not None:
        rec = _reconciler(store, args)
        differing = rec.verify()
        report["derived"] = {"output_dir": rec.output_dir, "differing": differing, "ok": not differing}
    report["ok"] = not problems and (report["derived"] is None or report["derived"]["ok"])
    if args.json:
        _emit_json(report)
        return EXIT_OK if report["ok"] else EXIT_FAILED
    for problem in problems:
        print(f"violation: {problem}")
    if problems:
        print(f"{store.trade_log}: {len(problems)} integrity violation(s)")
        return EXIT_FAILED
    print(f"{store.trade_log}: ok ({report['trades']} trades)")
    derived = report["derived"]
    if derived is not None:
        out = derived["output_dir"]
        for name, why in derived["differing"].items():
            print(f"derived: {os.path.join(out, name)} {why} (differs from a fresh rebuild)")
        if derived["differing"]:
            print(f"{out}: {len(derived['differing'])} derived file(s) differ; run `tradestore reconcile --out {out}`")
            return EXIT_FAILED
        print(f"{out}: derived files ok")
    return EXIT_OK


def _reconciler(store: TradeStore, args: argparse.Namespace):
    from .reconciler import StateReconciler

    # The store's limits: the derived verdicts are the decisions this store makes.
    return StateReconciler(store.trade_log, args.out, limits=store.limits, fsync=not args.no_fsync)


def _stamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_once(reconciler, *, as_json: bool = False, emit: Callable[[str], Any] = print) -> int:
    """One cycle, one line (or a JSON object) out. Exit status: 0 written, 1 aborted."""
    result = reconciler.reconcile()
    if as_json:
        emit(json.dumps({"written": result.written, "healed": result.healed, "updated": result.updated,
                         "aborted": result.aborted, "reason": result.reason,
                         "source": result.source.as_dict() if result.source else None,
                         "violations": result.violations, "elapsed_s": round(result.elapsed_s, 6)}))
    else:
        emit(f"{_stamp()} reconcile {reconciler.output_dir}: {result.summary()}")
    return 1 if result.aborted else 0


def run_every(reconciler, seconds: float, stop: Any, *, as_json: bool = False,
              emit: Callable[[str], Any] = print) -> int:
    """Reconcile every ``seconds`` until ``stop`` (a :class:`SignalStop` or threading.Event) is
    set; one line per cycle (with ``as_json`` each line is a JSON object, the last
    ``{"stopped": true, "cycles": N}``).

    An aborted cycle is reported and the loop goes on (the next cycle may find the log
    repaired). A cycle that raises (e.g. the disk is full) is reported the same way. Returns 0
    after a clean stop, so a supervisor can tell a stop from a crash.
    """
    cycles = 0
    while not stop.is_set():
        cycles += 1
        try:
            run_once(reconciler, as_json=as_json, emit=emit)
        except Exception as exc:  # one bad cycle must not end the loop a supervisor relies on
            logging.getLogger("tradestore.reconciler").error("reconcile cycle failed: %s", exc)
            if as_json:
                emit(json.dumps({"failed": True, "error": type(exc).__name__, "message": str(exc)}))
            else:
                emit(f"{_stamp()} reconcile {reconciler.output_dir}: FAILED: {type(exc).__name__}: {exc}")
        stop.wait(seconds)  # returns at once when a signal sets the event
    emit(json.dumps({"stopped": True, "cycles": cycles}) if as_json
         else f"{_stamp()} reconcile stopped after {cycles} cycles")
    return 0


def cmd_reconcile(store: TradeStore, args: argparse.Namespace) -> int:
    rec = _reconciler(store, args)
    if args.every is None:
        return run_once(rec, as_json=args.json)
    stop = stop_on_signals()  # SIGTERM or Ctrl-C: the loop finishes its cycle and exits 0
    return run_every(rec, args.every, stop, as_json=args.json, emit=lambda line: print(line, flush=True))


class SignalStop:
    """A stop flag that a signal handler can set at any moment without deadlocking.

    ``threading.Event.set()`` takes the event's lock; a handler runs in the main thread between
    two bytecodes, possibly inside ``Event.wait()`` while that very lock is held, and then waits
    for itself forever. Here ``set()`` only records the flag and writes one byte to a pipe, and
    ``wait()`` sleeps in ``select`` on that pipe, so a signal ends the wait at once.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._flag = False

    def set(self) -> None:
        self._flag = True
        try:
            os.write(self._write, b"x")
        except BlockingIOError:  # the pipe is full of earlier wake-ups: already awake
            pass

    def is_set(self) -> bool:
        return self._flag

    def wait(self, timeout: float | None = None) -> bool:
        if not self._flag:
            select.select([self._read], [], [], timeout)
        return self._flag


def stop_on_signals() -> SignalStop:
    """A :class:`SignalStop` set by SIGTERM and SIGINT (Ctrl-C)."""
    stop = SignalStop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def cmd_recover(store: TradeStore, args: argparse.Namespace) -> int:
    try:
        store.get_all_trades()
        readable = True
    except CorruptTradeLog:
        readable = False
    # A readable log is never replaced: recover returns "nothing to recover", or with --force
    # raises RecoveryRefused (exit 1).
    try:
        summary = store.recover(force=args.force, next_id=args.next_id)
    except TradeStoreError:
        raise
    except ValueError as exc:  # --next-id out of range: refused before anything is touched
        raise UsageError(str(exc)) from None
    if args.json:
        _emit_json({"trade_log": store.trade_log, "restored": not readable,
                    "trades": len(store.get_all_trades()), "next_id": store.get_next_id(), "summary": summary})
    else:
        print(summary)
    return EXIT_OK


def cmd_convert(store: TradeStore, args: argparse.Namespace) -> int:
    """``convert --to FORMAT`` and ``compact`` (``--to document``): one crash-safe conversion."""
    summary = store.convert(args.to)
    if args.json:
        _emit_json({"trade_log": store.trade_log, "log_format": args.to,
                    "trades": len(store.get_all_trades()), "summary": summary})
    else:
        print(summary)
    return EXIT_OK


def cmd_export(store: TradeStore, args: argparse.Namespace) -> int:
    """The log as one document, whatever its format: to stdout as it is, or atomically to a file."""
    if args.output is None:
        # The document's exact bytes, no newline added: `tradestore export > x.json` is the file
        # a document-format log would be (with --json too: it is one JSON document already).
        sys.stdout.flush()
        sys.stdout.buffer.write(store.export_document())
        return EXIT_OK
    try:
        count = store.export(args.output, fsync=not args.no_fsync)
    except UnsafePath as exc:  # one of the log's own files: refused before anything is read or written
        raise UsageError(str(exc)) from None
    if args.json:
        _emit_json({"trade_log": store.trade_log, "output": os.path.abspath(args.output), "trades": count})
    else:
        print(f"wrote {args.output}: {count} trades of {store.trade_log}")
    return EXIT_OK


def cmd_init(store: TradeStore, args: argparse.Namespace) -> int:
    if os.path.exists(DEFAULT_CONFIG) and not args.force:
        raise UsageError(f"{DEFAULT_CONFIG} exists; use --force to overwrite it")
    with open(DEFAULT_CONFIG, "w") as f:
        f.write(config_example())
    if args.json:
        _emit_json({"config": os.path.abspath(DEFAULT_CONFIG), "written": True})
    else:
        print(f"wrote {DEFAULT_CONFIG}")
    return EXIT_OK


def cmd_pg_init(_store: None, args: argparse.Namespace) -> int:
    from .pgstore import init_schema  # psycopg only for the PostgreSQL commands

    summary = init_schema(_pg_dsn(args))
    if args.json:
        _emit_json({"ready": True, "summary": summary})
    else:
        print(summary)
    return EXIT_OK


def cmd_pg_export(_store: None, args: argparse.Namespace) -> int:
    from .pgstore import PgTradeStore

    count = PgTradeStore(args.account, _pg_dsn(args)).export(args.out)
    if args.json:
        _emit_json({"account": args.account, "out": os.path.abspath(args.out), "trades": count})
    else:
        print(f"wrote {args.out}: {count} trades of account {args.account!r}")
    return EXIT_OK


def _pg_dsn(args: argparse.Namespace) -> str:
    from .pgstore import resolve_dsn

    try:
        return resolve_dsn(args.dsn)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


EPILOG = "exit status:\n" + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items())


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help=f"TOML config (default: ./{DEFAULT_CONFIG} if present)")
    common.add_argument("--log", metavar="FILE", help="trade log (default: trade_log from the config, else trades.json)")
    common.add_argument("--lock", metavar="FILE",
                        help="lock file; may only name <log>.lock, the one lock file of every log")
    common.add_argument("--json", action="store_true", help="print JSON (typed values) instead of text")
    common.add_argument("--no-fsync", action="store_true", help="skip fsync (tests only: not crash-safe)")
    limits = common.add_argument_group("limits (override [limits] in the config file)")
    for name, kind in LIMIT_OPTIONS.items():
        limits.add_argument("--" + name.replace("_", "-"), type=kind, metavar="N",
                            help=f"{LIMIT_HELP[name]} (default {_limit_default(name)})".replace("%", "%%"))

    parser = argparse.ArgumentParser(
        prog="tradestore",
        description="Inspect and change a tradestore trade log. Limits come from tradestore.toml "
        "or flags (see `tradestore COMMAND --help`); flags win.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tradestore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func, help_text: str, parents=(common,)) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=list(parents), help=help_text, description=help_text, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    add("status", cmd_status, "positions, equity and each limit's use")
    p = add("open", cmd_open, "open a trade (every risk check runs under the lock)")
    p.add_argument("symbol")
    p.add_argument("direction", help="LONG or SHORT")
    p.add_argument("entry", type=float, help="entry price")
    p.add_argument("stop", type=float, help="stop price")
    p.add_argument("target", type=float, help="target price")
    p.add_argument("size", type=float, help="size in units")
    p.add_argument("--setup", default="", help="setup type, e.g. RSI_Div")
    p.add_argument("--grade", default="")
    p.add_argument("--notes", default="")
    p = add("close", cmd_close, "close an open trade")
    p.add_argument("trade_id", help="e.g. T001 (case-insensitive)")
    p.add_argument("exit_price", type=float)
    p.add_argument("--reason", default="", help="exit reason, e.g. 'TP hit'")
    p.add_argument("--lessons", default="")
    p = add("partial", cmd_partial, "close a fraction of an open trade")
    p.add_argument("trade_id", help="e.g. T001 (case-insensitive)")
    p.add_argument("close_pct", type=float, help="fraction of the remaining size to close, 0 < close_pct < 1 (0.5 = half)")
    p.add_argument("exit_price", type=float)
    p.add_argument("--reason", default="Partial TP")
    p = add("update", cmd_update, "change stop, target, notes, grade or setup of an open trade")
    p.add_argument("trade_id", help="e.g. T001 (case-insensitive)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="repeatable")
    p = add("verify", cmd_verify, "check every integrity invariant of the log (exit 1 on violations)")
    p.add_argument("--out", metavar="DIR", help="also check the derived files in DIR against a fresh rebuild")
    p = add("reconcile", cmd_reconcile, "rebuild the derived files from the log (exit 1 if the guard aborts)")
    p.add_argument("--out", metavar="DIR", default="state", help="output directory (default: state)")
    p.add_argument("--every", metavar="SECONDS", type=positive_seconds,
                   help="repeat every SECONDS (> 0), one line per cycle, until SIGTERM or Ctrl-C")
    p = add("recover", cmd_recover, "restore an unreadable log from its backup, after validating the backup")
    p.add_argument("--force", action="store_true",
                   help="fail (exit 1, naming what the backup lacks) instead of doing nothing when the log is readable")
    p.add_argument("--next-id", type=int, metavar="N",
                   help="continue ids at N or above; needed when the damaged log shows no next_id")
    p = add("convert", cmd_convert, "rewrite the log in the other format, safe against a crash at any point: "
            "'journal' (each write appends one record to <log>.journal; the log is a checkpoint) or "
            "'document' (one JSON document, the seed's format)")
    p.add_argument("--to", required=True, choices=journal.FORMATS, help="the format to convert the log to")
    p = add("compact", cmd_convert, "fold a journal-format log into its single document and remove the journal "
            "(convert --to document)")
    p.set_defaults(to="document")
    p = add("export", cmd_export, "print the log as one document (schema 2, byte for byte what a "
            "document-format log holds), whatever its format")
    p.add_argument("--output", metavar="FILE", help="write it to FILE atomically instead (not one of the log's files)")
    p = add("init", cmd_init, f"write an example {DEFAULT_CONFIG} in the current directory")
    p.add_argument("--force", action="store_true", help=f"overwrite an existing {DEFAULT_CONFIG}")
    p.set_defaults(no_store=True)  # needs neither the config it may replace nor a log

    # The PostgreSQL commands: no trade log file, so none of the common options but --json.
    pg_common = argparse.ArgumentParser(add_help=False)
    pg_common.add_argument("--dsn", help="libpq connection string or postgresql:// URL (default: $TRADESTORE_PG_DSN)")
    pg_common.add_argument("--json", action="store_true", help="print JSON (typed values) instead of text")
    p = add("pg-init", cmd_pg_init, "create the tradestore tables in a PostgreSQL database "
            "(idempotent; needs tradestore[postgres])", parents=[pg_common])
    p.set_defaults(no_store=True)
    p = add("pg-export", cmd_pg_export, "write a PostgreSQL account as a trade log file "
            "(for reconcile, verify and other readers)", parents=[pg_common])
    p.add_argument("--account", required=True, help="the account name")
    p.add_argument("--out", required=True, metavar="FILE", help="the file to write (atomically)")
    p.set_defaults(no_store=True)
    return parser


def _fail(args: argparse.Namespace, exc: BaseException, code: int) -> int:
    """Report ``exc`` on stderr as one line (one JSON object with ``--json``); return ``code``."""
    if args.json:
        error: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc), "exit": code}
        if isinstance(exc, RiskRejected):
            error.update(check=exc.check, reason=exc.reason)
        print(json.dumps(error), file=sys.stderr)
    elif isinstance(exc, UsageError):
        print(f"tradestore {args.command}: {exc}", file=sys.stderr)
    else:
        print(f"tradestore {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return code


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser of each command of ``parser``, by name."""
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _json_usage_errors(parser: argparse.ArgumentParser) -> None:
    """Make ``parser`` and its commands report a usage error as one JSON object on stderr."""
    def error(message: str) -> NoReturn:
        print(json.dumps({"error": "UsageError", "message": message, "exit": EXIT_USAGE}), file=sys.stderr)
        sys.exit(EXIT_USAGE)

    for each in (parser, *subcommands(parser).values()):
        each.error = error  # type: ignore[method-assign]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status (see :data:`EXIT_CODES`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if "--json" in argv:
        _json_usage_errors(parser)
    args = parser.parse_args(argv)  # a usage error exits 2 here, naming the argument
    try:
        try:
            store = None if getattr(args, "no_store", False) else store_from_args(args)
            code = args.func(store, args)
        except UsageError as exc:
            code = _fail(args, exc, EXIT_USAGE)
        except ImportError as exc:  # an optional backend's driver is not installed
            code = _fail(args, exc, EXIT_USAGE)
        except (TradeStoreError, OSError) as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            code = _fail(args, exc, EXIT_FAILED)
        sys.stdout.flush()  # inside the try: a reader that went away surfaces here, not at exit
        return code
    except BrokenPipeError:
        # Nothing more can be said to that reader; point stdout at /dev/null so the
        # interpreter's own flush at exit cannot raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
