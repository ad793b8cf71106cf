"""Baseline stores the benchmark measures tradestore against.

The first two enforce the same four rules as tradestore (position cap, duplicate open symbol,
correlation group risk, asset consecutive loss cap), with the same configuration, so that the
benchmark compares storage designs and not rule sets:

- :class:`SeedPatternStore` follows the seed's original pattern: the trade log is pretty-printed
  JSON (``indent=2``) parsed on every call, rewritten through a fixed ``.tmp`` name, read back
  after every write for an integrity check, never fsynced, serialised by ``fcntl.flock`` on a
  lock file.
- :class:`SqliteStore` keeps one row per trade in SQLite in WAL mode with ``synchronous=FULL``
  and runs the four checks as SQL queries inside ``BEGIN IMMEDIATE``, the way a user who chose
  SQLite would write it.

They exist for measurement only: they are not hardened (no corruption handling, no recovery)
and the library never imports them.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

from tradestore.ledger import Ledger
from tradestore import risk
from tradestore.locking import FileLock
from tradestore.risk import RiskLimits

__all__ = ["RuleConfig", "Rejected", "SeedPatternStore", "SqliteStore", "AppendFloorStore"]


@dataclass(frozen=True)
class RuleConfig:
    """The risk configuration every store in the benchmark runs with."""

    max_positions: int = 7
    starting_capital: float = 5000.0
    correlation_groups: dict[str, list[str]] = field(default_factory=dict)
    max_corr_group_risk_pct: float = 4.0
    asset_consecutive_loss_cap: int = 3

    def limits(self) -> RiskLimits:
        """The same configuration as tradestore's :class:`RiskLimits`."""
        return RiskLimits(
            max_positions=self.max_positions, starting_capital=self.starting_capital,
            correlation_groups={k: tuple(v) for k, v in self.correlation_groups.items()},
            max_corr_group_risk_pct=self.max_corr_group_risk_pct,
            asset_consecutive_loss_cap=self.asset_consecutive_loss_cap,
        )

    def groups_of(self, symbol: str) -> list[list[str]]:
        return [
            [s.strip().upper() for s in members]
            for members in self.correlation_groups.values()
            if symbol in {s.strip().upper() for s in members}
        ]


class Rejected(Exception):
    """A baseline refused a trade; ``check`` names the rule as tradestore's RiskRejected does."""

    def __init__(self, check: str, reason: str):
        super().__init__(f"{check}: {reason}")
        self.check = check
        self.reason = reason


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _new_trade(tid, symbol, direction, entry, stop, target, size, setup_type, grade, notes):
    return {
        "id": tid, "symbol": symbol, "direction": direction,
        "entry_price": entry, "stop_price": stop, "original_stop": stop,
        "target_price": target, "size": size, "original_size": size,
        "entry_time": _now(), "exit_price": None, "exit_time": None, "exit_reason": None,
        "pnl_usd": None, "pnl_pct": None, "r_multiple": None, "net_pnl_usd": None, "net_r_multiple": None,
        "status": "OPEN", "setup_type": setup_type, "grade": grade, "notes": notes,
        "partial_exits": [], "lessons": "",
    }


class SeedPatternStore:
    """The seed's storage pattern with tradestore's rules; see the module docstring."""

    def __init__(self, trade_log: str, lock_file: str | None = None, *, rules: RuleConfig):
        self.trade_log = trade_log
        self.lock_file = lock_file or trade_log + ".lock"
        self.rules = rules
        self._limits = rules.limits()

    @contextmanager
    def _locked(self):
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _load(self) -> dict:
        # The seed treats a missing or unreadable log as empty; kept to stay faithful.
        try:
            with open(self.trade_log, encoding="utf-8") as f:
                data = json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            data = {"trades": []}
        data.setdefault("trades", [])
        return data

    def _save(self, data: dict) -> None:
        tmp = self.trade_log + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
        os.replace(tmp, self.trade_log)
        # The seed's post-write integrity check: read the whole file back and compare.
        with open(self.trade_log, encoding="utf-8") as f:
            check = json.load(f)
        if len(check["trades"]) != len(data["trades"]):
            raise RuntimeError("post-write integrity check failed")

    def get_all_trades(self) -> list[dict]:
        return self._load()["trades"]

    def get_open_trades(self) -> list[dict]:
        return [t for t in self._load()["trades"] if t["status"] == "OPEN"]

    def open_trade(self, symbol, direction, entry_price, stop_price, target_price, size,
                   setup_type="", grade="", notes="") -> dict:
        with self._locked():
            data = self._load()
            # tradestore's own pure rules over the freshly parsed list: the same checks, the
            # same validation and the same record; only the storage pattern differs.
            ledger = Ledger(data["trades"], data.get("next_id"))
            trade = risk.checked_open(ledger, symbol, direction, entry_price, stop_price, target_price, size,
                                      setup_type, grade, notes, now=datetime.now(timezone.utc),
                                      limits=self._limits)
            data["trades"], data["next_id"] = ledger.trades, ledger.next_id
            self._save(data)
            return trade

    def close_trade(self, trade_id: str, exit_price: float, exit_reason: str = "", lessons: str = "") -> dict:
        with self._locked():
            data = self._load()
            ledger = Ledger(data["trades"], data.get("next_id"))
            trade = ledger.close_trade(trade_id, exit_price, exit_reason, lessons,
                                       now=datetime.now(timezone.utc))
            self._save(data)
            return trade


_COLUMNS = (
    "id", "symbol", "direction", "entry_price", "stop_price", "original_stop", "target_price",
    "size", "original_size", "entry_time", "exit_price", "exit_time", "exit_reason", "pnl_usd",
    "pnl_pct", "r_multiple", "net_pnl_usd", "net_r_multiple", "status", "setup_type", "grade", "notes",
    "partial_exits", "lessons",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trades (
    n INTEGER PRIMARY KEY,            -- id number; 'T%03d' % n is the trade id
    id TEXT NOT NULL UNIQUE,
    symbol TEXT NOT NULL, direction TEXT NOT NULL,
    entry_price REAL NOT NULL, stop_price REAL NOT NULL, original_stop REAL NOT NULL,
    target_price REAL NOT NULL, size REAL NOT NULL, original_size REAL NOT NULL,
    entry_time TEXT NOT NULL, exit_price REAL, exit_time TEXT, exit_reason TEXT,
    pnl_usd REAL, pnl_pct REAL, r_multiple REAL, net_pnl_usd REAL, net_r_multiple REAL, status TEXT NOT NULL,
    setup_type TEXT, grade TEXT, notes TEXT,
    partial_exits TEXT NOT NULL DEFAULT '[]',
    partial_pnl REAL NOT NULL DEFAULT 0,   -- sum of partial exits' pnl_usd, for equity
    lessons TEXT
);
CREATE INDEX IF NOT EXISTS trades_status ON trades(status, symbol);
CREATE INDEX IF NOT EXISTS trades_symbol_exit ON trades(symbol, status, exit_time);
"""


class SqliteStore:
    """One SQLite database (WAL, synchronous=FULL); each write is one BEGIN IMMEDIATE transaction.

    A committed write survives power loss (the WAL is fsynced at commit). Checks and the write
    run in the same transaction, which holds SQLite's write lock, so there is no TOCTOU window.
    """

    def __init__(self, path: str, *, rules: RuleConfig, busy_timeout_ms: int = 60000):
        self.path = path
        self.rules = rules
        self._limits = rules.limits()
        self.db = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    @staticmethod
    def create(path: str, trades: list[dict]) -> None:
        """Write ``trades`` (tradestore records) into a new database at ``path``, in WAL mode.

        The mode is kept in the file, so a store opening a copy finds it set: switching a
        database to WAL needs its exclusive lock, which a writer opening it while another one
        reads is refused at once ("database is locked"), busy timeout or not.
        """
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
        rows = []
        for t in trades:
            partials = t.get("partial_exits") or []
            rows.append((int(t["id"][1:]), *(json.dumps(partials) if c == "partial_exits" else t.get(c)
                                              for c in _COLUMNS),
                         sum(p["pnl_usd"] for p in partials)))
        db.execute("BEGIN")
        db.executemany(
            f"INSERT INTO trades (n, {', '.join(_COLUMNS)}, partial_pnl) "
            f"VALUES ({', '.join('?' * (len(_COLUMNS) + 2))})", rows)
        db.execute("COMMIT")
        db.close()

    @contextmanager
    def _write_txn(self):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _row(self, row) -> dict:
        t = dict(zip(_COLUMNS, row))
        t["partial_exits"] = json.loads(t["partial_exits"])
        return t

    def get_open_trades(self) -> list[dict]:
        cur = self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM trades WHERE status='OPEN' ORDER BY n")
        return [self._row(r) for r in cur]

    def get_all_trades(self) -> list[dict]:
        cur = self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM trades ORDER BY n")
        return [self._row(r) for r in cur]

    def _check(self, symbol: str, risk: float) -> None:
        """The four rules as SQL, in tradestore's order (duplicate, cap, loss cap, group risk)."""
        cfg = self.rules
        q = self.db.execute
        row = q("SELECT id FROM trades WHERE status='OPEN' AND symbol=?", (symbol,)).fetchone()
        if row:
            raise Rejected("duplicate_symbol", f"{symbol} already has OPEN trade {row[0]}")
        (n_open,) = q("SELECT count(*) FROM trades WHERE status='OPEN'").fetchone()
        if n_open >= cfg.max_positions:
            raise Rejected("position_cap", f"{n_open}/{cfg.max_positions} positions open")
        n = cfg.asset_consecutive_loss_cap
        if n:
            # a trade's net P&L: its final exit's pnl_usd plus its partial exits'
            last = q("SELECT pnl_usd + partial_pnl FROM trades WHERE symbol=? AND status='CLOSED' "
                     "ORDER BY exit_time DESC, n DESC LIMIT ?", (symbol, n)).fetchall()
            if len(last) == n and all(p <= 0 for (p,) in last):
                raise Rejected("loss_cap", f"{symbol}: last {n}/{n} closed trades lost")
        groups = cfg.groups_of(symbol)
        if groups:
            (realized,) = q("SELECT coalesce(sum(coalesce(pnl_usd, 0) + partial_pnl), 0) "
                            "FROM trades").fetchone()
            budget = (cfg.starting_capital + realized) * cfg.max_corr_group_risk_pct / 100.0
            for members in groups:
                (used,) = q(
                    "SELECT coalesce(sum(abs(entry_price - original_stop) * original_size), 0) "
                    f"FROM trades WHERE status='OPEN' AND symbol IN ({', '.join('?' * len(members))})",
                    members).fetchone()
                # Same relative slack as tradestore, so a budget filled exactly is allowed.
                if used + risk > budget + 1e-9 * max(1.0, abs(budget)):
                    raise Rejected("correlation_limit", f"group risk {used + risk:.2f} > {budget:.2f}")

    def open_trade(self, symbol, direction, entry_price, stop_price, target_price, size,
                   setup_type="", grade="", notes="") -> dict:
        # tradestore's validation and normalisation, so every store refuses the same input.
        p = Ledger().propose(symbol, direction, entry_price, stop_price, target_price, size,
                             now=datetime.now(timezone.utc), limits=self._limits)
        symbol, direction, entry, stop, target, size = (
            p.symbol, p.direction, p.entry_price, p.stop_price, p.target_price, p.size)
        with self._write_txn():
            self._check(symbol, p.risk)
            (n,) = self.db.execute("SELECT coalesce(max(n), 0) + 1 FROM trades").fetchone()
            trade = _new_trade(f"T{n:03d}", symbol, direction, entry, stop, target, size,
                               setup_type, grade, notes)
            self.db.execute(
                f"INSERT INTO trades (n, {', '.join(_COLUMNS)}) VALUES ({', '.join('?' * (len(_COLUMNS) + 1))})",
                (n, *(json.dumps(trade[c]) if c == "partial_exits" else trade[c] for c in _COLUMNS)))
            return trade

    def close_trade(self, trade_id: str, exit_price: float, exit_reason: str = "", lessons: str = "") -> dict:
        with self._write_txn():
            row = self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM trades WHERE id=? AND status='OPEN'",
                                  (trade_id,)).fetchone()
            if row is None:
                raise LookupError(f"no open trade {trade_id}")
            # tradestore's close arithmetic on this one row.
            t = Ledger([self._row(row)]).close_trade(trade_id, exit_price, exit_reason, lessons,
                                                    now=datetime.now(timezone.utc))
            self.db.execute(
                "UPDATE trades SET exit_price=?, exit_time=?, exit_reason=?, pnl_usd=?, pnl_pct=?, "
                "r_multiple=?, net_pnl_usd=?, net_r_multiple=?, status='CLOSED', lessons=? WHERE id=?",
                (t["exit_price"], t["exit_time"], t["exit_reason"], t["pnl_usd"], t["pnl_pct"],
                 t["r_multiple"], t["net_pnl_usd"], t["net_r_multiple"], t["lessons"], trade_id))
            return t


class AppendFloorStore:
    """The floor: lock, append one record-sized line, fsync, unlock; no rule, no state.

    Each write takes tradestore's own lock (:class:`FileLock` on ``path + ".lock"``), appends
    at the end of the file one line holding the written trade's full record and the next id
    (compact JSON, the size of the journal format's record of that write), fsyncs the file and
    releases the lock; it is acknowledged only after the fsync. The only state is the next id:
    when another process appended since this one's last write, it reads that tail (its last
    line) under the lock, as any append-based store must. Nothing is parsed, validated or
    checked beyond that, so no durable append-based store can write for less on this machine.

    The file's first line stands for the history (``{"history": n, "next_id": n + 1}``): an
    append costs the same whatever precedes it, so the floor does not copy the trades.
    """

    def __init__(self, path: str, *, lock_timeout: float = 300.0):
        self.path = path
        self._lock = FileLock(path + ".lock", timeout=lock_timeout)
        self._fd = os.open(path, os.O_RDWR)
        self._end = 0  # the end of the file as of this process's last look, under the lock
        self._next_id = 0
        self._mine: dict[str, dict] = {}  # the trades this process opened and has not closed
        with self._lock:
            self._catch_up()

    @staticmethod
    def create(path: str, history: int, next_id: int) -> None:
        """Write a new floor file standing for ``history`` trades."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps({"history": history, "next_id": next_id}) + "\n")

    @staticmethod
    def count(path: str) -> int:
        """Trades in the file: the history plus each distinct id opened (a close restates its
        trade; two opens that got one id, as writers without the lock would, count once)."""
        with open(path, encoding="utf-8") as f:
            head = json.loads(f.readline())
            opened = {t["id"] for t in (json.loads(line)["trades"][0] for line in f) if t["status"] == "OPEN"}
        return head["history"] + len(opened)

    def close(self) -> None:
        os.close(self._fd)

    def _catch_up(self) -> None:
        size = os.fstat(self._fd).st_size
        if size != self._end:
            tail = os.pread(self._fd, size - self._end, self._end)
            self._next_id = json.loads(tail.rstrip(b"\n").rsplit(b"\n", 1)[-1])["next_id"]
            self._end = size

    def _append(self, trade: dict) -> None:
        line = json.dumps({"next_id": self._next_id, "trades": [trade]}, separators=(",", ":"),
                          allow_nan=False).encode() + b"\n"
        os.pwrite(self._fd, line, self._end)
        os.fsync(self._fd)
        self._end += len(line)

    def get_open_trades(self) -> list[dict]:
        with self._lock:
            self._catch_up()
        return list(self._mine.values())

    def open_trade(self, symbol, direction, entry_price, stop_price, target_price, size,
                   setup_type="", grade="", notes="") -> dict:
        with self._lock:
            self._catch_up()
            trade = _new_trade(f"T{self._next_id:03d}", symbol, direction, entry_price, stop_price,
                               target_price, size, setup_type, grade, notes)
            self._next_id += 1
            self._append(trade)
        self._mine[trade["id"]] = trade
        return trade

    def close_trade(self, trade_id: str, exit_price: float, exit_reason: str = "", lessons: str = "") -> dict:
        if trade_id not in self._mine:
            raise LookupError(f"no open trade {trade_id} opened by this process")
        # tradestore's close arithmetic on this one record, so the line has the journal record's size.
        trade = Ledger([self._mine[trade_id]]).close_trade(trade_id, exit_price, exit_reason, lessons,
                                                          now=datetime.now(timezone.utc))
        with self._lock:
            self._catch_up()
            self._append(trade)
        del self._mine[trade_id]
        return trade
