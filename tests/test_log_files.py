"""The files of a log: one lock file per log, no file that aliases the log, no blocking on odd
files, a lost log refused by the store and the reconciler alike, errors that name the fix."""

from __future__ import annotations

import errno
import itertools
import logging
import math
import os
import threading
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, strategies as st

from tradestore import CorruptTradeLog, FileLock, LockTimeout, StateReconciler, TradeStore, UnsafePath, atomic, derive
from tradestore.cli import UsageError, build_parser, store_from_args
from tradestore.reconciler import GUARD_FILE
from tradestore_harness.workers import make_spec


def open_one(store, symbol="BTC"):
    return store.open_trade(symbol, "LONG", 100, 95, 120, 1)


# --------------------------------------------------------------------------- one lock file per log


def test_a_store_naming_another_lock_file_is_refused_and_writes_nothing(tmp_path):
    # The README's old tour used lock_file="trades.lock" while the CLI used trades.json.lock:
    # two lock files for one log, which excluded nothing and lost an acknowledged trade.
    log = tmp_path / "trades.json"
    open_one(TradeStore(log))
    before = log.read_bytes()
    with pytest.raises(UnsafePath, match=r"lock_file=.*trades\.lock.*always .*trades\.json\.lock"):
        TradeStore(log, lock_file=tmp_path / "trades.lock")
    assert log.read_bytes() == before and not (tmp_path / "trades.lock").exists()
    assert TradeStore(log, lock_file=tmp_path / "trades.json.lock").lock_file == str(tmp_path / "trades.json.lock")


def _routes(tmp_path):
    """Every way this test knows to name one log: plain, relative, through '..', through a
    symlinked directory, through a symlink to the file, through a chain of symlinks."""
    real = tmp_path / "data" / "trades.json"
    real.parent.mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "dirlink").symlink_to(tmp_path / "data")
    (tmp_path / "link.json").symlink_to(real)
    (tmp_path / "link2.json").symlink_to(tmp_path / "link.json")
    return real, {
        "plain": str(real),
        "dotdot": str(tmp_path / "sub" / ".." / "data" / "trades.json"),
        "relative": os.path.relpath(real),
        "dir symlink": str(tmp_path / "dirlink" / "trades.json"),
        "file symlink": str(tmp_path / "link.json"),
        "symlink chain": str(tmp_path / "link2.json"),
    }


def test_every_route_to_one_log_gets_the_same_lock_file_and_log(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real, routes = _routes(tmp_path)
    stores = {name: TradeStore(route) for name, route in routes.items()}
    assert {s.lock_file for s in stores.values()} == {str(real) + ".lock"}
    # Writes through any route land in the one file (a symlink is not replaced by a copy).
    for i, store in enumerate(stores.values()):
        open_one(store, f"S{i}")
    assert (tmp_path / "link.json").is_symlink()
    assert len(TradeStore(real).get_all_trades()) == len(routes)


@given(st.data())
def test_any_lock_file_but_the_logs_own_is_refused(tmp_path_factory, data):
    tmp_path = tmp_path_factory.mktemp("routes")
    real, routes = _routes(tmp_path)
    (tmp_path / "lock-link").symlink_to(str(real) + ".lock")
    log_route = data.draw(st.sampled_from(sorted(routes)))
    good = [str(real) + ".lock", str(tmp_path / "sub" / ".." / "data" / "trades.json.lock"),
            str(tmp_path / "dirlink" / "trades.json.lock"), str(tmp_path / "lock-link")]
    bad = [str(tmp_path / "trades.lock"), routes["file symlink"] + ".lock", str(real),
           atomic.backup_path(str(real)), str(tmp_path / "data" / "other.lock"), "trades.json.lock"]
    lock = data.draw(st.sampled_from(good + bad))
    if lock in good:
        assert TradeStore(routes[log_route], lock).lock_file == str(real) + ".lock"
    else:
        with pytest.raises(UnsafePath, match="lock_file"):
            TradeStore(routes[log_route], lock)


def test_library_cli_config_and_harness_agree_on_the_lock_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "trades.json"
    library = TradeStore(log).lock_file
    cli = store_from_args(build_parser().parse_args(["status"])).lock_file
    harness = make_spec("tradestore", str(tmp_path), "w0")["lock_file"]
    assert library == cli == harness == str(log) + ".lock"
    (tmp_path / "tradestore.toml").write_text('trade_log = "trades.json"\nlock_file = "trades.lock"\n')
    with pytest.raises(UsageError, match="lock_file"):
        store_from_args(build_parser().parse_args(["status"]))
    with pytest.raises(UsageError, match="lock_file"):
        store_from_args(build_parser().parse_args(["status", "--config", "/dev/null", "--lock", "x.lock"]))


# --------------------------------------------------------------------------- lock file aliasing the log


@pytest.mark.parametrize("victim", ["log", "backup"])
def test_a_lock_file_hard_linked_to_the_log_or_backup_is_refused(tmp_path, victim):
    log = tmp_path / "trades.json"
    store = TradeStore(log)
    open_one(store)
    open_one(store, "SOL")
    target = log if victim == "log" else tmp_path / "trades.json.bak"
    os.unlink(store.lock_file)
    os.link(target, store.lock_file)  # the same inode under the lock file's name
    before = target.read_bytes()
    with pytest.raises(UnsafePath, match="hard link"):
        TradeStore(log)
    assert target.read_bytes() == before


def test_a_symlinked_lock_file_is_refused_with_a_clear_error(tmp_path):
    log = tmp_path / "trades.json"
    (tmp_path / "trades.json.lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafePath, match="symlink"):
        TradeStore(log)


def test_a_hard_link_made_after_the_store_was_built_never_gets_the_pid_hint(tmp_path):
    log = tmp_path / "trades.json"
    store = TradeStore(log, keep_backup=False)
    open_one(store)
    os.unlink(store.lock_file)
    os.link(log, store.lock_file)  # now the lock file is the log's inode
    before = log.read_bytes()
    open_one(store, "SOL")  # locks (the old inode) and writes the log: the hint must not land in it
    after_lock = open(store.lock_file, "rb").read()
    assert after_lock == before  # the old version, untouched by any pid hint
    assert [t["symbol"] for t in TradeStore(log).get_all_trades()] == ["BTC", "SOL"]


# --------------------------------------------------------------------------- reconciler outputs


def _collisions(tmp_path):
    """(log, output_dir) pairs where a derived file would be the log, its backup or lock."""
    out = tmp_path / "state"
    out.mkdir()
    cases = []
    for name in (GUARD_FILE, *derive.FILES):
        cases.append((f"log named {name} in the output dir", out / name, out))
    (tmp_path / "alias").symlink_to(out)
    cases.append(("output dir through a symlink", out / "portfolio.json", tmp_path / "alias"))
    for i, name in enumerate(derive.FILES):
        sub = tmp_path / f"hard{i}"
        sub.mkdir()
        log = tmp_path / f"log{i}.json"
        TradeStore(log).open_trade("BTC", "LONG", 100, 95, 120, 1)
        os.link(log, sub / name)
        cases.append((f"{name} hard-linked to the log", log, sub))
    for role in ("bak", "lock"):
        sub = tmp_path / f"sym-{role}"
        sub.mkdir()
        log = tmp_path / f"log-{role}.json"
        TradeStore(log).open_trade("BTC", "LONG", 100, 95, 120, 1)
        TradeStore(log).open_trade("ETH", "LONG", 100, 95, 120, 1)
        (sub / "equity.json").symlink_to(f"{log}.{role}")
        cases.append((f"equity.json a symlink to the {role}", log, sub))
    return cases


def test_a_reconciler_whose_outputs_are_the_logs_files_is_refused_at_construction(tmp_path):
    for why, log, out in _collisions(tmp_path):
        if not log.exists():
            TradeStore(log).open_trade("BTC", "LONG", 100, 95, 120, 1)
        before = {p: p.read_bytes() for p in (log, log.with_name(log.name + ".bak")) if p.exists()}
        with pytest.raises(UnsafePath, match="derived file"):
            StateReconciler(log, out)
        assert {p: p.read_bytes() for p in before} == before, why


def test_a_collision_made_after_construction_stops_the_cycle_before_it_writes(tmp_path):
    log = tmp_path / "trades.json"
    TradeStore(log).open_trade("BTC", "LONG", 100, 95, 120, 1)
    rec = StateReconciler(log, tmp_path / "state")
    assert rec.reconcile().ok
    os.unlink(tmp_path / "state" / "portfolio.json")
    os.link(log, tmp_path / "state" / "portfolio.json")
    before = log.read_bytes()
    with pytest.raises(UnsafePath):
        rec.reconcile()
    assert log.read_bytes() == before


def test_reconciler_next_to_its_log_with_ordinary_names_is_fine(tmp_path):
    log = tmp_path / "trades.json"
    TradeStore(log).open_trade("BTC", "LONG", 100, 95, 120, 1)
    assert StateReconciler(log, tmp_path).reconcile().ok  # same directory, different names


# --------------------------------------------------------------------------- lost log: one decision


STATES = {
    "absent": None,
    "good": b'{"schema":1,"next_id":2,"trades":[]}',
    "empty": b"",
    "torn": b'{"schema":1,"next_id":2,"tra',
}


@pytest.mark.parametrize("log_state,backup_state", list(itertools.product(STATES, STATES)))
def test_the_reconciler_refuses_exactly_the_logs_the_store_refuses(tmp_path, log_state, backup_state):
    log = tmp_path / "trades.json"
    for path, state in ((log, log_state), (tmp_path / "trades.json.bak", backup_state)):
        if STATES[state] is not None:
            path.write_bytes(STATES[state])
    try:
        TradeStore(log).get_all_trades()
        store_refuses = False
    except CorruptTradeLog:
        store_refuses = True
    result = StateReconciler(log, tmp_path / "state").reconcile()  # no guard memory yet
    assert result.aborted == store_refuses
    if log_state == "absent" and backup_state != "absent":
        assert store_refuses and "lost" in result.reason  # never an empty, healthy account
    assert not (tmp_path / "state" / "portfolio.json").exists() or not store_refuses


# --------------------------------------------------------------------------- paths that are not files


def _odd_files(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    directory = tmp_path / "dir"
    directory.mkdir()
    (tmp_path / "to-fifo").symlink_to(fifo)
    (tmp_path / "to-device").symlink_to("/dev/zero")
    (tmp_path / "to-dir").symlink_to(directory)
    return {"FIFO": fifo, "directory": directory, "symlink to a FIFO": tmp_path / "to-fifo",
            "symlink to a device": tmp_path / "to-device", "symlink to a directory": tmp_path / "to-dir"}


def _finishes(fn, seconds=20.0):
    """Run fn in a thread; return its exception (None if it returned). Fails if it hangs."""
    outcome = []

    def run():
        try:
            fn()
            outcome.append(None)
        except BaseException as exc:  # reported to the test
            outcome.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert outcome, f"{fn} blocked"
    return outcome[0]


def test_a_log_that_is_not_a_regular_file_is_refused_at_once(tmp_path):
    for kind, path in _odd_files(tmp_path).items():
        exc = _finishes(lambda: TradeStore(path))
        assert isinstance(exc, UnsafePath) and "not a regular file" in str(exc), kind


def test_a_log_replaced_by_an_odd_file_later_never_blocks_the_writer_holding_the_lock(tmp_path):
    for kind in _odd_files(tmp_path / "probe" if (tmp_path / "probe").mkdir() is None else None):
        where = tmp_path / kind.replace(" ", "-")
        where.mkdir()
        odd = _odd_files(where)[kind]
        log = where / "trades.json"
        store = TradeStore(log, lock_timeout=5)
        open_one(store)
        os.unlink(log)
        if odd.is_symlink():
            log.symlink_to(os.readlink(odd))
        else:
            os.rename(odd, log)
        for call in (lambda: open_one(store, "ETH"), store.get_all_trades, store.recover):
            assert isinstance(_finishes(call), UnsafePath), kind
        assert not store._lock.held_by_current_thread()  # released after the refusal
        result = []
        assert _finishes(lambda: result.append(StateReconciler(log, tmp_path / "st").reconcile())) is None
        assert result[0].aborted and "not a regular file" in result[0].reason, kind


def test_a_backup_that_is_a_fifo_does_not_block_recover(tmp_path):
    log = tmp_path / "trades.json"
    store = TradeStore(log)
    open_one(store)
    open_one(store, "SOL")
    log.write_bytes(b'{"schema":1,"next_id":4,"trad')
    os.unlink(tmp_path / "trades.json.bak")
    os.mkfifo(tmp_path / "trades.json.bak")
    assert isinstance(_finishes(store.recover), UnsafePath)
    with pytest.raises(UnsafePath):
        TradeStore(log)  # and a new store is refused at once


def test_a_lock_file_that_is_not_a_regular_file_is_refused(tmp_path):
    from tradestore import FileLock

    os.mkfifo(tmp_path / "fifo.lock")
    (tmp_path / "dir.lock").mkdir()
    for name in ("fifo.lock", "dir.lock"):
        exc = _finishes(lambda: FileLock(tmp_path / name, timeout=1).acquire())
        assert isinstance(exc, UnsafePath), name
        assert "not a regular file" in str(exc) or "is a directory" in str(exc)


# --------------------------------------------------------------------------- lock_timeout


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-10**400, max_value=10**400),
                 st.decimals(allow_nan=True, allow_infinity=True), st.fractions(),
                 st.sampled_from([None, True, False, "5", b"5", [], object()])))
def test_lock_timeout_accepts_exactly_none_and_numbers_at_least_zero(tmp_path_factory, value):
    log = tmp_path_factory.mktemp("t") / "t.json"
    try:
        number = None if value is None else float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.inf if isinstance(value, int) and not isinstance(value, bool) and value > 0 else math.nan
    valid = value is None or (not isinstance(value, (bool, str, bytes, list))
                              and type(value) is not object and not math.isnan(number) and number >= 0)
    if valid:
        store = TradeStore(log, lock_timeout=value)
        assert store._lock.timeout == (None if number == math.inf else number)
    else:
        with pytest.raises(ValueError, match="lock_timeout"):
            TradeStore(log, lock_timeout=value)


@pytest.mark.xdist_group("processes")
def test_infinite_lock_timeout_waits_for_the_holder(tmp_path):
    from .workers import SPAWN, hold_lock

    store = TradeStore(tmp_path / "t.json", lock_timeout=math.inf)
    open_one(store)  # no holder: before, math.inf raised OverflowError here
    acquired, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_lock, args=(store.lock_file, acquired, release))
    holder.start()
    assert acquired.wait(60)
    waiting = threading.Event()

    class Seen(logging.Handler):
        def emit(self, record):
            if "waiting" in record.getMessage():
                waiting.set()

    handler = Seen()
    logging.getLogger("tradestore.locking").addHandler(handler)
    store._lock.slow_wait_s = 0.05
    try:
        writer = threading.Thread(target=open_one, args=(store, "SOL"))
        writer.start()
        assert waiting.wait(60)  # it waits (past any finite default) instead of raising
        release.set()
        writer.join(60)
    finally:
        logging.getLogger("tradestore.locking").removeHandler(handler)
        release.set()
        holder.join(60)
    assert [t["symbol"] for t in store.get_all_trades()] == ["BTC", "SOL"]


@pytest.mark.parametrize("value", [float("nan"), -1, -0.001, -math.inf, Decimal("NaN"), Decimal("sNaN"), "1"])
def test_bad_lock_timeouts_name_the_option(tmp_path, value):
    with pytest.raises(ValueError, match="lock_timeout"):
        TradeStore(tmp_path / "t.json", lock_timeout=value)
    with pytest.raises(ValueError, match="timeout"):
        from tradestore import FileLock

        FileLock(tmp_path / "x.lock").acquire(timeout=value)


def test_lock_timeout_of_any_numeric_type(tmp_path):
    expected = {0: 0.0, 2.5: 2.5, Decimal("1.5"): 1.5, Fraction(1, 4): 0.25, 10**400: None, math.inf: None, None: None}
    for value, seconds in expected.items():
        assert TradeStore(tmp_path / "t.json", lock_timeout=value)._lock.timeout == seconds


class Hostile:
    def __repr__(self):
        raise RuntimeError("no repr")


def test_a_hostile_repr_does_not_hide_the_error(tmp_path):
    with pytest.raises(ValueError, match="lock_timeout=<Hostile object>"):
        TradeStore(tmp_path / "t.json", lock_timeout=Hostile())


# --------------------------------------------------------------------------- errors that name the fix


def test_a_missing_directory_is_named_with_the_fix_not_through_the_lock_file(tmp_path):
    store = TradeStore(tmp_path / "nowhere" / "trades.json")
    with pytest.raises(FileNotFoundError) as caught:
        open_one(store)
    message = str(caught.value)
    assert f"directory {tmp_path / 'nowhere'} does not exist" in message and "create it" in message
    assert ".lock" not in message.split("must hold")[0]


def test_an_unwritable_directory_is_named_not_the_temp_file(tmp_path, monkeypatch):
    store = TradeStore(tmp_path / "trades.json")
    open_one(store)
    real_open = os.open

    def no_permission(path, flags, *args, **kw):
        if str(path).endswith(".tmp"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", no_permission)
    with pytest.raises(PermissionError) as caught:
        open_one(store, "ETH")
    message = str(caught.value)
    assert ".tmp" not in message and f"directory {tmp_path}" in message and "writable" in message


def test_lock_file_in_an_unwritable_or_read_only_place_names_the_directory(tmp_path, monkeypatch):
    from tradestore import FileLock

    real_open = os.open
    for error in (errno.EACCES, errno.EROFS):
        def refuse(path, flags, *args, _error=error, **kw):
            if str(path).endswith(".lock"):
                raise (PermissionError if _error == errno.EACCES else OSError)(_error, os.strerror(_error), path)
            return real_open(path, flags, *args, **kw)

        monkeypatch.setattr(os, "open", refuse)
        with pytest.raises(OSError) as caught:
            FileLock(tmp_path / "t.lock").acquire()
        monkeypatch.setattr(os, "open", real_open)
        assert f"directory {tmp_path}" in str(caught.value)
    monkeypatch.setattr(os, "open", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError, match="I/O error"):  # other errors pass unchanged
        FileLock(tmp_path / "u.lock").acquire()


def test_an_invalid_json_log_points_to_recover(tmp_path):
    log = tmp_path / "trades.json"
    log.write_text('{"trades": [')
    with pytest.raises(CorruptTradeLog, match="tradestore recover --log"):
        TradeStore(log).get_all_trades()


# --------------------------------------------------------------------------- logging


def test_refusals_are_logged_at_info_with_check_and_reason(store, caplog):
    caplog.set_level(logging.INFO, logger="tradestore")
    open_one(store)
    with pytest.raises(Exception):
        open_one(store)
    with pytest.raises(Exception):
        store.close_trade("T999", 1)
    refusals = [r for r in caplog.records if r.levelno == logging.INFO and "refused" in r.getMessage()]
    assert [r.check for r in refusals] == ["duplicate_symbol", "TradeNotFound"]
    assert "BTC" in refusals[0].reason and "T999" in refusals[1].reason


def test_integrity_problems_are_logged_at_error(store, caplog):
    open_one(store)
    with pytest.raises(Exception):
        with store.transaction() as tx:
            tx.ledger.get("T001")["size"] = 5.0
            tx.ledger.changed.add("T001")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "integrity" in errors[0].getMessage()
    store_log = store.trade_log
    with open(store_log, "w") as f:
        f.write("{")
    with pytest.raises(CorruptTradeLog):
        TradeStore(store_log).get_all_trades()
    assert any("unreadable" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_the_library_is_silent_by_default(tmp_path):
    import subprocess
    import sys

    script = (
        "from tradestore import TradeStore\n"
        f"s = TradeStore({str(tmp_path / 't.json')!r})\n"
        "s.open_trade('BTC', 'LONG', 100, 95, 120, 1)\n"
        "try:\n    s.open_trade('BTC', 'LONG', 100, 95, 120, 1)\nexcept Exception:\n    pass\n"
        "import logging; print(any(isinstance(h, logging.NullHandler) for h in logging.getLogger('tradestore').handlers))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "" and done.stdout.strip() == "True"


def _while_held_in_another_process(log, attempt, held="HELD"):
    """Run ``attempt()`` while a spawned process holds a transaction on ``log`` (checks done,
    write pending); then let it commit. Returns (attempt's outcome, symbols in the log)."""
    from .workers import SPAWN, hold_in_transaction

    checked, release, done = SPAWN.Event(), SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold_in_transaction, args=(str(log), checked, release, done, held))
    holder.start()
    try:
        assert checked.wait(60)
        try:
            attempt()
            outcome = "wrote"
        except LockTimeout:
            outcome = "waited"
    finally:
        release.set()
        assert done.wait(60)
        holder.join(60)
    return outcome, [t["symbol"] for t in TradeStore(log).get_all_trades()]


@pytest.mark.xdist_group("processes")
def test_stores_on_every_route_to_a_log_exclude_each_other(tmp_path):
    real, routes = _routes(tmp_path)
    for i, (name, route) in enumerate(sorted(routes.items())):
        other = TradeStore(route, lock_timeout=0.2, correlation_groups={})
        outcome, symbols = _while_held_in_another_process(real, lambda: open_one(other, f"R{i}"), f"H{i}")
        assert outcome == "waited", name  # the same lock, whatever the route
        assert symbols[-1] == f"H{i}"


@pytest.mark.xdist_group("processes")
def test_negative_control_a_second_lock_file_loses_an_acknowledged_trade(tmp_path):
    # What the refused lock_file="trades.lock" used to do: the same check catches it.
    log = tmp_path / "trades.json"
    TradeStore(log).open_trade("BTC", "LONG", 100, 95, 120, 1)
    other = TradeStore(log, lock_timeout=0.2, correlation_groups={})
    other._lock = FileLock(tmp_path / "trades.lock", timeout=0.2)  # bypasses the refusal
    outcome, symbols = _while_held_in_another_process(log, lambda: open_one(other, "SOL"))
    assert outcome == "wrote"  # no exclusion ...
    assert "SOL" not in symbols  # ... and the holder's commit overwrote the acknowledged SOL


def test_a_fifo_swapped_in_right_after_a_write_is_reported_not_waited_on(tmp_path, monkeypatch):
    seen = []
    log = tmp_path / "trades.json"
    store = TradeStore(log, on_integrity_violation=seen.append)
    open_one(store)
    real = atomic.write_atomic

    def write_then_swap(path, data, **kw):
        result = real(path, data, **kw)
        os.unlink(path)
        os.mkfifo(path)  # another program, ignoring the lock, replaces the log
        return result

    monkeypatch.setattr(atomic, "write_atomic", write_then_swap)
    assert _finishes(lambda: open_one(store, "ETH")) is None
    assert seen and "ignores the lock" in seen[0][0]
