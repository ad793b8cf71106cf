"""The store against a pure model, step by step, on a real disk.

A hypothesis state machine drives a real :class:`TradeStore` (real files, real flock, real
fsync) beside :class:`Model`, a small re-statement of the rules in ``docs/FORMAT.md`` that
shares no code with the library. Every operation is run on both; they must agree on the
outcome (the record, or the exception and, for a risk refusal, which check refused) and,
after every step, on the whole trade log.

Crashes are simulated in this process by the harness's file-system layer (:class:`CrashingOs`
arms an in-process crash of :class:`tradestore_harness.fsfaults.FsShim`): at a chosen call
(before it, after it, or half-way through a write) it raises ``SimulatedCrash``, a
``BaseException``, after which every later file-system call of the "dead" writer raises too,
so no clean-up of the dead writer reaches the disk. A fresh store
on the same files must then find exactly the state before the operation, or exactly the
state after it if the rename onto the log had completed.

The profile (``HYPOTHESIS_PROFILE=ci`` by default, ``long`` for deep runs) sets how many
examples and steps run; see ``tests/conftest.py``.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tradestore import (
    CorruptTradeLog,
    InvalidTrade,
    Ledger,
    RiskRejected,
    StateReconciler,
    TradeNotFound,
    TradeNotOpen,
    TradeStore,
)
from tradestore import atomic, derive, integrity, risk
from tradestore.reconciler import GUARD_FILE
from tradestore_harness.fsfaults import Fault, FsShim, SimulatedCrash

# -- the configuration both sides use --------------------------------------------------------

CAPITAL = 5000.0
MAX_POSITIONS = 3
LOSS_CAP = 2
GROUP_PCT = 4.0
GROUPS = {"majors": ("BTC", "ETH"), "layer1": ("SOL", "ADA")}
SYMBOLS = ["BTC", "ETH", "SOL", "ADA", "XRP", "LINK", " btc ", "Eth"]
TOLERANCE = 1e-9  # the relative slack FORMAT.md allows a budget filled exactly
START = datetime(2026, 1, 5, 6, 0, tzinfo=timezone.utc)
TICK = timedelta(seconds=10)


class Clock:
    """A clock the machine moves by hand: one tick per step, so exit times order closes."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def tick(self) -> None:
        self.now += TICK


# -- the model ------------------------------------------------------------------------------


@dataclass
class MTrade:
    """A trade as the model sees it: only what the rules need and what the log must show."""

    id: str
    symbol: str
    direction: str
    entry: float
    stop: float
    original_stop: float
    target: float
    size: float
    original_size: float
    notes: str
    status: str = "OPEN"
    exit_price: float | None = None
    exit_reason: str | None = None
    pnl: float | None = None
    closed_at: tuple[datetime, int] | None = None  # (exit time, id number): the loss-cap order
    partials: list[tuple[float, float, float]] = field(default_factory=list)  # price, size, pnl

    @property
    def sign(self) -> int:
        return 1 if self.direction == "LONG" else -1

    @property
    def initial_risk(self) -> float:
        return abs(self.entry - self.original_stop) * self.original_size

    def view(self) -> dict:
        """What must match the stored record."""
        return {
            "id": self.id, "symbol": self.symbol, "direction": self.direction,
            "entry_price": self.entry, "stop_price": self.stop, "original_stop": self.original_stop,
            "target_price": self.target, "size": self.size, "original_size": self.original_size,
            "notes": self.notes, "status": self.status, "exit_price": self.exit_price,
            "exit_reason": self.exit_reason, "pnl_usd": self.pnl,
            "partial_exits": [list(p) for p in self.partials],
        }


def record_view(record: dict) -> dict:
    """The same projection of a stored record."""
    view = {key: record[key] for key in (
        "id", "symbol", "direction", "entry_price", "stop_price", "original_stop", "target_price",
        "size", "original_size", "notes", "status", "exit_price", "exit_reason", "pnl_usd")}
    view["partial_exits"] = [[p["exit_price"], p["size_closed"], p["pnl_usd"]] for p in record["partial_exits"]]
    return view


class Ambiguous(Exception):
    """The model cannot tell: a budget is filled to within rounding. Either outcome is right."""


class Model:
    """The rules of docs/FORMAT.md, written out again from the spec; no library code."""

    def __init__(self) -> None:
        self.trades: dict[str, MTrade] = {}
        self.next_id = 1

    def copy(self) -> Model:
        return copy.deepcopy(self)

    def open_trades(self) -> list[MTrade]:
        return [t for t in self.trades.values() if t.status == "OPEN"]

    def equity(self) -> float:
        # the seed's equity: closed trades' final exits and every partial exit, open or closed
        realized = sum(t.pnl for t in self.trades.values() if t.status == "CLOSED")
        realized += sum(p[2] for t in self.trades.values() for p in t.partials)
        return CAPITAL + realized

    def _open(self, trade_id: str) -> MTrade:
        trade = self.trades.get(trade_id)
        if trade is None:
            raise TradeNotFound(trade_id)
        if trade.status != "OPEN":
            raise TradeNotOpen(trade_id)
        return trade

    # operations: each raises the library's exception type or returns the trade id

    def open(self, symbol, direction, entry, stop, target, size, notes="", *, now: datetime) -> str:
        symbol, direction = symbol.strip().upper(), direction.strip().upper()
        open_now = self.open_trades()
        for trade in open_now:
            if trade.symbol == symbol:
                raise RiskRejected("duplicate_symbol", "")
        if len(open_now) >= MAX_POSITIONS:
            raise RiskRejected("position_cap", "")
        history = sorted((t for t in self.trades.values() if t.symbol == symbol and t.status == "CLOSED"),
                         key=lambda t: t.closed_at)
        if len(history) >= LOSS_CAP and all(t.pnl + sum(p[2] for p in t.partials) <= 0 for t in history[-LOSS_CAP:]):
            raise RiskRejected("loss_cap", "")
        budget = GROUP_PCT / 100.0 * self.equity()
        for members in GROUPS.values():
            if symbol in members:
                used = sum(t.initial_risk for t in open_now if t.symbol in members)
                total = used + abs(entry - stop) * size
                if abs(total - budget) <= 1e-6 * max(1.0, abs(budget)):
                    raise Ambiguous("correlation_limit")
                if total > budget + TOLERANCE * max(1.0, abs(budget)):
                    raise RiskRejected("correlation_limit", "")
        trade_id = f"T{self.next_id:03d}"
        self.trades[trade_id] = MTrade(trade_id, symbol, direction, float(entry), float(stop), float(stop),
                                       float(target), float(size), float(size), notes)
        self.next_id += 1
        return trade_id

    def close(self, trade_id, price, reason="", *, now: datetime) -> str:
        trade = self._open(trade_id)
        trade.pnl = round(trade.sign * (price - trade.entry) * trade.size, 2)  # the remaining size only
        trade.exit_price, trade.exit_reason, trade.status = float(price), reason, "CLOSED"
        trade.closed_at = (now, int(trade_id[1:]))
        return trade_id

    def partial(self, trade_id, fraction, price, *, now: datetime) -> str:
        trade = self._open(trade_id)
        closed = round(trade.size * fraction, 6)  # the seed's rounding of sizes
        remaining = round(trade.size - closed, 6)
        if closed <= 0 or remaining <= 0:
            raise InvalidTrade("close_pct", fraction, "closes nothing or everything")
        pnl = round(trade.sign * (price - trade.entry) * closed, 2)
        trade.partials.append((float(price), closed, pnl))
        trade.size = remaining
        return trade_id

    def _check_update(self, trade_id, updates: dict) -> MTrade:
        trade = self._open(trade_id)
        stop = updates.get("stop_price", trade.stop)
        target = updates.get("target_price", trade.target)
        if "target_price" in updates and (target - trade.entry) * trade.sign <= 0:
            raise InvalidTrade("target_price", target, "")
        if (target - stop) * trade.sign <= 0:
            raise InvalidTrade("stop_price", stop, "")
        return trade

    @staticmethod
    def _apply(trade: MTrade, updates: dict) -> None:
        trade.stop = float(updates.get("stop_price", trade.stop))
        trade.target = float(updates.get("target_price", trade.target))
        trade.notes = updates.get("notes", trade.notes)

    def update(self, trade_id, updates: dict, *, now: datetime) -> str:
        self._apply(self._check_update(trade_id, updates), updates)
        return trade_id

    def batch(self, pairs, *, now: datetime) -> int:
        checked = [(self._check_update(tid, updates), updates) for tid, updates in pairs]
        ids = [tid for tid, _ in pairs]
        if len(set(ids)) != len(ids):
            raise InvalidTrade("batch", ids, "")
        for trade, updates in checked:
            self._apply(trade, updates)
        return len(checked)

    def views(self) -> list[dict]:
        return [t.view() for t in self.trades.values()]


# -- simulated crashes ----------------------------------------------------------------------


class CrashingOs:
    """The writer dies at the ``at``-th file-system call under ``root``: the harness's one
    interposition layer (:class:`FsShim`) with an in-process crash.

    ``mode``: ``before`` (the call never runs), ``after`` (it runs, then the writer dies) or
    ``torn`` (a write puts half its bytes, then the writer dies; other calls die before).
    After the death every counted call raises :class:`SimulatedCrash` without running, except
    ``close``, which the kernel does for a dead process anyway. ``landed`` is True once the
    rename onto ``trade_log`` has completed.
    """

    ACTIONS = {"before": "crash", "after": "crash-after", "torn": "torn"}

    def __init__(self, root: str, trade_log: str, at: int, mode: str) -> None:
        self.trade_log, self.mode = trade_log, mode
        self.ops: list = []
        self.shim = FsShim(root, fault=Fault(at, self.ACTIONS[mode], in_process=True), file_objects=False)

    @property
    def dead(self) -> bool:
        return self.shim.dead

    @property
    def calls(self) -> list[str]:
        return [c.kind for c in self.shim.calls]

    @property
    def landed(self) -> bool:
        return any(c.kind in ("replace", "rename") and c.dst == self.trade_log and c.ran for c in self.shim.calls)

    def __enter__(self) -> CrashingOs:
        self.shim.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shim.uninstall()


# -- the machine ----------------------------------------------------------------------------

prices = st.sampled_from([10.0, 20.0, 50.0, 100.0, 250.0, 1000.0])
sizes = st.sampled_from([0.1, 0.5, 1.0, 2.0, 3.0, 0.25])
fractions = st.sampled_from([0.25, 0.5, 0.1, 1 / 3])
moves = st.sampled_from([-0.3, -0.1, -0.02, 0.0, 0.02, 0.1, 0.3])  # exit price relative to entry
directions = st.sampled_from(["LONG", "SHORT", "long"])
notes_text = st.sampled_from(["", "trail", "moved stop", "é ünïcode"])


@st.composite
def open_args(draw):
    direction = draw(directions)
    entry = draw(prices)
    sign = 1 if direction.upper() == "LONG" else -1
    stop = entry * (1 - sign * draw(st.sampled_from([0.01, 0.05, 0.1, 0.2])))
    target = entry * (1 + sign * draw(st.sampled_from([0.05, 0.1, 0.5])))
    return (draw(st.sampled_from(SYMBOLS)), direction, entry, stop, target, draw(sizes), draw(notes_text))


_UPDATE_FIELDS = {
    "stop_price_move": st.sampled_from([-0.2, -0.05, 0.0, 0.05, 0.2, 0.6]),
    "target_price_move": st.sampled_from([-0.2, 0.1, 0.3, 0.8]),
    "notes": notes_text,
}
# at least one field, so no draw is thrown away (an empty update is a rejected call of its own)
updates_strategy = st.sampled_from(sorted(_UPDATE_FIELDS)).flatmap(
    lambda first: st.fixed_dictionaries(
        {first: _UPDATE_FIELDS[first]},
        optional={k: v for k, v in _UPDATE_FIELDS.items() if k != first},
    )
)


DAMAGE = ("delete", "truncate", "garbage", "tamper")
REJECTED_CALLS = {
    # name: (call on a store, expected exception type)
    "nan entry": (lambda s, tid: s.open_trade("DOGE", "LONG", float("nan"), 1, 2, 1), InvalidTrade),
    "stop above a long's entry": (lambda s, tid: s.open_trade("DOGE", "LONG", 10, 11, 12, 1), InvalidTrade),
    "unknown direction": (lambda s, tid: s.open_trade("DOGE", "UP", 10, 9, 12, 1), InvalidTrade),
    "zero size": (lambda s, tid: s.open_trade("DOGE", "LONG", 10, 9, 12, 0), InvalidTrade),
    "unknown trade": (lambda s, tid: s.close_trade("T999999", 10), TradeNotFound),
    "protected field": (lambda s, tid: s.update_trade(tid, {"pnl_usd": 1e9}), (InvalidTrade, TradeNotFound, TradeNotOpen)),
    "partial of 1": (lambda s, tid: s.partial_close(tid, 1.0, 10), (InvalidTrade, TradeNotFound, TradeNotOpen)),
    "empty update": (lambda s, tid: s.update_trade(tid, {}), (InvalidTrade, TradeNotFound, TradeNotOpen)),
    "batch naming one trade twice": (
        lambda s, tid: s.update_trades_batch([(tid, {"notes": "a"}), (tid, {"notes": "b"})]),
        (InvalidTrade, TradeNotFound, TradeNotOpen)),
}


def ops_strategy(ids):
    """One operation inside a transaction: (name, args) over the ids opened so far."""
    return st.one_of(
        st.tuples(st.just("open"), open_args()),
        st.tuples(st.just("close"), st.tuples(ids, moves)),
        st.tuples(st.just("partial"), st.tuples(ids, fractions, moves)),
        st.tuples(st.just("update"), st.tuples(ids, updates_strategy)),
    )


class StoreMachine(RuleBasedStateMachine):
    """A real store and the model, run side by side; see the module docstring."""

    trade_ids = Bundle("trade_ids")

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="tradestore-model-", dir=_scratch_root())
        self.log = os.path.join(self.dir, "trades.json")
        self.out = os.path.join(self.dir, "state")
        self.clock = Clock()
        self.model = Model()
        self.store = self.new_store()
        self.reconciler = StateReconciler(self.log, self.out, starting_capital=CAPITAL, clock=self.clock)
        self.reconciled: tuple[bytes, object] | None = None  # (log bytes, UTC date) of the last reconcile
        self.damaged: tuple[str, str] | None = None  # (file, kind) damaged since the last reconcile
        self.strays_possible = False  # a crash may leave temp files until the next write sweeps them
        self.ambiguous = 0

    def new_store(self) -> TradeStore:
        return TradeStore(
            self.log, max_positions=MAX_POSITIONS, starting_capital=CAPITAL, correlation_groups=GROUPS,
            max_corr_group_risk_pct=GROUP_PCT, asset_consecutive_loss_cap=LOSS_CAP, clock=self.clock,
        )

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- running one operation on both sides ------------------------------------------------

    def _trade_for(self, trade_id: str) -> MTrade | None:
        return self.model.trades.get(trade_id)

    def _concrete(self, name: str, args: tuple) -> tuple[tuple, tuple]:
        """Turn generated arguments into (store call args, model call args)."""
        if name == "open":
            return args, args
        if name == "batch":
            pairs = [(tid, self._updates(self._trade_for(tid), raw)) for tid, raw in args[0]]
            return (pairs,), (pairs,)
        trade = self._trade_for(args[0])
        entry = trade.entry if trade else 100.0
        if name == "close":
            tid, move = args
            price = entry * (1 + move)
            return (tid, price, "exit"), (tid, price, "exit")
        if name == "partial":
            tid, fraction, move = args
            price = entry * (1 + move)
            return (tid, fraction, price), (tid, fraction, price)
        if name == "update":
            tid, raw = args
            updates = self._updates(trade, raw)
            return (tid, updates), (tid, updates)
        raise AssertionError(name)  # pragma: no cover - every rule passes a known name

    @staticmethod
    def _updates(trade: MTrade | None, raw: dict) -> dict:
        entry = trade.entry if trade else 100.0
        sign = trade.sign if trade else 1
        updates = {}
        if "stop_price_move" in raw:
            updates["stop_price"] = entry * (1 - sign * raw["stop_price_move"])
        if "target_price_move" in raw:
            updates["target_price"] = entry * (1 + sign * raw["target_price_move"])
        if "notes" in raw:
            updates["notes"] = raw["notes"]
        return updates

    STORE_CALLS = {
        "open": lambda s, a: s.open_trade(a[0], a[1], a[2], a[3], a[4], a[5], "setup", "A", a[6])["id"],
        "close": lambda s, a: s.close_trade(*a)["id"],
        "partial": lambda s, a: s.partial_close(*a)["id"],
        "update": lambda s, a: s.update_trade(*a)["id"],
        "batch": lambda s, a: s.update_trades_batch(*a),
    }
    MODEL_CALLS = {
        "open": lambda m, a, now: m.open(*a, now=now),
        "close": lambda m, a, now: m.close(*a, now=now),
        "partial": lambda m, a, now: m.partial(*a, now=now),
        "update": lambda m, a, now: m.update(*a, now=now),
        "batch": lambda m, a, now: m.batch(*a, now=now),
    }

    def _predict(self, ops: list[tuple[str, tuple]]):
        """Run ``ops`` on a copy of the model: (new model, results) or (None, the exception)."""
        model = self.model.copy()
        results = []
        for name, model_args in ops:
            try:
                results.append(self.MODEL_CALLS[name](model, model_args, self.clock()))
            except Ambiguous:
                return "ambiguous", None
            except (InvalidTrade, RiskRejected, TradeNotFound, TradeNotOpen) as exc:
                return None, exc
        return model, results

    def _run(self, ops: list[tuple[str, tuple]], transaction: bool = False, crash: CrashingOs | None = None):
        """Apply ``ops`` to the store (in one transaction if asked) and to the model; compare."""
        self.clock.tick()
        concrete = [(name, *self._concrete(name, args)) for name, args in ops]
        predicted, outcome = self._predict([(name, margs) for name, _, margs in concrete])
        before = self._log_bytes()
        note(f"ops={[(n, s) for n, s, _ in concrete]} predicted={outcome!r}")
        store_results, store_error = [], None
        try:
            if crash is not None:
                crash.ops = [(n, m) for n, _, m in concrete]
                with crash:
                    store_results = self._call_store(concrete, transaction)
            else:
                store_results = self._call_store(concrete, transaction)
        except SimulatedCrash:
            return self._recover_after_crash(predicted, outcome, crash)
        except (InvalidTrade, RiskRejected, TradeNotFound, TradeNotOpen) as exc:
            store_error = exc
        self.strays_possible = False
        if predicted == "ambiguous":
            # A budget filled to within rounding: adopt the store's answer, checked by the invariants.
            self.ambiguous += 1
            event("budget filled to within rounding")
            if store_error is None:
                self.model = self._replay([(n, m) for n, _, m in concrete])
                return store_results
            assert self._log_bytes() == before, "a refused call changed the log"
            return None
        if predicted is None:
            assert store_error is not None, f"store accepted {concrete}; model expected {outcome!r}"
            assert type(store_error) is type(outcome), (store_error, outcome)
            if isinstance(outcome, RiskRejected):
                assert store_error.check == outcome.check, (store_error, outcome)
                event(f"rejected: {outcome.check}")
            else:
                event(f"refused: {type(outcome).__name__}")
            assert self._log_bytes() == before, "a refused call changed the log"
            return None
        assert store_error is None, f"store refused {concrete} with {store_error!r}; model accepted"
        assert store_results == outcome, (store_results, outcome)
        self.model = predicted
        event(f"ok: {'+'.join(n for n, _, _ in concrete)}" if transaction else f"ok: {concrete[0][0]}")
        return store_results

    def _replay(self, ops):
        model = self.model.copy()
        for name, margs in ops:
            try:
                self.MODEL_CALLS[name](model, margs, self.clock())
            except Ambiguous:
                # the store accepted the one the model could not decide: apply it as accepted
                assert name == "open"
                args = margs
                trade_id = f"T{model.next_id:03d}"
                model.trades[trade_id] = MTrade(trade_id, args[0].strip().upper(), args[1].strip().upper(), float(args[2]),
                                                float(args[3]), float(args[3]), float(args[4]),
                                                float(args[5]), float(args[5]), args[6])
                model.next_id += 1
        return model

    def _call_store(self, concrete, transaction: bool) -> list:
        if not transaction:
            name, sargs, _ = concrete[0]
            return [self.STORE_CALLS[name](self.store, sargs)]
        results = []
        with self.store.transaction() as tx:
            for name, sargs, _ in concrete:
                results.append(self.STORE_CALLS[name](tx, sargs) if name == "batch"
                               else self._tx_call(tx, name, sargs))
        return results

    @staticmethod
    def _tx_call(tx, name: str, a: tuple):
        if name == "open":
            return tx.open_trade(a[0], a[1], a[2], a[3], a[4], a[5], "setup", "A", a[6])["id"]
        return {"close": tx.close_trade, "partial": tx.partial_close, "update": tx.update_trade}[name](*a)["id"]

    def _recover_after_crash(self, predicted, outcome, crash: CrashingOs):
        """The writer died: a fresh store on the same files must see exactly before or after."""
        note(f"crash after calls {crash.calls}; landed={crash.landed}")
        # The kernel releases a dead process's flock; the simulated death may have come inside
        # acquire (the pid hint is written once the flock is taken), before any release could run.
        while self.store._lock.held_by_current_thread():
            self.store._lock.release()
        self.store = self.new_store()
        self.strays_possible = True
        if crash.landed:
            assert predicted is not None, "a refused operation renamed a file onto the log"
            self.model = self._replay(crash.ops) if predicted == "ambiguous" else predicted
            event("crash: operation landed")
            return outcome
        event(f"crash: operation lost ({crash.calls[-1] if crash.calls else '-'}, {crash.mode})")
        return None

    def _log_bytes(self) -> bytes | None:
        try:
            with open(self.log, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    # -- rules ------------------------------------------------------------------------------

    @rule(target=trade_ids, args=open_args())
    def open_trade(self, args):
        result = self._run([("open", args)])
        return multiple(*result) if result else multiple()

    @rule(trade_id=trade_ids, move=moves)
    def close_trade(self, trade_id, move):
        self._run([("close", (trade_id, move))])

    @rule(trade_id=trade_ids, fraction=fractions, move=moves)
    def partial_close(self, trade_id, fraction, move):
        self._run([("partial", (trade_id, fraction, move))])

    @rule(trade_id=trade_ids, updates=updates_strategy)
    def update_trade(self, trade_id, updates):
        self._run([("update", (trade_id, updates))])

    @rule(data=st.data())
    def update_batch(self, data):
        ids = st.sampled_from([*sorted(self.model.trades), "T999"])
        pairs = data.draw(st.lists(st.tuples(ids, updates_strategy), min_size=1, max_size=3), label="batch")
        self._run([("batch", (pairs,))])

    @rule(target=trade_ids, data=st.data())
    def transaction(self, data):
        ids = st.sampled_from(sorted(self.model.trades) or ["T001"])
        ops = data.draw(st.lists(ops_strategy(ids), min_size=2, max_size=4), label="transaction")
        results = self._run(ops, transaction=True)
        opened = [r for (name, _), r in zip(ops, results or []) if name == "open"]
        return multiple(*opened)

    @rule(call=st.sampled_from(sorted(REJECTED_CALLS)), trade_id=st.sampled_from(["T001", "T002", "T003"]))
    def rejected_operation(self, call, trade_id):
        self.clock.tick()
        action, expected = REJECTED_CALLS[call]
        before = self._log_bytes()
        with pytest.raises(expected):
            action(self.store, trade_id)
        assert self._log_bytes() == before, f"{call}: a refused call changed the log"
        self.strays_possible = False  # it took the lock and swept

    @rule(data=st.data(), at=st.integers(0, 14), mode=st.sampled_from(["before", "after", "torn"]))
    def crash_and_recover(self, data, at, mode):
        ids = st.sampled_from(sorted(self.model.trades) or ["T001"])
        op = data.draw(ops_strategy(ids), label="operation cut off")
        crash = CrashingOs(self.dir, self.log, at, mode)
        self._run([op], crash=crash)
        if not crash.dead:
            event("crash point past the last call: operation completed")

    @rule()
    def reconcile(self):
        result = self.reconciler.reconcile()
        assert result.ok, result.reason
        assert result.violations == [], result.violations
        if self.damaged is not None:
            name, kind = self.damaged
            if kind in ("delete", "truncate", "garbage"):
                assert name in result.healed, (self.damaged, result.healed)
            else:
                assert name in result.healed or name in result.updated, (self.damaged, result)
            event(f"healed: {kind}")
        self.damaged = None
        self.reconciled = (self._log_bytes(), self.clock().date())

    @precondition(lambda self: self.reconciled is not None)
    @rule(name=st.sampled_from(sorted((*derive.FILES, GUARD_FILE))), kind=st.sampled_from(DAMAGE))
    def damage_derived_file(self, name, kind):
        path = os.path.join(self.out, name)
        if not os.path.exists(path):
            return  # deleted by an earlier damage step; the reconcile rule checks the healing
        with open(path, "rb") as f:
            data = f.read()
        if kind == "delete":
            os.unlink(path)
        else:
            if kind == "truncate":
                data = data[: len(data) // 2]
            elif kind == "garbage":
                data = b"\x00garbage{"
            else:
                try:
                    doc = json.loads(data)
                except ValueError:
                    return  # already unreadable from an earlier damage step
                doc["tampered"] = True
                data = json.dumps(doc).encode()
            with open(path, "wb") as f:
                f.write(data)
        if self.damaged is None:
            self.damaged = (name, kind)

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def store_equals_model(self):
        stored = self.store.get_all_trades()
        assert [record_view(t) for t in stored] == self.model.views()
        on_disk = self._log_bytes()
        if on_disk is None:
            assert self.model.trades == {} and self.model.next_id == 1
        else:
            fresh = Ledger.from_json(on_disk)  # never torn, never unreadable
            assert fresh.trades == stored
            assert fresh.next_id == self.model.next_id
        assert self.store.get_next_id() == f"T{self.model.next_id:03d}"

    @invariant()
    def integrity_holds(self):
        assert self.store.verify_integrity() == []
        on_disk = self._log_bytes()
        if on_disk is not None:
            assert integrity.ledger_violations(Ledger.from_json(on_disk)) == []

    @invariant()
    def cap_and_duplicate_rule_hold(self):
        open_trades = self.store.get_open_trades()
        assert len(open_trades) <= MAX_POSITIONS
        symbols = [t["symbol"].strip().upper() for t in open_trades]
        assert len(symbols) == len(set(symbols))
        assert self.store.position_count() == len(open_trades)

    @invariant()
    def no_stray_temp_files_after_a_write(self):
        if not self.strays_possible:
            prefix = atomic.temp_prefix(self.log)
            strays = [n for n in os.listdir(self.dir) if n.startswith(prefix)]
            assert strays == [], f"temp files left after a write: {strays} (all: {os.listdir(self.dir)})"

    @invariant()
    def derived_files_equal_a_rebuild_after_reconcile(self):
        if self.reconciled is None or self.damaged is not None:
            return
        log_bytes, day = self.reconciled
        if log_bytes is not None and log_bytes == self._log_bytes() and day == self.clock().date():
            assert self.reconciler.verify() == {}


def _scratch_root() -> str | None:
    """Put the machine's files in memory when the machine has /dev/shm: fsync there is cheap."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


TestStoreAgainstModel = StoreMachine.TestCase


# -- the machine must be able to fail ---------------------------------------------------------


def _machine_fails() -> BaseException | None:
    """Run the machine briefly (after a test broke the library on purpose); return what it raised."""
    try:
        run_state_machine_as_test(
            StoreMachine,
            settings=settings(max_examples=200, stateful_step_count=30, deadline=None, database=None,
                              phases=["generate"], derandomize=True,
                              suppress_health_check=list(HealthCheck)),
        )
    except (AssertionError, CorruptTradeLog) as exc:
        return exc
    return None


def test_negative_control_without_the_position_cap_is_caught(monkeypatch):
    monkeypatch.setattr(risk, "BUILTIN_CHECKS", tuple(c for c in risk.BUILTIN_CHECKS if c is not risk.position_cap))
    assert _machine_fails() is not None


def _write_in_place(path, data, *, fsync=True, keep_backup=False):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
        return os.fstat(fd)
    finally:
        os.close(fd)


def test_negative_control_writing_in_place_is_caught_by_a_crash(monkeypatch):
    monkeypatch.setattr(atomic, "write_atomic", _write_in_place)
    failure = _machine_fails()
    assert failure is not None
