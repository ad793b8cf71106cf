"""Hostile input to every public entry point, over the whole input space.

Each test draws arguments from every kind of value Python has (ints far beyond the double
range, floats with NaN, infinities, subnormals and negative zero, Decimal with NaN, sNaN and
Infinity, Fraction, numpy-like scalars, booleans, text with lone surrogates, None, containers,
objects whose ``__repr__``, ``__float__`` and ``__index__`` raise) and asserts the one contract:

- the call succeeds, or raises a documented error (a TradeStoreError for operations, ValueError
  for a limit), never OverflowError, TypeError, RecursionError or the value's own exception;
- after a refusal every file of the store (log, backup, lock file) is byte-identical and no
  file appeared (no temp file left);
- after a success the log is one the library reads again, and every read and risk check, the
  reconciler included, keeps working on it (an accepted value never breaks a later sum).

A seed is printed by hypothesis on failure (``--hypothesis-seed`` replays it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import math
import os
import tempfile
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradestore import InvalidTrade, RiskLimits, StateReconciler, TradeStore, TradeStoreError
from tradestore import cli
from tradestore.values import MAX_AMOUNT, to_float

# --------------------------------------------------------------------------- hostile values


class FakeInt:
    """Behaves like a numpy integer scalar (numpy itself is no dependency)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __index__(self) -> int:
        return self.n

    def __float__(self) -> float:
        return float(self.n)

    def __repr__(self) -> str:
        return f"int64({self.n})"


class FakeFloat:
    """Behaves like a numpy float scalar: converts through ``__float__`` only."""

    def __init__(self, x: float) -> None:
        self.x = x

    def __float__(self) -> float:
        return self.x

    def __repr__(self) -> str:
        return f"float32({self.x!r})"


class bool_:  # noqa: N801 - numpy's name for its boolean scalar, which is no bool subclass
    def __float__(self) -> float:
        return 1.0

    def __index__(self) -> int:
        return 1


class Hostile:
    """Every dunder a library might call raises."""

    def _boom(self, *args):
        raise RuntimeError("hostile")

    __repr__ = __str__ = __float__ = __index__ = __bool__ = __lt__ = __gt__ = __le__ = __ge__ = _boom
    __eq__ = _boom  # type: ignore[assignment]
    __hash__ = object.__hash__  # hashable, so it can be a dict key
    __format__ = _boom


class HostileKey:
    """A dict key whose text forms raise (hashing and equality must work for a key)."""

    def _boom(self, *args):
        raise RuntimeError("hostile")

    __repr__ = __str__ = __format__ = _boom


try:  # real numpy scalars too, when numpy happens to be installed (it is no dependency)
    import numpy as _np

    NUMPY = [_np.float64(1.5), _np.float32(2.5), _np.int64(7), _np.int8(-3), _np.bool_(True),
             _np.float64("nan"), _np.float32("inf"), _np.uint64(2**64 - 1), _np.complex128(1)]
except ImportError:  # pragma: no cover - depends on the machine
    NUMPY = []

huge_ints = st.one_of(
    st.integers(-(10**400), 10**400),
    st.sampled_from([2**53 + 1, 2**1023, 2**1024, -(2**1024), 10**308, 10**309, 10**5000, -(10**5000)]),
)
floats = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True)
decimals = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([Decimal("sNaN"), Decimal("-sNaN"), Decimal("NaN"), Decimal("-Infinity"),
                     Decimal("1e400"), Decimal("1e-400"), Decimal("-0"), Decimal("100"), Decimal("0.5")]),
)
fractions = st.one_of(st.fractions(), st.sampled_from([Fraction(10**400, 7), Fraction(1, 10**400), Fraction(1, 2)]))
fakes = st.one_of(st.builds(FakeInt, st.integers(-(10**20), 10**20)), st.builds(FakeFloat, floats),
                  st.builds(FakeInt, huge_ints), st.just(bool_()))
oddities = st.sampled_from([
    None, True, False, "1", "100", "nan", "", b"1", bytearray(b"2"), [], [1], {}, (), {1: 2}, object(),
    Hostile(), complex(1, 0), 1j, datetime(2026, 1, 1), timedelta(1), ..., 1e308, -0.0, 5e-324,
    2.2250738585072014e-308, MAX_AMOUNT, math.nextafter(MAX_AMOUNT, math.inf), *NUMPY,
])
texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["\ud800", "a\udfffb", "x" * 10_001, " ", "BTC", " eth ", "LONG", "short", "T001",
                     "t001", "T" + "9" * 16, "\x00", "\u200b", "İ", "ß", "ﬃ", "Ⅻ", "１２", "1_000"]),
)
plausible = st.one_of(st.floats(0.01, 1e6), st.integers(1, 10**6))
numbers = st.one_of(plausible, huge_ints, floats, decimals, fractions, fakes, oddities)
anything = st.one_of(numbers, texts)

# --------------------------------------------------------------------------- the store's files

T0 = datetime(2026, 3, 2, 12, tzinfo=timezone.utc)
LIMITS = dict(correlation_groups={"majors": ["BTC", "ETH"]}, loss_cap_cooldown_hours=24.0,
              max_drawdown_pct=50.0, max_daily_loss_pct=40.0, max_portfolio_heat_pct=90.0,
              max_corr_group_risk_pct=90.0, asset_consecutive_loss_cap=1)


def snapshot(directory: str) -> dict[str, bytes]:
    """Every file in ``directory`` and its bytes (a new temp file or output shows up too)."""
    files = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                files[name] = f.read()
        else:
            files[name] = b"<directory>"
    return files


@contextlib.contextmanager
def account(clock=lambda: T0, **limits):
    """A store on a log with history: T001 BTC LONG open, T002 ETH SHORT open after a partial
    exit, T003 SOL closed at a loss (so the loss cap and its cooldown are live), and a backup."""
    with tempfile.TemporaryDirectory() as directory:
        log = os.path.join(directory, "trades.json")
        setup = TradeStore(log, fsync=False, clock=lambda: T0 - timedelta(hours=2), **LIMITS)
        setup.open_trade("BTC", "LONG", 100, 90, 120, 1)
        setup.open_trade("ETH", "SHORT", 100, 110, 80, 2)
        setup.partial_close("T002", 0.5, 95)
        setup.open_trade("SOL", "LONG", 50, 45, 60, 1)
        setup.close_trade("T003", 46)
        options = {**LIMITS, **limits}
        store = TradeStore(log, fsync=False, clock=clock, **options)
        with store.transaction():
            pass  # the lock file now holds this process's pid hint, as after any call
        yield store, directory


def assert_readable_everywhere(store: TradeStore, directory: str) -> None:
    """The log is one every reader and check of the library works on."""
    fresh = TradeStore(store.trade_log, fsync=False, clock=store._clock, **LIMITS)
    for reader in (store, fresh):
        assert math.isfinite(reader.equity())
        reader.get_all_trades(), reader.get_open_trades(), reader.get_closed_trades(), reader.get_next_id()
        assert isinstance(reader.verify_integrity(), list)
        for symbol in ("BTC", "SOL", "ADA"):
            ok, reason = reader.can_open_position(symbol, "LONG", 10, 9, 1)
            assert isinstance(ok, bool) and isinstance(reason, str)
    before = snapshot(directory)
    out = os.path.join(directory, "state")
    result = StateReconciler(store.trade_log, out, fsync=False, clock=store._clock).reconcile()
    assert result.ok, result.reason
    after = snapshot(directory)
    assert after["trades.json"] == before["trades.json"]  # the reconciler never writes the log


def call(store: TradeStore, directory: str, method: str, *args) -> object:
    """Call ``store.method(*args)``; on a refusal every file must be as it was."""
    before = snapshot(directory)
    try:
        result = getattr(store, method)(*args)
    except TradeStoreError as exc:
        assert not isinstance(exc, (OverflowError, TypeError))
        str(exc)  # the message can always be built
        assert snapshot(directory) == before, f"{method} refused ({exc}) but changed files"
        return exc
    assert not [n for n in os.listdir(directory) if n.endswith(".tmp")], "temp file left"
    assert_readable_everywhere(store, directory)
    return result


def replaced(base: tuple, changes: list[tuple[int, object]]) -> tuple:
    """``base`` with some positions replaced: mostly valid calls with a few hostile arguments."""
    args = list(base)
    for position, value in changes:
        args[position % len(args)] = value
    return tuple(args)


def changes(values=anything):
    return st.lists(st.tuples(st.integers(0, 20), values), min_size=1, max_size=3)


# --------------------------------------------------------------------------- writes

OPEN_BASE = ("ADA", "LONG", 10, 9, 12, 1, "setup", "A", "notes")
SHORT_BASE = ("ADA", "SHORT", 10, 11, 8, 1, "", "", "")


@given(short=st.booleans(), edits=changes())
def test_open_trade(short, edits):
    args = replaced(SHORT_BASE if short else OPEN_BASE, edits)
    with account() as (store, directory):
        result = call(store, directory, "open_trade", *args)
        if isinstance(result, dict):
            for field in ("entry_price", "stop_price", "target_price", "size"):
                assert type(result[field]) is float and 0 < result[field] <= MAX_AMOUNT


@given(edits=changes())
def test_close_trade(edits):
    args = replaced(("T001", 110, "TP", "lesson"), edits)
    with account() as (store, directory):
        result = call(store, directory, "close_trade", *args)
        if isinstance(result, dict):
            assert math.isfinite(result["pnl_usd"])


@given(edits=changes())
def test_partial_close(edits):
    args = replaced(("T001", 0.5, 110, "part"), edits)
    with account() as (store, directory):
        result = call(store, directory, "partial_close", *args)
        if isinstance(result, dict):
            assert 0 < result["size"] <= 1  # a tiny fraction may leave the size as it was


updatable = st.sampled_from(["stop_price", "target_price", "notes", "grade", "setup_type", "size", "status",
                             "id", "lessons", "unknown"])
update_maps = st.dictionaries(st.one_of(updatable, st.builds(HostileKey), st.integers()), anything, max_size=3)


@given(trade_id=st.one_of(st.sampled_from(["T001", "T002", "T003", "T999"]), anything), updates=st.one_of(update_maps, anything))
def test_update_trade(trade_id, updates):
    with account() as (store, directory):
        call(store, directory, "update_trade", trade_id, updates)


pairs = st.tuples(st.sampled_from(["T001", "T002", "T003"]), update_maps)
batches = st.one_of(st.lists(st.one_of(pairs, anything), max_size=3), st.lists(pairs, max_size=3).map(tuple), anything)


@given(batch=batches)
def test_update_trades_batch(batch):
    with account() as (store, directory):
        call(store, directory, "update_trades_batch", batch)


# --------------------------------------------------------------------------- the advisory check


def _open_refusal(store, args):
    try:
        with store.transaction() as tx:
            tx.open_trade(*args)
            raise _Rollback
    except _Rollback:
        return None
    except InvalidTrade as exc:
        return exc.field
    except TradeStoreError as exc:
        return type(exc).__name__


class _Rollback(Exception):
    pass


@given(short=st.booleans(), edits=changes(), probe=st.booleans())
def test_can_open_position_validates_exactly_as_open_trade(short, edits, probe):
    symbol, direction, entry, stop, target, size = replaced((SHORT_BASE if short else OPEN_BASE)[:6], edits)
    with account() as (store, directory):
        before = snapshot(directory)
        try:
            if probe:
                answer = store.can_open_position(symbol, direction)
            else:
                answer = store.can_open_position(symbol, direction, entry, stop, size)
        except InvalidTrade as exc:
            answer = exc.field
        assert snapshot(directory) == before  # advisory: never writes
        if probe:  # no prices: only the symbol and direction are judged, as open_trade judges them
            base = SHORT_BASE if normalized_direction(direction) == "SHORT" else OPEN_BASE
            entry, stop, size = base[2], base[3], base[5]
        # the same call to open_trade, with a target on the profit side of the entry
        try:
            number = to_float(entry)
        except ValueError:
            number = 10.0
        target = number / 2 if normalized_direction(direction) == "SHORT" else min(number * 2, MAX_AMOUNT)
        refusal = _open_refusal(store, (symbol, direction, entry, stop, target, size))
        if isinstance(answer, str):  # can_open_position refused the input: open_trade refuses the same field
            assert refusal == answer, (answer, refusal)
        elif probe:  # accepted input: open_trade does not refuse the symbol or direction
            assert refusal in (None, "RiskRejected"), (answer, refusal)
        else:  # and with the prices, the verdict is open_trade's
            assert answer[0] == (refusal is None) and refusal in (None, "RiskRejected"), (answer, refusal)


def normalized_direction(direction):
    return direction.strip().upper() if isinstance(direction, str) else None


# --------------------------------------------------------------------------- reads


@given(trade_id=anything)
def test_reads_by_id(trade_id):
    with account() as (store, directory):
        before = snapshot(directory)
        try:
            store.get_trade(trade_id)
        except TradeStoreError as exc:
            str(exc)
        assert snapshot(directory) == before


# --------------------------------------------------------------------------- limits


def _takes(cls, name: str) -> bool:
    """Whether ``cls(...)`` takes the keyword ``name`` (by name, or through ``**options``)."""
    parameters = inspect.signature(cls).parameters
    return name in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


LIMIT_NAMES = sorted(f.name for f in dataclasses.fields(RiskLimits)
                     if f.name != "correlation_groups" and _takes(TradeStore, f.name))


@given(name=st.sampled_from(LIMIT_NAMES), value=anything)
def test_every_limit_of_the_store(name, value):
    with tempfile.TemporaryDirectory() as directory:
        try:
            TradeStore(os.path.join(directory, "trades.json"), fsync=False, **{name: value})
        except ValueError as exc:
            assert name in str(exc)
            assert not os.listdir(directory)  # building a store writes nothing
            return
    with account(**{name: value}) as (store, directory):  # accepted: every later use works
        call(store, directory, "open_trade", *OPEN_BASE)
        call(store, directory, "open_trade", "SOL", "LONG", 50, 45, 60, 1)
        call(store, directory, "close_trade", "T001", 1)


groups = st.one_of(
    st.dictionaries(st.one_of(texts, st.integers()), st.one_of(st.lists(texts, max_size=3), texts, anything), max_size=2),
    anything,
)


@given(value=groups)
def test_correlation_groups(value):
    with tempfile.TemporaryDirectory() as directory:
        try:
            TradeStore(os.path.join(directory, "trades.json"), fsync=False, correlation_groups=value)
        except ValueError as exc:
            assert "correlation_groups" in str(exc)
            return
    with account(correlation_groups=value) as (store, directory):
        call(store, directory, "open_trade", *OPEN_BASE)


clocks = st.one_of(
    st.datetimes(timezones=st.none() | st.timezones() | st.just(timezone(timedelta(hours=23, minutes=59)))),
    st.sampled_from([datetime.max, datetime.min, datetime.max.replace(tzinfo=timezone.utc),
                     datetime.min.replace(tzinfo=timezone.utc), datetime(9999, 12, 31, 23, 59),
                     datetime(1, 1, 1, tzinfo=timezone(-timedelta(hours=23)))]),
)


@settings(max_examples=60)
@given(moment=clocks, cooldown=st.one_of(st.none(), st.floats(0, 1e300), st.just(1e308)))
def test_time_arithmetic_at_the_ends_of_the_calendar(moment, cooldown):
    with account(clock=lambda: moment, loss_cap_cooldown_hours=cooldown) as (store, directory):
        for method, args in (("open_trade", OPEN_BASE), ("open_trade", ("SOL", "LONG", 50, 45, 60, 1)),
                             ("partial_close", ("T001", 0.5, 105)), ("close_trade", ("T001", 95))):
            try:
                call(store, directory, method, *args)
            except ValueError as exc:  # a clock whose time UTC cannot express: named, nothing written
                assert "clock" in str(exc) and not isinstance(exc, TradeStoreError)


# --------------------------------------------------------------------------- the reconciler


def _reconciler_limits() -> list[str]:
    return sorted({n for n in ("corruption_threshold", "starting_capital", *LIMIT_NAMES) if _takes(StateReconciler, n)})


@given(name=st.sampled_from(_reconciler_limits()), value=anything)
def test_every_limit_of_the_reconciler(name, value):
    with account() as (store, directory):
        before = snapshot(directory)
        try:
            reconciler = StateReconciler(store.trade_log, os.path.join(directory, "out"), fsync=False,
                                         clock=lambda: T0, **{name: value})
        except ValueError as exc:
            assert name in str(exc)
            assert snapshot(directory) == before
            return
        result = reconciler.reconcile()
        assert result.ok, result.reason
        assert snapshot(directory)["trades.json"] == before["trades.json"]


# --------------------------------------------------------------------------- the command line

number_words = st.one_of(
    numbers.map(lambda v: _safe_str(v)), texts,
    st.sampled_from(["nan", "-nan", "inf", "-Infinity", "1e400", "-1e309", "0x10", "1_000", " 5 ", "１２",
                     "0", "-0", "5e-324", "1e15", "1.0000000000000002e15", "9" * 400, "9" * 5000]),
)


def _safe_str(value):
    try:
        return str(value)
    except Exception:
        return "x"


@settings(max_examples=60)
@given(command=st.sampled_from(["open", "close", "partial", "update", "limits"]), words=st.lists(number_words, min_size=5, max_size=5))
def test_command_line_numbers(command, words):
    words = [w.replace("\x00", "") for w in words]  # argv cannot hold NUL
    with account() as (store, directory):
        log = store.trade_log
        argv = {
            "open": ["open", "ADA", "LONG", words[0], words[1], words[2], words[3]],
            "close": ["close", "T001", words[0]],
            "partial": ["partial", "T001", words[0], words[1]],
            "update": ["update", "T001", "--set", f"stop_price={words[0]}", "--set", f"target_price={words[1]}"],
            "limits": ["open", "ADA", "LONG", "10", "9", "12", "1", "--max-positions", words[0],
                       "--starting-capital", words[1], "--max-daily-loss-pct", words[2]],
        }[command] + ["--log", log, "--no-fsync"]
        before = snapshot(directory)
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as exc:  # argparse refuses what its type= cannot read
                code = exc.code
        assert code in (0, 1, 2), (code, err.getvalue())
        if code:
            assert snapshot(directory) == before
            assert err.getvalue().strip()
        else:
            assert_readable_everywhere(store, directory)


@pytest.mark.parametrize("value", [10**400, Decimal("sNaN"), Hostile(), float("nan"), "7"])
def test_examples_of_the_class_fail_cleanly(value):
    # One line per kind, readable in a report; the property tests above cover the space.
    with account() as (store, directory):
        assert isinstance(call(store, directory, "open_trade", "ADA", "LONG", value, 9, 12, 1), InvalidTrade)
        assert isinstance(call(store, directory, "partial_close", "T001", value, 110), InvalidTrade)
        with pytest.raises(InvalidTrade, match="entry_price"):
            store.can_open_position("ADA", "LONG", value, 9, 1)
    with pytest.raises(ValueError, match="starting_capital"):
        TradeStore("unused.json", starting_capital=value)
