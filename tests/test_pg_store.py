"""PgTradeStore against a real local PostgreSQL server: same API, errors, rules and bytes as
TradeStore; the lock across processes; retries, lost COMMIT replies and killed writers."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import uuid
from decimal import Decimal

import pytest
from hypothesis import example, given, settings, strategies as st

from tests.conftest import FakeClock
from tradestore import IntegrityError, Ledger, LockTimeout, NestedTransactionError, StateReconciler, TradeStore
from tradestore_harness.processes import context

psycopg = pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg 3 (pip install 'tradestore[postgres]')")

from tradestore.pgstore import (  # noqa: E402
    RETRIES, CommitOutcomeUnknown, DatabaseError, PgTradeStore, SchemaMissing, init_schema, resolve_dsn,
)

SYMBOLS = ["BTC", "eth", " SOL ", "XRP", "DOGE"]


def pg(dsn, account, clock=None, **limits) -> PgTradeStore:
    return PgTradeStore(account, dsn, clock=clock, **limits)


# -- one set of rules: every outcome and every byte equal to the file store's ----------------

good = st.floats(min_value=50, max_value=150, allow_nan=False)
prices = st.one_of(good, good, good, st.sampled_from([0, -1, float("nan"), "100"]))  # mostly valid
ids = st.integers(1, 4)  # the first few ids: mostly trades that exist
step = st.one_of(  # one operation, of a store or of a transaction
    st.tuples(st.just("open"), st.sampled_from(SYMBOLS), st.sampled_from(["LONG", "SHORT", "up"]), prices,
              st.floats(min_value=0.01, max_value=2)),
    st.tuples(st.just("close"), ids, prices),
    st.tuples(st.just("partial"), ids, st.sampled_from([0.5, 0.25, 1.5]), prices),
    st.tuples(st.just("update"), ids, st.sampled_from([{"notes": "n"}, {"stop_price": 1.0}, {"id": "T9"}])),
    st.tuples(st.just("batch"), ids, ids),
    st.tuples(st.just("advance"), st.integers(1, 40)),
)
ops = st.lists(st.one_of(step, st.tuples(st.just("tx"), st.sampled_from(SYMBOLS), ids)), min_size=1, max_size=30)


def apply(store, clock, op):
    kind = op[0]
    if kind == "advance":
        clock.advance(hours=op[1])
        return None
    if kind == "open":
        _, symbol, direction, entry, size = op
        stop = entry * 0.95 if isinstance(entry, float) and direction != "SHORT" else (entry * 1.05 if isinstance(entry, float) else entry)
        target = entry * 1.2 if isinstance(entry, float) and direction != "SHORT" else (entry * 0.8 if isinstance(entry, float) else entry)
        return store.open_trade(symbol, direction, entry, stop, target, size, "setup", "A")
    tid = f"T{op[1]:03d}"
    if kind == "close":
        return store.close_trade(tid, op[2], "exit")
    if kind == "partial":
        return store.partial_close(tid, op[2], op[3])
    if kind == "update":
        return store.update_trade(tid, op[2])
    if kind == "batch":
        return store.update_trades_batch([(tid, {"notes": "a"}), (f"T{op[2]:03d}", {"grade": "B"})])
    with store.transaction() as tx:  # "tx": an open and a close that may fail: all or nothing
        tx.open_trade(op[1], "LONG", 100.0, 90.0, 120.0, 0.5)
        return tx.close_trade(tid, 105.0)


def outcome(store, clock, op):
    try:
        return ("ok", apply(store, clock, op))
    except Exception as exc:
        return (type(exc).__name__, str(exc))


@settings(max_examples=40)
@given(ops=ops)
@example(ops=[("open", "BTC", "LONG", 100.0, 1.0), ("partial", 1, 0.5, 110.0), ("update", 1, {"notes": "n"}),
              ("close", 1, 120.0), ("open", "BTC", "SHORT", 100.0, 1.0)])
def test_every_operation_gives_the_file_stores_outcome_and_document(pg_dsn, tmp_path_factory, ops):
    directory = tmp_path_factory.mktemp("diff")
    file_clock, pg_clock = FakeClock(), FakeClock()
    limits = dict(max_positions=3, asset_consecutive_loss_cap=2, max_portfolio_heat_pct=8.0)
    ours = TradeStore(directory / "trades.json", clock=file_clock, **limits)
    account = f"diff-{uuid.uuid4().hex}"
    # Two stores on the account take turns, so each also merges what the other wrote.
    pair = [pg(pg_dsn, account, pg_clock, **limits), pg(pg_dsn, account, pg_clock, **limits)]
    for n, op in enumerate(ops):
        theirs = pair[n % 2]
        expected = outcome(ours, file_clock, op)
        assert outcome(theirs, pg_clock, op) == expected, op
        on_disk = (directory / "trades.json").read_bytes() if (directory / "trades.json").exists() else None
        if on_disk is not None:  # both stores: the other one merges what this one wrote
            assert [s.export_document() for s in pair] == [on_disk, on_disk]
        assert theirs.can_open_position("BTC") == ours.can_open_position("BTC")
        assert theirs.get_next_id() == ours.get_next_id()
    # A second store (no cache) reads the same account.
    assert pg(pg_dsn, account).get_all_trades() == ours.get_all_trades()


def run_block(store, clock, block):
    """``block``'s operations in one transaction, each refusal caught inside it: the outcomes."""
    outcomes = []
    try:
        with store.transaction() as tx:
            for op in block:
                outcomes.append(outcome(tx, clock, op))
    except Exception as exc:
        outcomes.append((type(exc).__name__, str(exc)))
    return outcomes


@settings(max_examples=40)
@given(blocks=st.lists(st.lists(step, min_size=1, max_size=8), min_size=1, max_size=6))
@example(blocks=[[("open", "BTC", "LONG", 100.0, 1.0)], [("close", 1, 101.0), ("open", "BTC", "SHORT", 101.0, 1.0)]])
@example(blocks=[[("open", "BTC", "LONG", 100.0, 1.0), ("open", "ETH", "LONG", 100.0, 1.0)],
                 [("partial", 2, 0.5, 110.0), ("close", 1, 90.0), ("open", "BTC", "LONG", 95.0, 1.0),
                  ("close", 3, 96.0), ("open", " btc ", "SHORT", 96.0, 1.0), ("close", 2, 120.0),
                  ("open", "ETH", "SHORT", 120.0, 1.0)]])
def test_any_sequence_in_one_transaction_commits_as_the_file_store_commits_it(pg_dsn, tmp_path_factory, blocks):
    """Whatever order a block closes, reopens and changes trades in, the database commits what
    the file store commits (the schema's guards never refuse a state the rules allowed)."""
    directory = tmp_path_factory.mktemp("blocks")
    file_clock, pg_clock = FakeClock(), FakeClock()
    limits = dict(max_positions=3, asset_consecutive_loss_cap=2, max_portfolio_heat_pct=8.0)
    ours = TradeStore(directory / "trades.json", clock=file_clock, **limits)
    theirs = pg(pg_dsn, f"blocks-{uuid.uuid4().hex}", pg_clock, **limits)
    for block in blocks:
        assert run_block(theirs, pg_clock, block) == run_block(ours, file_clock, block), block
        if (directory / "trades.json").exists():
            assert theirs.export_document() == (directory / "trades.json").read_bytes()
    assert pg(pg_dsn, theirs.account).get_all_trades() == ours.get_all_trades()


def test_reads_and_derived_files_work_unchanged_on_an_export(pg_dsn, pg_account, tmp_path, clock):
    store = pg(pg_dsn, pg_account, clock)
    file_store = TradeStore(tmp_path / "file.json", clock=clock)
    for s in (store, file_store):
        t = s.open_trade("BTC", "LONG", 65000, 63500, 68000, 0.02, "RSI_Div", "A")
        s.partial_close(t["id"], 0.5, 66500)
        s.close_trade(t["id"], 67000, "TP hit")
        s.open_trade("ETH", "SHORT", 3000, 3100, 2700, 1.0)
    assert store.export(tmp_path / "pg.json") == 2
    fixed = lambda: clock.now  # noqa: E731
    a = StateReconciler(tmp_path / "pg.json", tmp_path / "a", clock=fixed)
    b = StateReconciler(tmp_path / "file.json", tmp_path / "b", clock=fixed)
    direct = StateReconciler(store, tmp_path / "c", clock=fixed)  # reads the account itself
    assert a.reconcile().ok and b.reconcile().ok and direct.reconcile().ok
    for name in ("portfolio.json", "equity.json", "risk_state.json", "setup_performance.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "c" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert direct.verify() == {}
    assert store.verify_integrity() == [] and store.equity() == file_store.equity()


# -- the account is held across processes ------------------------------------------------------

def _race(kind, dsn, account, limits, symbols):
    from tests import pg_workers

    mp = context()
    barrier, decided, results = mp.Barrier(len(symbols)), mp.Barrier(len(symbols)), mp.Queue()
    procs = [mp.Process(target=pg_workers.race_open, args=(kind, dsn, account, limits, s, barrier, decided, results, f"w{i}"))
             for i, s in enumerate(symbols)]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    return [g for g in got if g[1] == "ok"], got


@pytest.mark.parametrize("kind", ["ours", "control"])
def test_racing_opens_of_one_symbol_one_wins_and_the_unlocked_control_is_caught(pg_dsn, pg_account, kind):
    won, got = _race(kind, pg_dsn, pg_account, {"max_positions": 7}, ["BTC"] * 4)
    if kind == "ours":
        assert len(won) == 1, got
        assert all(g[1] == "RiskRejected" and "duplicate_symbol" in g[2] for g in got if g[1] != "ok"), got
    else:  # every racer checked the empty account before any wrote: the same check sees more
        assert len(won) > 1, got


@pytest.mark.parametrize("kind", ["ours", "control"])
def test_racing_opens_never_exceed_the_position_cap_and_the_control_does(pg_dsn, pg_account, kind):
    won, got = _race(kind, pg_dsn, pg_account, {"max_positions": 2}, ["BTC", "SOL", "XRP", "DOGE"])
    if kind == "ours":
        assert len(won) == 2, got
    else:
        assert len(won) > 2, got


def test_the_unique_index_refuses_a_second_open_trade_even_from_a_writer_that_skips_the_rules(pg_dsn, pg_account):
    """The second guard: a writer that does not see the OPEN trade still cannot add another."""
    problems = []

    class Blind(PgTradeStore):
        def _load(self, conn):  # sees the ids, not the open trades: the duplicate check passes
            version, ledger = super()._load(conn)
            self._cache = None
            return version, Ledger(next_id=ledger.next_id)

    pg(pg_dsn, pg_account).open_trade("BTC", "LONG", 100, 95, 120, 1)
    with pytest.raises(IntegrityError, match="second OPEN trade of one symbol") as caught:
        Blind(pg_account, pg_dsn, on_integrity_violation=problems.append).open_trade("btc", "LONG", 100, 95, 120, 1)
    assert problems == [caught.value.violations]
    assert [t["id"] for t in pg(pg_dsn, pg_account).get_all_trades()] == ["T001"]


def test_two_unlocked_writers_that_take_one_id_cannot_both_write_it(pg_dsn, pg_account):
    import threading

    from tradestore_harness import pg_target, waitpoints

    class Unlocked(pg_target.UnlockedPgStore):
        def _lock_account(self, conn):  # no lock, and our tables have no control sequence
            pass

    decided = threading.Barrier(2)
    waitpoints.arm("decided", lambda _n: decided.wait(10))
    results = []

    def attempt(symbol):
        try:
            results.append(Unlocked(pg_account, pg_dsn).open_trade(symbol, "LONG", 100, 95, 120, 1)["id"])
        except IntegrityError as exc:
            results.append(exc)
    try:
        threads = [threading.Thread(target=attempt, args=(s,)) for s in ("BTC", "SOL")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        waitpoints.reset()
    errors = [r for r in results if isinstance(r, IntegrityError)]
    assert len(results) == 2 and len(errors) == 1 and "trade id that another writer" in str(errors[0]), results
    assert len(pg(pg_dsn, pg_account).get_all_trades()) == 1


def test_a_second_store_in_the_same_thread_is_refused_at_once(pg_dsn, pg_account):
    a, b = pg(pg_dsn, pg_account), pg(pg_dsn, pg_account)
    with a.transaction():
        with pytest.raises(NestedTransactionError, match="already holds"):
            with b.transaction():
                pass
    with a.transaction():
        a.open_trade("BTC", "LONG", 100, 95, 120, 1)  # joins
        with a.transaction() as inner:
            inner.close_trade("T001", 101)
    assert b.get_trade("T001")["status"] == "CLOSED"


def _alias(dsn: str) -> str:
    """The same server and database, its host spelled another way."""
    import socket

    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    host = str(conninfo_to_dict(dsn).get("host") or "")
    if host.startswith("/"):
        return make_conninfo(dsn, host=host.rstrip("/") + "/")
    if host:
        address = socket.gethostbyname(host)
        if address != host:
            return make_conninfo(dsn, host=address)
    pytest.skip(f"no second spelling of host {host!r} to test with")


def test_a_second_store_through_another_spelling_of_the_dsn_is_refused_at_once(pg_dsn, pg_account):
    a, b = pg(pg_dsn, pg_account, lock_timeout=2), PgTradeStore(pg_account, _alias(pg_dsn), lock_timeout=2)
    with a.transaction() as tx:
        tx.open_trade("ETH", "LONG", 100, 95, 120, 1)
        with pytest.raises(NestedTransactionError, match="already holds"):
            b.open_trade("BTC", "LONG", 100, 95, 120, 1)  # not LockTimeout: it waited on its own thread
    assert [t["symbol"] for t in b.get_all_trades()] == ["ETH"]
    # Another database of the same server is another account: both can be held at once.
    other = f"tradestore_other_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        try:
            admin.execute(f"CREATE DATABASE {other}")
        except psycopg.errors.InsufficientPrivilege:
            return
    from psycopg.conninfo import make_conninfo

    try:
        init_schema(make_conninfo(pg_dsn, dbname=other))
        elsewhere = PgTradeStore(pg_account, make_conninfo(pg_dsn, dbname=other))
        with a.transaction():
            assert elsewhere.open_trade("BTC", "LONG", 100, 95, 120, 1)["id"] == "T001"
        elsewhere.close()
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {other} WITH (FORCE)")


def test_lock_timeout_raises_lock_timeout_and_writes_nothing(pg_dsn, pg_account):
    from tradestore.pgstore import account_key

    with psycopg.connect(pg_dsn, autocommit=True) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (account_key(pg_account),))
        store = pg(pg_dsn, pg_account, lock_timeout=0.2)
        with pytest.raises(LockTimeout, match="lock_timeout=0.2"):
            store.open_trade("BTC", "LONG", 100, 95, 120, 1)
        holder.execute("ROLLBACK")
    assert store.get_all_trades() == []
    assert store.open_trade("BTC", "LONG", 100, 95, 120, 1)["id"] == "T001"


@pytest.mark.parametrize("value", [None, math.inf, 0, 0.0001, Decimal("5"), 30 * 24 * 3600.0, 1e300, 1e308])
def test_every_lock_timeout_the_file_store_takes_works(pg_dsn, pg_account, tmp_path, value):
    from tradestore.pgstore import MAX_LOCK_TIMEOUT_MS

    TradeStore(tmp_path / "trades.json", lock_timeout=value)
    store = pg(pg_dsn, pg_account, lock_timeout=value)
    assert store.open_trade("BTC", "LONG", 100, 95, 120, 1)["id"] == "T001"
    shown = store._conn().execute("SELECT setting::bigint FROM pg_settings WHERE name = 'lock_timeout'").fetchone()[0]
    expected = {None: 0, math.inf: 0, 0: 1, 0.0001: 1, Decimal("5"): 5000}.get(value, MAX_LOCK_TIMEOUT_MS)
    assert shown == expected


@pytest.mark.parametrize("value", [True, -1, math.nan, "5", Decimal("NaN"), -math.inf])
def test_every_lock_timeout_the_file_store_refuses_is_refused_at_construction(pg_dsn, pg_account, tmp_path, value):
    with pytest.raises(ValueError, match="lock_timeout="):
        TradeStore(tmp_path / "trades.json", lock_timeout=value)
    with pytest.raises(ValueError, match="lock_timeout="):
        pg(pg_dsn, pg_account, lock_timeout=value)


# -- database faults ---------------------------------------------------------------------------

class Conflicting(PgTradeStore):
    """Its lock statement fails with a real server error ``state`` the first ``times`` times."""

    def __init__(self, *args, state="40001", times=1, **kwargs):
        super().__init__(*args, **kwargs)
        self.state, self.times, self.attempts = state, times, 0

    def _lock_account(self, conn):
        self.attempts += 1
        super()._lock_account(conn)
        if self.attempts <= self.times:
            conn.execute(f"DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '{self.state}'; END $$")


@pytest.mark.parametrize("state", ["40001", "40P01"])
def test_serialization_failures_and_deadlocks_are_retried_within_the_bound(pg_dsn, pg_account, state):
    store = Conflicting(pg_account, pg_dsn, state=state, times=RETRIES)
    assert store.open_trade("BTC", "LONG", 100, 95, 120, 1)["id"] == "T001"
    assert store.attempts == RETRIES + 1
    stuck = Conflicting(pg_account + "b", pg_dsn, state=state, times=RETRIES + 1)
    with pytest.raises(DatabaseError, match=f"after {RETRIES} retries") as caught:
        stuck.open_trade("BTC", "LONG", 100, 95, 120, 1)
    assert caught.value.sqlstate == state and stuck.attempts == RETRIES + 1
    assert stuck.get_all_trades() == []


def test_other_errors_and_transaction_blocks_are_not_retried(pg_dsn, pg_account):
    store = Conflicting(pg_account, pg_dsn, state="22012", times=1)  # division_by_zero
    with pytest.raises(DatabaseError, match="nothing was written"):
        store.open_trade("BTC", "LONG", 100, 95, 120, 1)
    assert store.attempts == 1
    block = Conflicting(pg_account, pg_dsn, state="40001", times=1)
    with pytest.raises(DatabaseError):
        with block.transaction() as tx:
            tx.open_trade("BTC", "LONG", 100, 95, 120, 1)
    assert block.attempts == 1 and block.get_all_trades() == []


def test_the_callers_own_psycopg_errors_pass_through_unchanged_and_run_once(pg_dsn, pg_account):
    calls, reports = [], []

    def raising(error):
        def check(ledger, proposal):
            calls.append(1)
            raise error
        return check

    for error in (psycopg.errors.UniqueViolation("the bot's own key"), psycopg.errors.SerializationFailure("its own"),
                  psycopg.errors.UndefinedTable("its own table"), psycopg.errors.DeadlockDetected("its own")):
        calls.clear()
        store = PgTradeStore(pg_account, pg_dsn, risk_checks=[raising(error)], on_integrity_violation=reports.append)
        with pytest.raises(type(error)) as caught:
            store.open_trade("BTC", "LONG", 100, 95, 120, 1)
        assert caught.value is error and calls == [1]
        with pytest.raises(type(error)) as caught:
            store.can_open_position("BTC")  # the advisory read runs the checks too
        assert caught.value is error and calls == [1, 1]
    store = pg(pg_dsn, pg_account)
    with pytest.raises(psycopg.errors.UndefinedTable, match="the block's own"):
        with store.transaction() as tx:
            tx.open_trade("BTC", "LONG", 100, 95, 120, 1)
            raise psycopg.errors.UndefinedTable("the block's own")
    # Another store's conflict raised through this store's check is not this store's to rerun.
    other = Conflicting(pg_account + "-other", pg_dsn, state="40001", times=1)

    def uses_other_store(ledger, proposal):
        calls.append(1)
        with other.transaction() as tx:
            tx.open_trade("ETH", "LONG", 100, 95, 120, 1)

    calls.clear()
    with pytest.raises(DatabaseError) as caught:
        PgTradeStore(pg_account, pg_dsn, risk_checks=[uses_other_store]).open_trade("BTC", "LONG", 100, 95, 120, 1)
    assert caught.value.sqlstate == "40001" and calls == [1] and other.attempts == 1
    assert reports == [] and store.get_all_trades() == [] and other.get_all_trades() == []
    assert store.open_trade("BTC", "LONG", 100, 95, 120, 1)["id"] == "T001"


def test_a_commit_whose_reply_is_lost_is_never_retried(pg_dsn, pg_account):
    attempts = []

    class LosesCommit(PgTradeStore):
        def _lock_account(self, conn):
            attempts.append(1)
            super()._lock_account(conn)

        def _before_commit(self, ledger):
            if len(attempts) > 1:
                return
            # Another session ends this one: COMMIT is sent on a dead connection, no reply.
            with psycopg.connect(pg_dsn, autocommit=True) as killer:
                killer.execute("SELECT pg_terminate_backend(%s)", (self._conn().info.backend_pid,))

    store = LosesCommit(pg_account, pg_dsn)
    with pytest.raises(CommitOutcomeUnknown, match="may or may not have landed"):
        store.open_trade("BTC", "LONG", 100, 95, 120, 1)
    assert len(attempts) == 1
    # The store reconnects; the trade is not there (the backend died before COMMIT).
    assert store.get_all_trades() == []
    assert store.open_trade("BTC", "LONG", 100, 95, 120, 1)["id"] == "T001" and len(attempts) == 2


def test_a_session_the_server_ended_while_idle_is_replaced_at_the_next_begin(pg_dsn, pg_account):
    store = pg(pg_dsn, pg_account)
    store.open_trade("BTC", "LONG", 100, 95, 120, 1)
    calls = (store.get_open_trades, lambda: store.open_trade("ETH", "LONG", 100, 95, 120, 1),
             lambda: store.export_document())
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        for call in calls:
            idle = store._conn().info.backend_pid
            # As a restart, an idle timeout or a proxy would: the session ends while idle.
            assert admin.execute("SELECT pg_terminate_backend(%s, 10000)", (idle,)).fetchone()[0]
            call()  # no DatabaseError: BEGIN found the session dead and was sent on a new one
            assert store._conn().info.backend_pid != idle
    assert [t["symbol"] for t in store.get_open_trades()] == ["BTC", "ETH"]


def test_a_writer_terminated_inside_its_transaction_writes_nothing_and_frees_the_account(pg_dsn, pg_account):
    from tests import pg_workers

    mp = context()
    at_commit, release, pids, results = mp.Event(), mp.Event(), mp.Queue(), mp.Queue()
    proc = mp.Process(target=pg_workers.open_and_hold, args=(pg_dsn, pg_account, "BTC", at_commit, release, pids, results))
    proc.start()
    assert at_commit.wait(60)
    backend = pids.get(timeout=10)
    other = pg(pg_dsn, pg_account, lock_timeout=0.2)
    with pytest.raises(LockTimeout):  # the writer holds the account, rows written, not committed
        other.open_trade("ETH", "LONG", 100, 95, 120, 1)
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (backend,)).fetchone()[0]
    release.set()
    outcome, detail = results.get(timeout=30)
    proc.join(30)
    assert outcome == "CommitOutcomeUnknown", detail
    assert other.get_all_trades() == []
    assert other.open_trade("BTC", "LONG", 100, 95, 120, 1)["id"] == "T001"


def test_immediate_server_stop_mid_write_loses_no_acknowledged_write(tmp_path):
    from tests import pg_workers
    from tests.pg_fixture import start_private_server

    server = start_private_server()
    try:
        init_schema(server.dsn)
        mp = context()
        results = mp.Queue()
        started = [mp.Event() for _ in range(2)]
        procs = [mp.Process(target=pg_workers.write_loop, args=(server.dsn, "crash", f"W{i}X", 150, started[i], results))
                 for i in range(2)]
        for p in procs:
            p.start()
        for event in started:
            assert event.wait(60)
        acked: list[tuple] = []
        while len(acked) < 10:  # some writes are acknowledged before the crash
            acked.append(results.get(timeout=60))
        server.stop("immediate")  # like a power cut of the database host
        server.start()
        while sum(a[0] == "done" for a in acked) < len(procs):  # drained as they run
            acked.append(results.get(timeout=120))
        for p in procs:
            p.join(30)
        trades = {t["id"]: t for t in PgTradeStore("crash", server.dsn).get_all_trades()}
        opened = [a for a in acked if a[0] == "ok"]
        closed = [a for a in acked if a[0] == "closed"]
        failures = [a for a in acked if a[0] == "fail"]
        assert failures, "the stop must have hit the writers"
        for _, tid, note in opened:
            assert trades[tid]["notes"] == note
        for _, tid, _ in closed:
            assert trades[tid]["status"] == "CLOSED"
        assert len({t["notes"] for t in trades.values()}) == len(trades)  # nothing doubled
    finally:
        server.destroy()


# -- setup, configuration and the optional dependency -----------------------------------------

def test_a_database_without_the_schema_says_how_to_create_it(pg_dsn):
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS tradestore_empty")
        admin.execute("CREATE DATABASE tradestore_empty")
    empty = psycopg.conninfo.make_conninfo(pg_dsn, dbname="tradestore_empty")
    store = PgTradeStore("a", empty)
    with pytest.raises(SchemaMissing, match="tradestore pg-init"):
        store.get_all_trades()
    with pytest.raises(SchemaMissing):
        store.open_trade("BTC", "LONG", 100, 95, 120, 1)
    store.close()
    assert "ready (0 accounts)" in init_schema(empty)
    assert "ready (0 accounts)" in init_schema(empty)  # idempotent
    assert PgTradeStore("a", empty).open_trade("BTC", "LONG", 100, 95, 120, 1)["id"] == "T001"


def test_pg_init_run_by_several_hosts_at_once_succeeds_everywhere(pg_dsn):
    from psycopg.conninfo import make_conninfo
    from tests import pg_workers

    mp = context()
    admin = psycopg.connect(pg_dsn, autocommit=True)
    for _ in range(3):  # each round a new database, whose first DDL is slow: the runs overlap
        database = f"tradestore_init_{uuid.uuid4().hex[:12]}"
        try:
            admin.execute(f"CREATE DATABASE {database}")
        except psycopg.errors.InsufficientPrivilege:
            admin.close()
            pytest.skip("the test's role may not create databases")
        barrier, results = mp.Barrier(6), mp.Queue()
        procs = [mp.Process(target=pg_workers.init_at_barrier, args=(make_conninfo(pg_dsn, dbname=database), barrier, results))
                 for _ in range(6)]
        for p in procs:
            p.start()
        got = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(30)
        admin.execute(f"DROP DATABASE {database}")
        assert got == ["ok"] * 6
    admin.close()


def test_pg_init_refused_by_the_database_raises_database_error_and_creates_nothing(pg_dsn):
    from psycopg.conninfo import make_conninfo

    schema = f"init_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    fresh = make_conninfo(pg_dsn, options=f"-c search_path={schema}")
    try:
        with pytest.raises(DatabaseError, match="not created: SyntaxError") as caught:
            init_schema(fresh, statements=("CREATE TABLE tradestore_account (account text)", "CREATE TABLE ("))
        assert caught.value.sqlstate == "42601"
        with psycopg.connect(fresh, autocommit=True) as conn:
            assert conn.execute("SELECT to_regclass('tradestore_account')").fetchone()[0] is None
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def test_pg_init_and_pg_export_commands(pg_dsn, pg_account, tmp_path):
    from tradestore.cli import main

    env = {**os.environ, "TRADESTORE_PG_DSN": pg_dsn}
    assert main(["pg-init", "--dsn", pg_dsn]) == 0
    pg(pg_dsn, pg_account).open_trade("BTC", "LONG", 100, 95, 120, 1)
    out = tmp_path / "export.json"
    done = subprocess.run([sys.executable, "-m", "tradestore.cli", "pg-export", "--account", pg_account, "--out", str(out)],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == pg(pg_dsn, pg_account).export_document()
    assert main(["verify", "--log", str(out)]) == 0
    no_dsn = {k: v for k, v in env.items() if k != "TRADESTORE_PG_DSN"}
    done = subprocess.run([sys.executable, "-m", "tradestore.cli", "pg-init"], env=no_dsn, capture_output=True, text=True)
    assert done.returncode == 2 and "TRADESTORE_PG_DSN" in done.stderr


def test_the_dsn_comes_from_the_argument_or_the_environment(monkeypatch, pg_dsn):
    monkeypatch.delenv("TRADESTORE_PG_DSN", raising=False)
    with pytest.raises(ValueError, match="TRADESTORE_PG_DSN"):
        PgTradeStore("a")
    monkeypatch.setenv("TRADESTORE_PG_DSN", pg_dsn)
    assert PgTradeStore("a").dsn == pg_dsn == resolve_dsn(None)
    assert PgTradeStore("a", "host=elsewhere").dsn == "host=elsewhere"
    for bad in ("", "  ", None, 7):
        with pytest.raises(ValueError, match="account="):
            PgTradeStore(bad, pg_dsn)
    with pytest.raises(ValueError, match="max_positions"):
        PgTradeStore("a", pg_dsn, max_positions=0)


def test_the_library_imports_without_psycopg_and_says_what_to_install():
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "import tradestore, tradestore.pgstore\n"
        "from tradestore import PgTradeStore\n"
        "try:\n    PgTradeStore('a', 'host=x').get_all_trades()\n"
        "except ImportError as e:\n    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'tradestore[postgres]'" in done.stdout


def test_a_forked_child_never_ends_its_parents_session(pg_dsn, pg_account):
    store = pg(pg_dsn, pg_account)
    store.open_trade("BTC", "LONG", 100, 95, 120, 1)
    before = store._conn().info.backend_pid
    pid = os.fork()
    if pid == 0:  # the child: use the store (a new connection), then exit with cleanup
        try:
            code = 0 if store.get_trade("T001")["symbol"] == "BTC" else 1
            store.close()
            import gc

            gc.collect()  # finalise the inherited connection object here, as an exit would
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store._conn().info.backend_pid == before  # still the parent's own session, alive
    assert store.close_trade("T001", 101)["status"] == "CLOSED"


def test_a_child_forked_inside_a_transaction_writes_the_account_once_the_parent_is_done(pg_dsn, pg_account):
    store = pg(pg_dsn, pg_account)
    committed_r, committed_w = os.pipe()
    report_r, report_w = os.pipe()
    with store.transaction() as tx:
        tx.open_trade("ETH", "LONG", 100, 95, 120, 1)
        pid = os.fork()
        if pid == 0:  # the child: once the parent has committed, write through both stores
            code = 0
            try:
                os.close(committed_w)
                os.read(committed_r, 1)
                ids = [s.open_trade(sym, "LONG", 100, 95, 120, 1)["id"]
                       for s, sym in ((store, "BTC"), (pg(pg_dsn, pg_account), "SOL"))]
                os.write(report_w, " ".join(ids).encode())
            except BaseException as exc:
                os.write(report_w, f"{type(exc).__name__}: {exc}".encode())
                code = 1
            os._exit(code)
    os.close(committed_r)
    os.write(committed_w, b"x")  # the block has committed and released the account
    os.close(committed_w)
    os.close(report_w)
    _, status = os.waitpid(pid, 0)
    report = os.read(report_r, 10000).decode()
    os.close(report_r)
    assert os.waitstatus_to_exitcode(status) == 0, report
    assert report == "T002 T003"
    assert [t["symbol"] for t in store.get_open_trades()] == ["ETH", "BTC", "SOL"]


@pytest.mark.parametrize("name", ["acct\x00evil", "\x00", "bad\ud800"])
def test_an_account_name_postgresql_cannot_hold_is_refused_at_construction(pg_dsn, name):
    with pytest.raises(ValueError, match="account="):
        PgTradeStore(name, pg_dsn)


def test_closing_the_store_inside_its_block_writes_nothing_and_says_so(pg_dsn, pg_account):
    from tradestore import TradeStoreError

    store = pg(pg_dsn, pg_account)
    with pytest.raises(TradeStoreError, match="closed inside its transaction block.*nothing was written"):
        with store.transaction() as tx:
            tx.open_trade("BTC", "LONG", 100, 95, 120, 1)
            store.close()
    assert store.get_all_trades() == []
    assert store.open_trade("BTC", "LONG", 100, 95, 120, 1)["id"] == "T001"  # the account is free


# -- the caller's code and the file store's API, as on the file store -------------------------


def test_a_risk_check_cannot_write_through_the_pg_store_it_checks_for(pg_dsn, pg_account):
    # The core's rule, on the database store too: the check's open would join the open it judges.
    refused = []

    def check(ledger, proposal):
        try:
            store.open_trade("ETH", "LONG", 100, 95, 110, 1)
        except NestedTransactionError as exc:
            refused.append(exc)

    store = PgTradeStore(pg_account, pg_dsn, risk_checks=[check], max_positions=1)
    store.open_trade("BTC", "LONG", 100, 95, 110, 1)
    assert len(refused) == 1 and [t["symbol"] for t in store.get_all_trades()] == ["BTC"]


def test_recover_takes_the_file_stores_arguments(pg_dsn, pg_account):
    store = PgTradeStore(pg_account, pg_dsn)
    assert "nothing to recover" in store.recover(force=True, next_id=5)
