"""The ``tradestore`` command line: inspect and change a trade log from a shell or a cron job.

Limits come from flags or from a shared ``tradestore.toml`` (so every bot process enforces the
same ones); flags win. Errors print one line on stderr and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from collections.abc import Sequence

from . import integrity, risk
from .errors import TradeStoreError
from .ledger import Ledger
from .risk import Proposal
from .store import TradeStore

DEFAULT_CONFIG = "tradestore.toml"

# TradeStore keyword options settable from [limits] in the config file or from flags.
LIMIT_OPTIONS: dict[str, type] = {
    "max_positions": int,
    "starting_capital": float,
    "max_corr_group_risk_pct": float,
    "asset_consecutive_loss_cap": int,
    "loss_cap_cooldown_hours": float,
    "max_drawdown_pct": float,
    "max_daily_loss_pct": float,
    "max_portfolio_heat_pct": float,
    "lock_timeout": float,
}

CONFIG_EXAMPLE = """\
trade_log = "trades.json"          # relative to this file
# lock_file = "trades.json.lock"

[limits]
max_positions = 7
starting_capital = 5000
max_corr_group_risk_pct = 4.0
asset_consecutive_loss_cap = 3
# loss_cap_cooldown_hours = 48
# max_drawdown_pct = 15
# max_daily_loss_pct = 5
# max_portfolio_heat_pct = 6

[correlation_groups]                # replaces the built-in groups when present
crypto_majors = ["BTC", "ETH"]
"""


class UsageError(Exception):
    """Bad configuration or arguments: exit status 2."""


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
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML ({exc})") from None
    unknown = set(config.get("limits", {})) - set(LIMIT_OPTIONS)
    if unknown:
        raise UsageError(f"{path}: unknown [limits] keys {sorted(unknown)}; known: {sorted(LIMIT_OPTIONS)}")
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
        return TradeStore(trade_log, lock_file, fsync=not args.no_fsync, **options)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"bad limit in configuration: {exc}") from None


def _print_trade(trade: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(trade, indent=2))
        return
    line = f"{trade['id']} {trade['status']} {trade['symbol']} {trade['direction']} size {trade['size']:g} @ {trade['entry_price']:g}"
    if trade["status"] == "CLOSED":
        line += f" -> {trade['exit_price']:g}  pnl {trade['pnl_usd']:+.2f} USD ({trade['r_multiple']}R)"
    else:
        line += f"  stop {trade['stop_price']:g}  target {trade['target_price']:g}"
    print(line)


def cmd_status(store: TradeStore, args: argparse.Namespace) -> int:
    trades = store.get_all_trades()
    ledger = Ledger(trades)
    limits = store.limits
    equity = ledger.equity(limits.starting_capital)
    open_trades = ledger.open_trades()
    groups = {}
    for name in limits.correlation_groups:
        groups[name] = {"used_usd": risk.group_risk(ledger, limits, name),
                        "budget_usd": limits.max_corr_group_risk_pct / 100 * equity}
    now = store.now()
    capped = []
    for symbol in sorted({t["symbol"] for t in ledger.closed_trades()}):
        probe = Proposal(symbol, "LONG", 1.0, 1.0, 1.0, 0.0, now, limits)
        reason = risk.loss_cap(ledger, probe)
        if reason:
            capped.append(reason)
    report = {
        "trade_log": store.trade_log,
        "trades": len(trades),
        "next_id": store.get_next_id(),
        "starting_capital": limits.starting_capital,
        "realized_pnl": ledger.realized_pnl(),
        "equity": equity,
        "positions": f"{len(open_trades)}/{limits.max_positions}",
        "open_trades": [{"id": t["id"], "symbol": t["symbol"], "risk_usd": ledger.initial_risk(t)} for t in open_trades],
        "group_risk": groups,
        "loss_capped": capped,
        "open_risk_usd": sum(ledger.open_risk(t) for t in open_trades),
        "integrity_violations": integrity.ledger_violations(ledger),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"trade log    {store.trade_log} ({len(trades)} trades, next id {report['next_id']})")
    print(f"equity       {equity:.2f} USD (starting {limits.starting_capital:.2f}, realized {report['realized_pnl']:+.2f})")
    print(f"positions    {report['positions']}")
    for t in open_trades:
        print(f"  open       {t['id']} {t['symbol']} {t['direction']} size {t['size']:g} @ {t['entry_price']:g}  risk {ledger.initial_risk(t):.2f} USD")
    heat = report["open_risk_usd"]
    heat_cap = limits.max_portfolio_heat_pct
    print(f"open risk    {heat:.2f} USD" + (f" / {heat_cap / 100 * equity:.2f} USD ({heat_cap:g}% of equity)" if heat_cap else ""))
    for name, use in groups.items():
        print(f"group risk   {name} {use['used_usd']:.2f}/{use['budget_usd']:.2f} USD ({limits.max_corr_group_risk_pct:g}% of equity)")
    print("loss-capped  " + ("; ".join(capped) if capped else "none"))
    problems = report["integrity_violations"]
    print("integrity    " + ("ok" if not problems else f"{len(problems)} violation(s); run `tradestore verify`"))
    return 0


def cmd_open(store: TradeStore, args: argparse.Namespace) -> int:
    trade = store.open_trade(args.symbol, args.direction, args.entry, args.stop, args.target, args.size,
                             args.setup, args.grade, args.notes)
    _print_trade(trade, args.json)
    return 0


def cmd_close(store: TradeStore, args: argparse.Namespace) -> int:
    _print_trade(store.close_trade(args.trade_id, args.exit_price, args.reason, args.lessons), args.json)
    return 0


def cmd_partial(store: TradeStore, args: argparse.Namespace) -> int:
    _print_trade(store.partial_close(args.trade_id, args.fraction, args.exit_price, args.reason), args.json)
    return 0


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
    return 0


def cmd_verify(store: TradeStore, args: argparse.Namespace) -> int:
    problems = store.verify_integrity()
    for problem in problems:
        print(f"violation: {problem}")
    if problems:
        print(f"{store.trade_log}: {len(problems)} integrity violation(s)")
        return 1
    print(f"{store.trade_log}: ok ({len(store.get_all_trades())} trades)")
    if args.out is not None:
        from .reconciler import verify_report

        return verify_report(_reconciler(store, args))
    return 0


def _reconciler(store: TradeStore, args: argparse.Namespace):
    from .reconciler import StateReconciler

    return StateReconciler(store.trade_log, args.out, starting_capital=store.limits.starting_capital,
                           fsync=not args.no_fsync)


def cmd_reconcile(store: TradeStore, args: argparse.Namespace) -> int:
    from . import reconciler

    rec = _reconciler(store, args)
    if args.every is None:
        return reconciler.run_once(rec, as_json=args.json)
    import signal
    import threading

    stop = threading.Event()  # set by SIGTERM or Ctrl-C; the loop finishes its cycle and exits 0
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return reconciler.run_every(rec, args.every, stop, as_json=args.json,
                                emit=lambda line: print(line, flush=True))


def cmd_recover(store: TradeStore, args: argparse.Namespace) -> int:
    print(store.recover(force=args.force))
    return 0


def cmd_init(store: TradeStore, args: argparse.Namespace) -> int:
    if os.path.exists(DEFAULT_CONFIG) and not args.force:
        raise UsageError(f"{DEFAULT_CONFIG} exists; use --force to overwrite it")
    with open(DEFAULT_CONFIG, "w") as f:
        f.write(CONFIG_EXAMPLE)
    print(f"wrote {DEFAULT_CONFIG}")
    return 0


def cmd_pg_init(_store: None, args: argparse.Namespace) -> int:
    from .pgstore import init_schema  # psycopg only for the PostgreSQL commands

    print(init_schema(_pg_dsn(args)))
    return 0


def cmd_pg_export(_store: None, args: argparse.Namespace) -> int:
    from .pgstore import PgTradeStore

    count = PgTradeStore(args.account, _pg_dsn(args)).export(args.out)
    print(f"wrote {args.out}: {count} trades of account {args.account!r}")
    return 0


def _pg_dsn(args: argparse.Namespace) -> str:
    from .pgstore import resolve_dsn

    try:
        return resolve_dsn(args.dsn)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _add_pg_commands(sub) -> None:
    """The PostgreSQL commands: no trade log file, so none of the common options."""
    dsn_help = "libpq connection string or postgresql:// URL (default: $TRADESTORE_PG_DSN)"
    text = "create the tradestore tables in a PostgreSQL database (idempotent; needs tradestore[postgres])"
    p = sub.add_parser("pg-init", help=text, description=text)
    p.add_argument("--dsn", help=dsn_help)
    p.set_defaults(func=cmd_pg_init, no_store=True)
    text = "write a PostgreSQL account as a trade log file (for reconcile, verify and other readers)"
    p = sub.add_parser("pg-export", help=text, description=text)
    p.add_argument("--dsn", help=dsn_help)
    p.add_argument("--account", required=True, help="the account name")
    p.add_argument("--out", required=True, metavar="FILE", help="the file to write (atomically)")
    p.set_defaults(func=cmd_pg_export, no_store=True)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help=f"TOML config (default: ./{DEFAULT_CONFIG} if present)")
    common.add_argument("--log", metavar="FILE", help="trade log (default: trade_log from the config, else trades.json)")
    common.add_argument("--lock", metavar="FILE", help="lock file (default: <log>.lock)")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    common.add_argument("--no-fsync", action="store_true", help="skip fsync (tests only: not crash-safe)")
    for name, kind in LIMIT_OPTIONS.items():
        common.add_argument("--" + name.replace("_", "-"), type=kind, metavar="N", help=argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog="tradestore",
        description="Inspect and change a tradestore trade log. Limits come from tradestore.toml "
        "or flags (--max-positions, --starting-capital, --max-corr-group-risk-pct, "
        "--asset-consecutive-loss-cap, --loss-cap-cooldown-hours, --max-drawdown-pct, "
        "--max-daily-loss-pct, --max-portfolio-heat-pct, --lock-timeout).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
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
    p.add_argument("trade_id")
    p.add_argument("exit_price", type=float)
    p.add_argument("--reason", default="", help="exit reason, e.g. 'TP hit'")
    p.add_argument("--lessons", default="")
    p = add("partial", cmd_partial, "close a fraction of an open trade")
    p.add_argument("trade_id")
    p.add_argument("fraction", type=float, help="fraction of the remaining size, 0 < f < 1")
    p.add_argument("exit_price", type=float)
    p.add_argument("--reason", default="Partial TP")
    p = add("update", cmd_update, "change stop, target, notes, grade or setup of an open trade")
    p.add_argument("trade_id")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="repeatable")
    p = add("verify", cmd_verify, "check every integrity invariant of the log (exit 1 on violations)")
    p.add_argument("--out", metavar="DIR", help="also check the derived files in DIR against a fresh rebuild")
    p = add("reconcile", cmd_reconcile, "rebuild the derived files from the log (exit 1 if the guard aborts)")
    p.add_argument("--out", metavar="DIR", default="state", help="output directory (default: state)")
    p.add_argument("--every", metavar="SECONDS", type=float,
                   help="repeat every SECONDS, one line per cycle, until SIGTERM or Ctrl-C")
    p = add("recover", cmd_recover, "restore an unreadable log from its backup, after validating the backup")
    p.add_argument("--force", action="store_true", help="restore even if the log is readable")
    p = add("init", cmd_init, f"write an example {DEFAULT_CONFIG} in the current directory")
    p.add_argument("--force", action="store_true")
    _add_pg_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        store = None if getattr(args, "no_store", False) else store_from_args(args)
        return args.func(store, args)
    except UsageError as exc:
        print(f"tradestore: {exc}", file=sys.stderr)
        return 2
    except (TradeStoreError, OSError, ImportError) as exc:
        print(f"tradestore {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
