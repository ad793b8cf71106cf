"""Competing writer processes on a journal-format log (real processes, spawn), with a follower.

Checked from what the processes report, the same check for our store and for the negative
control (a journal writer without the lock):

- every acknowledged open and close is in the log a fresh process reads, once, and no id was
  given to two trades;
- the follower (a reader in its own process) only ever sees acknowledged history growing: a
  trade, once seen, stays; once seen CLOSED, stays CLOSED.
"""

from __future__ import annotations


from tradestore import CorruptTradeLog, TradeStore

from . import journal_workers
from .workers import SPAWN

WRITERS, CYCLES = 4, 15


def drain(results, expected_done: int, timeout: float = 120.0) -> list[tuple]:
    seen, done = [], 0
    while done < expected_done:
        item = results.get(timeout=timeout)
        seen.append(item)
        done += item[1] == "done"
    return seen


def acknowledged_history_problems(log, reports) -> list[str]:
    """What the log and the follower show that the acknowledged writes forbid."""
    problems = [f"{w}: {detail}" for w, what, detail in reports if what == "error"]
    opened = [detail for _, what, detail in reports if what == "opened"]
    closed = {detail for _, what, detail in reports if what == "closed"}
    if len(set(opened)) != len(opened):
        problems.append(f"one id acknowledged to two opens: {sorted(opened)}")
    try:
        trades = TradeStore(log).get_all_trades()
    except CorruptTradeLog as exc:
        return problems + [f"the log cannot be read: {exc}"]
    ids = [t["id"] for t in trades]
    if len(set(ids)) != len(ids):
        problems.append("a trade id appears twice in the log")
    status = {t["id"]: t["status"] for t in trades}
    problems += [f"acknowledged open {i} is not in the log" for i in opened if i not in status]
    problems += [f"acknowledged close of {i} is not in the log" for i in closed if status.get(i) != "CLOSED"]
    last: dict[str, str] = {}
    for _, what, detail in reports:
        if what != "saw":
            continue
        for trade_id, before in last.items():
            if trade_id not in detail:
                problems.append(f"the follower saw {trade_id}, then no longer")
            elif before == "CLOSED" and detail[trade_id] != "CLOSED":
                problems.append(f"the follower saw {trade_id} CLOSED, then OPEN")
        last = detail
    return problems


def test_competing_journal_writers_lose_nothing_and_a_follower_sees_history_grow(tmp_path):
    log = str(tmp_path / "trades.json")
    TradeStore(log, log_format="journal").open_trade("SEED", "LONG", 100, 95, 110, 1)
    barrier, stop, results = SPAWN.Barrier(WRITERS + 1), SPAWN.Event(), SPAWN.Queue()
    # 2 KiB: a checkpoint every few writes, so writers and the follower cross many of them.
    writers = [SPAWN.Process(target=journal_workers.cycles, args=(log, barrier, results, w, CYCLES, 2048))
               for w in range(WRITERS)]
    follower = SPAWN.Process(target=journal_workers.follow, args=(log, barrier, stop, results))
    for p in (*writers, follower):
        p.start()
    reports = drain(results, WRITERS)
    stop.set()
    reports += drain(results, 1)
    for p in (*writers, follower):
        p.join(30)
    assert sum(what == "closed" for _, what, _ in reports) == WRITERS * CYCLES, reports[-5:]
    assert sum(what == "saw" for _, what, _ in reports) > 0
    assert acknowledged_history_problems(log, reports) == []


def test_the_same_check_catches_journal_writers_without_the_lock(tmp_path):
    log = str(tmp_path / "trades.json")
    TradeStore(log, log_format="journal").open_trade("SEED", "LONG", 100, 95, 110, 1)
    barrier, results = SPAWN.Barrier(WRITERS), SPAWN.Queue()
    workers = [SPAWN.Process(target=journal_workers.unlocked_append, args=(log, barrier, results, w))
               for w in range(WRITERS)]
    for p in workers:
        p.start()
    reports = drain(results, WRITERS)
    for p in workers:
        p.join(30)
    assert sum(what == "opened" for _, what, _ in reports) == WRITERS  # all acknowledged
    problems = acknowledged_history_problems(log, reports)
    assert any("not in the log" in p or "two opens" in p or "cannot be read" in p for p in problems), problems
