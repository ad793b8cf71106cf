"""recover(): never reuses an id, never destroys a version, says what it dropped, never replaces
a readable log, sweeps strays like a writer, and survives being killed at any point."""

from __future__ import annotations

import json
import os
import random

import pytest

from tradestore import CorruptTradeLog, RecoveryRefused, TradeStore, atomic
from tradestore.ledger import Ledger

from .workers import SPAWN, recover_until_crash

pytestmark = pytest.mark.xdist_group("processes")


def three_writes(log, **options):
    """T001, T002 in the backup's version ... T003 opened by the last write: the log is one write newer."""
    store = TradeStore(log, fsync=False, correlation_groups={}, **options)
    for symbol in ("BTC", "ETH", "SOL"):
        store.open_trade(symbol, "LONG", 100, 95, 120, 1)
    return store


def kept_copies(log):
    directory = os.path.dirname(log)
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if ".corrupt-" in n)


def test_next_id_never_goes_back_and_no_acknowledged_id_is_reused(tmp_path):
    store = three_writes(tmp_path / "trades.json")
    acknowledged = {t["id"] for t in store.get_all_trades()}  # T001..T003: all returned to callers
    data = open(store.trade_log, "rb").read()
    open(store.trade_log, "wb").write(data[: len(data) // 2])  # torn in the middle
    summary = store.recover()
    # The backup holds T001, T002 and next_id 3: restoring it as it is would give T003 again.
    assert store.get_next_id() == "T004"
    assert "dropped (not in the backup, ids not reused): T003" in summary
    new = store.open_trade("LINK", "LONG", 100, 95, 120, 1)
    assert new["id"] not in acknowledged


def _damage(data: bytes, rng: random.Random) -> bytes:
    kind = rng.choice(["truncate", "flip", "flip2", "garbage-tail", "zero-run"])
    if kind == "truncate":
        return data[: rng.randrange(len(data))]
    if kind in ("flip", "flip2"):
        out = bytearray(data)
        for _ in range(1 if kind == "flip" else 2):
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == "garbage-tail":
        cut = rng.randrange(len(data))
        return data[:cut] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
    start = rng.randrange(len(data))
    return data[:start] + b"\0" * rng.randrange(1, 64) + data[start + 64:]


def test_recovery_from_any_damage_reuses_no_id(tmp_path):
    """Generated damage (every truncation, random bit flips, garbage, zeroed runs): recover
    either refuses or restores with next_id past every id ever acknowledged."""
    seed = 1201
    rng = random.Random(seed)
    template = tmp_path / "template"
    template.mkdir()
    store = three_writes(template / "trades.json")
    good, backup = open(store.trade_log, "rb").read(), open(store.trade_log + ".bak", "rb").read()
    # Every truncation through the head (where next_id is), every 13th after, random damage.
    cuts = [n for n in range(len(good)) if n < 80 or n % 13 == 0]
    cases = [good[:n] for n in cuts] + [_damage(good, rng) for _ in range(120)]
    outcomes = {"restored": 0, "refused": 0, "readable": 0}
    for i, damaged in enumerate(cases):
        d = tmp_path / f"c{i}"
        d.mkdir()
        log = str(d / "trades.json")
        open(log, "wb").write(damaged)
        open(log + ".bak", "wb").write(backup)
        store = TradeStore(log, fsync=False)
        try:
            summary = store.recover()
        except RecoveryRefused:
            outcomes["refused"] += 1
            assert open(log, "rb").read() == damaged, f"seed {seed} case {i}"
            continue
        if "nothing to recover" in summary:  # a flip that left valid JSON (e.g. inside a note)
            outcomes["readable"] += 1
            continue
        outcomes["restored"] += 1
        assert Ledger.from_json(open(log, "rb").read()).next_id >= 4, f"seed {seed} case {i}: {damaged!r}"
        assert [open(c, "rb").read() for c in kept_copies(log)] == [damaged]
    assert outcomes["restored"] > 60 and outcomes["refused"] > 10, outcomes  # both paths exercised


def test_every_recovered_version_is_kept_under_its_own_name(tmp_path):
    store = three_writes(tmp_path / "trades.json")
    versions = []
    for n in range(3):
        damaged = open(store.trade_log, "rb").read()[:-3 - n]
        open(store.trade_log, "wb").write(damaged)
        versions.append(damaged)
        store.recover()
        store.open_trade(f"X{n}", "LONG", 100, 95, 120, 1)  # a new backup for the next round
    copies = kept_copies(store.trade_log)
    assert len(copies) == 3 and sorted(open(c, "rb").read() for c in copies) == sorted(versions)


def test_recover_force_on_a_readable_log_loses_nothing(tmp_path):
    store = three_writes(tmp_path / "trades.json")
    before = open(store.trade_log, "rb").read()
    assert "nothing to recover" in store.recover()
    with pytest.raises(RecoveryRefused, match="T003"):  # names what restoring would drop
        store.recover(force=True)
    assert open(store.trade_log, "rb").read() == before
    assert [t["id"] for t in store.get_all_trades()] == ["T001", "T002", "T003"]
    os.unlink(store.trade_log + ".bak")
    assert "nothing to recover" in store.recover()  # a readable log needs no backup
    with pytest.raises(CorruptTradeLog, match="no backup"):
        store.recover(force=True)


def test_recover_sweeps_stray_temps_like_a_writer(tmp_path):
    store = three_writes(tmp_path / "trades.json")
    stray = os.path.join(tmp_path, atomic.temp_prefix(store.trade_log) + "0123456789ab.tmp")
    open(stray, "w").write("half a write")
    head = open(store.trade_log, "rb").read()[:30]
    open(store.trade_log, "wb").write(head)
    store.recover()
    assert not os.path.exists(stray)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_a_lost_log_needs_to_be_told_where_ids_continue(tmp_path):
    store = three_writes(tmp_path / "trades.json")
    os.unlink(store.trade_log)
    with pytest.raises(RecoveryRefused, match="missing.*next-id"):
        store.recover()
    assert not os.path.exists(store.trade_log)
    for bad in (0, -1, True, 2.5, "T9", 10**15 + 1):
        with pytest.raises(ValueError, match="next_id"):
            store.recover(next_id=bad)
    summary = store.recover(next_id=10)
    assert "next id T010" in summary and store.get_next_id() == "T010"
    assert "dropped (not in the backup, ids not reused): T003 to T009" in summary


def test_salvage_ignores_numbers_the_reader_would_refuse():
    from tradestore.recovery import salvage

    found = salvage(b'{"next_id":99999999999999999,"trades":[{"id":"T9999999999999999"},{"id":"T007"}]}')
    assert found.next_id is None and found.ids == (7,) and found.floor() == 8
    assert salvage(b'{"next_id":1000000000000000,"trades":[{"id":"T0"}]}').next_id == 10**15


def test_a_given_next_id_never_lowers_the_salvaged_one(tmp_path):
    store = three_writes(tmp_path / "trades.json")
    head = open(store.trade_log, "rb").read()[:-5]
    open(store.trade_log, "wb").write(head)
    store.recover(next_id=1)
    assert store.get_next_id() == "T004"


def test_a_backup_that_is_unreadable_or_missing_changes_nothing(tmp_path):
    store = three_writes(tmp_path / "trades.json")
    open(store.trade_log + ".bak", "wb").write(b"garbage")
    open(store.trade_log, "wb").write(b"{")
    with pytest.raises(CorruptTradeLog):
        store.recover(next_id=9)
    assert open(store.trade_log, "rb").read() == b"{" and kept_copies(store.trade_log) == []


# --------------------------------------------------------------------------- kills during recover


def test_kills_at_every_step_of_recover_leave_a_recoverable_readable_log(tmp_path):
    """A real process runs recover and dies (os._exit) at its k-th file-system call, for every
    k until a run completes. After each death: the log is the damaged one or the restored one
    (never torn, never a third thing), and running recover again gives a readable log with no
    id reused and the damaged version still kept."""
    template = tmp_path / "template"
    template.mkdir()
    store = three_writes(template / "trades.json")
    good, backup = open(store.trade_log, "rb").read(), open(store.trade_log + ".bak", "rb").read()
    damaged = good[: len(good) - 10]
    crashed_at = []
    for k in range(1, 200):
        d = tmp_path / f"k{k}"
        d.mkdir()
        log = str(d / "trades.json")
        open(log, "wb").write(damaged)
        open(log + ".bak", "wb").write(backup)
        child = SPAWN.Process(target=recover_until_crash, args=(log, k))
        child.start()
        child.join(60)
        if child.exitcode == 0:
            break
        assert child.exitcode == 9, f"k={k}: exit {child.exitcode}"
        crashed_at.append(k)
        now = open(log, "rb").read()
        if now != damaged:
            assert Ledger.from_json(now).next_id >= 4, f"k={k}"
        TradeStore(log).recover() if now == damaged else None
        final = Ledger.from_json(open(log, "rb").read())
        assert final.next_id >= 4 and [t["id"] for t in final.trades] == ["T001", "T002"], f"k={k}"
        assert damaged in [open(c, "rb").read() for c in kept_copies(log)], f"k={k}: damaged version lost"
        assert not [n for n in os.listdir(d) if n.endswith(".tmp")], f"k={k}: a temp left behind"
    else:  # pragma: no cover - recover always finishes within a few calls
        pytest.fail("recover never completed")
    assert len(crashed_at) >= 5, crashed_at  # link, open, write, fsync, replace, dir fsync...
    assert json.loads(open(log).read())["next_id"] >= 4


def test_a_last_write_that_opened_nothing_drops_no_id(tmp_path):
    store = three_writes(tmp_path / "trades.json")
    store.update_trade("T003", {"notes": "the last write"})
    damaged = open(store.trade_log, "rb").read()[:-4]
    open(store.trade_log, "wb").write(damaged)
    summary = store.recover()
    assert "ids not reused): none; other changes of the last write are lost too" in summary
    assert store.get_trade("T003")["notes"] == "" and store.get_next_id() == "T004"
