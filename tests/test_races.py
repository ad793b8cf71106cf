"""Real processes released together on a barrier: exactly the allowed number succeed.

Each race has the same checker as its negative control (risk checked outside the lock), which
must fail it; a checker that cannot fail proves nothing.
"""

from __future__ import annotations

import pytest

from tradestore import TradeStore

from .workers import SPAWN, attempt_while_held, check_outside_lock_then_write, hold_in_transaction, open_after_barrier

pytestmark = pytest.mark.xdist_group("processes")
WORKERS = 12


def run_race(log, symbols, limits, **trade):
    barrier = SPAWN.Barrier(len(symbols))
    results = SPAWN.Queue()
    procs = [SPAWN.Process(target=open_after_barrier, args=(str(log), barrier, results, n, s, limits), kwargs=trade)
             for n, s in enumerate(symbols)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert not [o for o in outcomes if o[1] == "error"], outcomes
    return outcomes


def open_count(log) -> int:
    return len(TradeStore(log).get_open_trades())


def duplicate_open_symbols(log) -> list[str]:
    symbols = [t["symbol"] for t in TradeStore(log).get_open_trades()]
    return sorted({s for s in symbols if symbols.count(s) > 1})


def test_twelve_racing_on_one_symbol_give_one_winner(tmp_path):
    log = tmp_path / "trades.json"
    outcomes = run_race(log, ["BTC"] * WORKERS, {})
    assert sum(o[1] == "ok" for o in outcomes) == 1
    assert {o[2] for o in outcomes if o[1] == "rejected"} == {"duplicate_symbol"}
    assert duplicate_open_symbols(log) == [] and open_count(log) == 1


def test_negative_control_check_outside_the_lock_is_caught(tmp_path):
    log = tmp_path / "trades.json"
    barrier = SPAWN.Barrier(WORKERS)
    results = SPAWN.Queue()
    procs = [SPAWN.Process(target=check_outside_lock_then_write, args=(str(log), barrier, results, n, "BTC"))
             for n in range(WORKERS)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    # The same checker as above must see the duplicates this store lets through.
    assert sum(o[1] == "ok" for o in outcomes) == WORKERS
    assert duplicate_open_symbols(log) == ["BTC"]


def test_twelve_symbols_with_a_cap_of_three_give_three(tmp_path):
    log = tmp_path / "trades.json"
    outcomes = run_race(log, [f"S{n}" for n in range(WORKERS)], {"max_positions": 3})
    assert sum(o[1] == "ok" for o in outcomes) == 3
    assert {o[2] for o in outcomes if o[1] == "rejected"} == {"position_cap"}
    assert open_count(log) == 3


def test_correlation_budget_that_fits_four_gives_four(tmp_path):
    # 4% of 5000 = 200 USD; each trade risks (100 - 95) x 10 = 50 USD.
    log = tmp_path / "trades.json"
    group = [f"C{n}" for n in range(WORKERS)]
    limits = {"correlation_groups": {"corr": group}, "max_positions": 50}
    outcomes = run_race(log, group, limits, size=10.0)
    assert sum(o[1] == "ok" for o in outcomes) == 4
    assert {o[2] for o in outcomes if o[1] == "rejected"} == {"correlation_limit"}


def test_waitpoint_race_second_writer_is_rejected_after_the_first_commits(tmp_path):
    log = str(tmp_path / "trades.json")
    checked, release, done, blocked = SPAWN.Event(), SPAWN.Event(), SPAWN.Event(), SPAWN.Event()
    results = SPAWN.Queue()
    a = SPAWN.Process(target=hold_in_transaction, args=(log, checked, release, done, "ETH"))
    a.start()
    assert checked.wait(60)  # A passed its checks and holds the lock, not yet committed
    b = SPAWN.Process(target=attempt_while_held, args=(log, blocked, results, "ETH"))
    b.start()
    assert blocked.wait(60)  # B could not get the lock while A holds it
    assert TradeStore(log).get_all_trades() == []  # A has not committed
    release.set()
    assert done.wait(60)
    assert results.get(timeout=60) == ("B", "rejected", "duplicate_symbol")
    a.join(60)
    b.join(60)
    assert [t["symbol"] for t in TradeStore(log).get_all_trades()] == ["ETH"]
