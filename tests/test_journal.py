"""The journal format: framing, recovery rule, checkpoints, conversions, and the store on it.

- Framing (no disk): any payloads round-trip; any cut of the last frame is a torn write (the
  frames before it survive); a damaged frame with frames after it is refused; a damaged
  payload in the last frame reads as torn; a zero-filled tail is torn.
- Differential: random operation sequences on a journal-format store and a document-format
  store give the same records after every step, the journal's single document is byte for byte
  the document store's file, and a fresh process reads the same state (checkpoints forced often).
- Followers read only the tail, and switch to a new journal after a checkpoint without parsing
  the checkpoint again.
- Every crash point of a checkpoint and of both conversions leaves a log that reads as the state
  before or after, and the next write works.
- Hazards: a failed fsync cuts the record off again; a failed cut stops the store, holding the
  lock; a checkpoint rewritten by a writer that does not know the journal is refused; a
  missing journal or checkpoint is refused; an older reader refuses the checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradestore import (ConversionRefused, CorruptTradeLog, Ledger, LockTimeout, RecoveryRefused, RiskRejected, StateReconciler,
                        StoreStopped, TradeStore, TradeStoreError, atomic, journal)
from tradestore.document import parse_document
from tradestore.journal import encode_frame, scan

from .conftest import FakeClock

LIMITS = dict(max_positions=50, asset_consecutive_loss_cap=None, max_corr_group_risk_pct=100.0)


def journal_store(path, **kw) -> TradeStore:
    return TradeStore(path, log_format="journal", clock=kw.pop("clock", FakeClock()), **{**LIMITS, **kw})


def frames_of(payloads) -> bytes:
    return b"".join(encode_frame(p) for p in payloads)


payload = st.fixed_dictionaries({"seq": st.integers(1, 10**6), "note": st.text(max_size=40)})


# --------------------------------------------------------------------------- framing


@given(st.lists(payload, max_size=6))
def test_frames_round_trip(payloads):
    data = frames_of(payloads)
    frames = scan(data, "j")
    assert frames.payloads == payloads and frames.end == len(data)


@given(st.lists(payload, min_size=1, max_size=5), st.data())
def test_any_cut_of_the_last_frame_is_a_torn_write(payloads, data):
    whole = frames_of(payloads)
    before = len(frames_of(payloads[:-1]))
    cut = data.draw(st.integers(before, len(whole) - 1), label="cut")
    frames = scan(whole[:cut], "j")
    assert frames.payloads == payloads[:-1] and frames.end == before


@given(st.lists(payload, min_size=2, max_size=5), st.data())
def test_a_damaged_frame_with_frames_after_it_is_refused(payloads, data):
    whole = bytearray(frames_of(payloads))
    last_start = len(frames_of(payloads[:-1]))
    position = data.draw(st.integers(0, last_start - 1), label="position")
    whole[position] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    with pytest.raises(CorruptTradeLog, match="damaged"):
        scan(bytes(whole), "j")


@given(st.lists(payload, min_size=1, max_size=5), st.data())
def test_a_flip_anywhere_in_the_last_frame_reads_as_torn(payloads, data):
    whole = bytearray(frames_of(payloads))
    last_start = len(frames_of(payloads[:-1]))
    position = data.draw(st.integers(last_start, len(whole) - 1), label="position")
    whole[position] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    assert scan(bytes(whole), "j").payloads == payloads[:-1]


@given(st.lists(payload, max_size=4), st.data())
def test_what_a_power_cut_leaves_of_the_last_frame_is_torn(payloads, data):
    """Any sectors of the last frame lost (zeros), in any order, or its tail cut: torn."""
    last = frames_of([{"seq": 99, "note": "x" * 900}])
    sector = data.draw(st.sampled_from([16, 64, 512]), label="sector")
    kept = data.draw(st.lists(st.booleans(), min_size=-(-len(last) // sector), max_size=-(-len(last) // sector)),
                     label="kept")
    damaged = b"".join(last[i * sector:(i + 1) * sector] if keep else bytes(len(last[i * sector:(i + 1) * sector]))
                       for i, keep in enumerate(kept))
    damaged = damaged[:data.draw(st.integers(0, len(damaged)), label="cut")]
    good = frames_of(payloads)
    frames = scan(good + damaged, "j")
    assert frames.payloads == payloads + ([{"seq": 99, "note": "x" * 900}] if damaged == last else [])


@given(st.lists(payload, max_size=4), st.integers(1, 5000))
def test_a_zero_filled_tail_is_torn(payloads, zeros):
    data = frames_of(payloads)
    assert scan(data + bytes(zeros), "j").payloads == payloads


# --------------------------------------------------------------------------- differential

operation = st.one_of(
    st.tuples(st.just("open"), st.integers(0, 7), st.sampled_from(["LONG", "SHORT"])),
    st.tuples(st.just("close"), st.integers(0, 40), st.floats(80, 130)),
    st.tuples(st.just("partial"), st.integers(0, 40), st.floats(0.1, 0.9)),
    st.tuples(st.just("update"), st.integers(0, 40), st.text(max_size=30)),
)


def run(store: TradeStore, op) -> object:
    kind, a, b = op
    try:
        if kind == "open":
            sign = 1 if b == "LONG" else -1
            return store.open_trade(f"S{a}", b, 100, 100 - 5 * sign, 100 + 10 * sign, 1 + a)
        trade_id = f"T{a:03d}"
        if kind == "close":
            return store.close_trade(trade_id, b)
        if kind == "partial":
            return store.partial_close(trade_id, b, 105)
        return store.update_trade(trade_id, {"notes": b})
    except TradeStoreError as exc:
        return type(exc).__name__


@settings(max_examples=40, deadline=None)
@given(st.lists(operation, min_size=1, max_size=40), st.integers(1, 3000))
def test_the_journal_format_gives_the_document_formats_answers_and_bytes(tmp_path_factory, ops, threshold):
    directory = tmp_path_factory.mktemp("diff")
    saved = journal.CHECKPOINT_MIN_BYTES
    journal.CHECKPOINT_MIN_BYTES = threshold  # checkpoints every few writes
    try:
        doc = TradeStore(directory / "doc.json", clock=FakeClock(), fsync=False, **LIMITS)
        jrn = journal_store(directory / "jrn.json", fsync=False)
        for op in ops:
            assert run(jrn, op) == run(doc, op)
            assert jrn.get_all_trades() == doc.get_all_trades()
        fresh = TradeStore(directory / "jrn.json")
        if not (directory / "doc.json").exists():  # nothing was ever accepted
            assert not (directory / "jrn.json").exists() and fresh.get_all_trades() == []
            return
        assert fresh.export_document() == (directory / "doc.json").read_bytes()
        assert fresh.get_next_id() == doc.get_next_id()
    finally:
        journal.CHECKPOINT_MIN_BYTES = saved


def test_reconciling_a_journal_log_gives_the_document_logs_files(tmp_path):
    doc = TradeStore(tmp_path / "doc.json", clock=FakeClock(), **LIMITS)
    jrn = journal_store(tmp_path / "jrn.json")
    rng = random.Random(7)
    for _ in range(30):
        op = (rng.choice(["open", "close", "partial"]), rng.randrange(8), rng.choice(["LONG", "SHORT"]))
        op = op if op[0] == "open" else (op[0], rng.randrange(1, 20), rng.uniform(0.2, 0.8) if op[0] == "partial" else 104.0)
        run(doc, op), run(jrn, op)
    clock = FakeClock()
    for name in ("doc", "jrn"):
        StateReconciler(tmp_path / f"{name}.json", tmp_path / name, clock=clock, **LIMITS).reconcile()
    for file in sorted(os.listdir(tmp_path / "doc")):  # the same, but for the log's name
        expected = (tmp_path / "doc" / file).read_bytes().replace(b"doc.json", b"jrn.json")
        assert (tmp_path / "jrn" / file).read_bytes() == expected, file


# --------------------------------------------------------------------------- followers


def count_parses(monkeypatch) -> list[int]:
    parses: list[int] = []
    real = Ledger.from_document.__func__
    monkeypatch.setattr(Ledger, "from_document", classmethod(lambda cls, *a, **k: parses.append(1) or real(cls, *a, **k)))
    return parses


def test_a_follower_reads_only_the_tail_and_switches_journals_without_reparsing(tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "CHECKPOINT_MIN_BYTES", 4096)
    writer, follower = journal_store(tmp_path / "t.json"), journal_store(tmp_path / "t.json")
    writer.open_trade("BTC", "LONG", 100, 95, 110, 1)
    assert len(follower.get_all_trades()) == 1
    parses = count_parses(monkeypatch)
    checkpoints = []
    real = journal.checkpoint
    monkeypatch.setattr(journal, "checkpoint", lambda *a, **k: checkpoints.append(1) or real(*a, **k))
    for n in range(40):  # enough bytes for several checkpoints
        writer.update_trade("T001", {"notes": f"n{n}" * 20})
        assert follower.get_trade("T001")["notes"] == f"n{n}" * 20
    assert len(checkpoints) >= 2
    assert parses == []  # neither the writer nor the follower parsed a checkpoint again


def test_a_follower_that_missed_a_whole_journal_reads_everything_again(tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "CHECKPOINT_MIN_BYTES", 1024)
    writer, follower = journal_store(tmp_path / "t.json"), journal_store(tmp_path / "t.json")
    writer.open_trade("BTC", "LONG", 100, 95, 110, 1)
    follower.get_all_trades()
    first = os.stat(writer.journal_file).st_ino
    while os.stat(writer.journal_file).st_ino == first or len(writer.get_all_trades()) < 3:
        writer.update_trade("T001", {"notes": "x" * 300})  # two checkpoints: the follower missed one journal
        if len(writer.get_all_trades()) < 3:
            writer.open_trade(f"S{len(writer.get_all_trades())}", "LONG", 100, 95, 110, 1)
    writer.update_trade("T001", {"notes": "last"})
    assert follower.get_all_trades() == writer.get_all_trades()


# --------------------------------------------------------------------------- tails and damage


def test_a_torn_tail_is_ignored_by_readers_and_cut_off_by_the_next_writer(tmp_path):
    store = journal_store(tmp_path / "t.json")
    store.open_trade("BTC", "LONG", 100, 95, 110, 1)
    torn = encode_frame({"seq": 2, "next_id": 9, "trades": []})[:-3]
    with open(store.journal_file, "ab") as f:
        f.write(torn)
    reader = journal_store(tmp_path / "t.json")
    # its trades are dropped; the next_id it shows (9) is skipped to, never reused below
    assert [t["id"] for t in reader.get_all_trades()] == ["T001"] and reader.get_next_id() == "T009"
    size = os.path.getsize(store.journal_file)
    reader.open_trade("ETH", "LONG", 100, 95, 110, 1)
    assert os.path.getsize(store.journal_file) < size + 2000
    assert [t["id"] for t in journal_store(tmp_path / "t.json").get_all_trades()] == ["T001", "T009"]


def test_a_damaged_record_before_the_last_is_refused_and_nothing_is_written(tmp_path):
    store = journal_store(tmp_path / "t.json")
    for symbol in ("BTC", "ETH", "SOL"):
        store.open_trade(symbol, "LONG", 100, 95, 110, 1)
    data = bytearray(open(store.journal_file, "rb").read())
    data[len(data) // 2] ^= 0x10
    open(store.journal_file, "wb").write(bytes(data))
    before = {name: open(tmp_path / name, "rb").read() for name in os.listdir(tmp_path)}
    fresh = journal_store(tmp_path / "t.json")
    with pytest.raises(CorruptTradeLog, match="damaged"):
        fresh.open_trade("ADA", "LONG", 100, 95, 110, 1)
    with pytest.raises(RecoveryRefused, match="journal"):
        fresh.recover()
    assert {name: open(tmp_path / name, "rb").read() for name in os.listdir(tmp_path)} == before


def seed_rewrite(path) -> None:
    """What a seed-era writer does: load the document, append a trade, dump it back."""
    doc = json.load(open(path))
    doc["trades"].append({**doc["trades"][0], "id": f"T{doc['next_id']:03d}", "symbol": "SEED"})
    doc["next_id"] += 1
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)


def test_a_checkpoint_rewritten_by_a_writer_that_does_not_know_the_journal_is_refused(tmp_path):
    store = journal_store(tmp_path / "t.json")
    store.open_trade("BTC", "LONG", 100, 95, 110, 1)
    store.open_trade("ETH", "LONG", 100, 95, 110, 1)  # in the journal only
    seed_rewrite(store.trade_log)
    for reader in (store, journal_store(tmp_path / "t.json")):
        with pytest.raises(CorruptTradeLog, match="does not know its journal"):
            reader.get_all_trades()
    with pytest.raises(CorruptTradeLog, match="does not know its journal"):
        StateReconciler(store.trade_log, tmp_path / "state").build()


def test_older_readers_refuse_the_checkpoint(tmp_path):
    store = journal_store(tmp_path / "t.json")
    store.open_trade("BTC", "LONG", 100, 95, 110, 1)
    with pytest.raises(CorruptTradeLog, match="journal-format"):
        parse_document(open(store.trade_log, "rb").read())


def test_a_missing_journal_or_checkpoint_is_refused(tmp_path):
    store = journal_store(tmp_path / "t.json")
    store.open_trade("BTC", "LONG", 100, 95, 110, 1)
    os.rename(store.journal_file, tmp_path / "away")
    with pytest.raises(CorruptTradeLog, match="journal .* is missing"):
        journal_store(tmp_path / "t.json").get_all_trades()
    os.rename(tmp_path / "away", store.journal_file)
    store.open_trade("ETH", "LONG", 100, 95, 110, 1)
    os.rename(store.trade_log, tmp_path / "away")
    with pytest.raises(CorruptTradeLog, match="checkpoint was lost"):
        journal_store(tmp_path / "t.json").get_all_trades()


# --------------------------------------------------------------------------- crashes mid-protocol


class Crash(BaseException):
    pass


def crash_on_write(monkeypatch, nth: int) -> None:
    """Make the ``nth`` file step (1-based: an atomic replace, or the removal of a journal) of
    this process never happen: the process 'crashes' there."""
    calls = []

    def crashing(real):
        def step(*args, **kw):
            calls.append(args[0])
            if len(calls) == nth:
                raise Crash(args[0])
            return real(*args, **kw)
        return step

    monkeypatch.setattr(atomic, "write_atomic", crashing(atomic.write_atomic))
    monkeypatch.setattr(journal, "remove", crashing(journal.remove))


@pytest.mark.parametrize("step", [1, 2])
@pytest.mark.parametrize("protocol", ["checkpoint", "to-journal", "to-document", "new-log"])
def test_a_crash_between_any_two_steps_leaves_one_state(tmp_path, monkeypatch, protocol, step):
    path = tmp_path / "t.json"
    fmt = "document" if protocol == "to-journal" else "journal"
    if protocol != "new-log":
        store = TradeStore(path, log_format=fmt, clock=FakeClock(), **LIMITS)
        for symbol in ("BTC", "ETH"):
            store.open_trade(symbol, "LONG", 100, 95, 110, 1)
    before = None if protocol == "new-log" else TradeStore(path).get_all_trades()
    crash_on_write(monkeypatch, step)
    crashing = TradeStore(path, log_format="journal", clock=FakeClock(), **LIMITS)
    with pytest.raises(Crash):
        if protocol == "checkpoint":
            monkeypatch.setattr(journal, "CHECKPOINT_MIN_BYTES", 0)
            crashing.open_trade("SOL", "LONG", 100, 95, 110, 1)  # acknowledged in the journal first
        elif protocol == "new-log":
            crashing.open_trade("SOL", "LONG", 100, 95, 110, 1)
        else:
            crashing.convert(protocol.removeprefix("to-"))
    monkeypatch.undo()
    after = TradeStore(path, clock=FakeClock(), **LIMITS)
    trades = after.get_all_trades()
    if protocol == "checkpoint":
        assert [t["symbol"] for t in trades] == ["BTC", "ETH", "SOL"]  # the write was durable before
    elif protocol == "new-log":
        assert trades == []
    else:
        assert trades == before
    after.open_trade("ADA", "LONG", 100, 95, 110, 1)
    assert TradeStore(path).get_all_trades()[-1]["symbol"] == "ADA"


# --------------------------------------------------------------------------- failed fsync


def test_a_failed_fsync_cuts_the_record_off_again_and_raises(tmp_path, monkeypatch):
    store = journal_store(tmp_path / "t.json")
    store.open_trade("BTC", "LONG", 100, 95, 110, 1)
    size = os.path.getsize(store.journal_file)
    real, failed = os.fsync, []

    def fsync(fd):
        if not failed:
            failed.append(fd)
            raise OSError(5, "Input/output error")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError):
        store.open_trade("ETH", "LONG", 100, 95, 110, 1)
    assert os.path.getsize(store.journal_file) == size
    assert [t["symbol"] for t in journal_store(tmp_path / "t.json").get_all_trades()] == ["BTC"]
    store.open_trade("SOL", "LONG", 100, 95, 110, 1)
    assert [t["id"] for t in journal_store(tmp_path / "t.json").get_all_trades()] == ["T001", "T002"]


def test_a_record_that_cannot_be_cut_off_stops_the_store_which_keeps_the_lock(tmp_path, monkeypatch):
    store = journal_store(tmp_path / "t.json")
    store.open_trade("BTC", "LONG", 100, 95, 110, 1)

    def fail(*args):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", fail)
    monkeypatch.setattr(os, "ftruncate", fail)
    with pytest.raises(StoreStopped, match="cut off"):
        store.open_trade("ETH", "LONG", 100, 95, 110, 1)
    monkeypatch.undo()
    with pytest.raises(StoreStopped):
        store.get_all_trades()
    outcome = []

    def other_thread():  # another thread of this process (and any process) cannot read the record
        try:
            journal_store(tmp_path / "t.json", lock_timeout=0.2).get_all_trades()
        except (LockTimeout, StoreStopped):
            outcome.append("refused")

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert outcome == ["refused"]


# --------------------------------------------------------------------------- conversions


def test_convert_both_ways_keeps_every_record_and_next_id(tmp_path):
    store = TradeStore(tmp_path / "t.json", clock=FakeClock(), **LIMITS)
    for symbol in ("BTC", "ETH", "SOL"):
        store.open_trade(symbol, "LONG", 100, 95, 110, 1)
    store.close_trade("T002", 104)
    document = open(store.trade_log, "rb").read()
    assert "journal format" in store.convert("journal")
    assert "already" in store.convert("journal")
    store.close_trade("T001", 99)
    assert os.path.exists(store.journal_file)
    assert "document format" in store.convert("document")
    assert not os.path.exists(store.journal_file)
    reread = TradeStore(tmp_path / "t.json")
    assert [t["status"] for t in reread.get_all_trades()] == ["CLOSED", "CLOSED", "OPEN"]
    assert json.loads(document)["next_id"] == json.loads(open(store.trade_log, "rb").read())["next_id"]
    reread.open_trade("ADA", "LONG", 100, 95, 110, 1)
    assert "journal" not in json.loads(open(store.trade_log, "rb").read())  # the marker is gone


def test_a_write_too_large_for_one_record_becomes_a_checkpoint(tmp_path, monkeypatch):
    store = journal_store(tmp_path / "t.json")
    for symbol in ("BTC", "ETH", "SOL"):
        store.open_trade(symbol, "LONG", 100, 95, 110, 1)
    monkeypatch.setattr(journal, "MAX_PAYLOAD", 600)
    store.update_trades_batch([(f"T00{i}", {"notes": "n" * 200}) for i in (1, 2, 3)])
    monkeypatch.undo()
    assert os.path.getsize(store.journal_file) < 400  # a fresh journal: header only
    assert all(t["notes"] == "n" * 200 for t in journal_store(tmp_path / "t.json").get_all_trades())


def test_log_format_is_checked(tmp_path):
    with pytest.raises(ValueError, match="log_format"):
        TradeStore(tmp_path / "t.json", log_format="sqlite")


def test_the_format_on_disk_wins_over_the_option(tmp_path):
    journal_store(tmp_path / "t.json").open_trade("BTC", "LONG", 100, 95, 110, 1)
    TradeStore(tmp_path / "t.json", clock=FakeClock(), **LIMITS).open_trade("ETH", "LONG", 100, 95, 110, 1)
    assert json.loads(open(tmp_path / "t.json", "rb").read())["schema"] == 3
    assert len(journal_store(tmp_path / "t.json").get_all_trades()) == 2
    with pytest.raises(RiskRejected):
        TradeStore(tmp_path / "t.json", clock=FakeClock(), **LIMITS).open_trade("ETH", "LONG", 100, 95, 110, 1)


# --------------------------------------------------------------------------- odd files and odd failures


def test_a_journal_removed_under_a_follower_is_refused_not_read_as_empty(tmp_path):
    writer, follower = journal_store(tmp_path / "t.json"), journal_store(tmp_path / "t.json")
    writer.open_trade("BTC", "LONG", 100, 95, 110, 1)
    follower.get_all_trades()
    os.unlink(writer.journal_file)
    with pytest.raises(CorruptTradeLog, match="missing"):
        follower.get_all_trades()


def test_a_checkpoint_replaced_between_its_stat_and_its_open_is_read_again(tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "CHECKPOINT_MIN_BYTES", 0)
    writer, follower = journal_store(tmp_path / "t.json"), journal_store(tmp_path / "t.json")
    writer.open_trade("BTC", "LONG", 100, 95, 110, 1)
    follower.get_all_trades()
    writer.open_trade("ETH", "LONG", 100, 95, 110, 1)  # and a checkpoint: a new journal
    real = journal.logfile.open_regular
    replaced = []

    def open_after_a_replace(path, **kw):
        if path == follower.trade_log and not replaced:  # the race: replaced right after the stat
            replaced.append(path)
            data = open(path, "rb").read()
            os.unlink(path)
            open(path, "wb").write(data)
        return real(path, **kw)

    monkeypatch.setattr(journal.logfile, "open_regular", open_after_a_replace)
    assert [t["symbol"] for t in follower.get_all_trades()] == ["BTC", "ETH"]  # read whole again
    assert replaced


@pytest.mark.parametrize("intruded", ["checkpoint", "journal"])
def test_files_replaced_right_after_a_checkpoint_are_reported_and_not_trusted(tmp_path, monkeypatch, intruded):
    seen = []
    store = journal_store(tmp_path / "t.json", on_integrity_violation=seen.append)
    store.open_trade("BTC", "LONG", 100, 95, 110, 1)
    real = atomic.write_atomic
    target = store.trade_log if intruded == "checkpoint" else store.journal_file

    def write_then_intruder(path, data, **kw):
        result = real(path, data, **kw)
        if path == target:  # same bytes, another inode: not the file written
            os.rename(path, path + ".moved")  # kept, so its inode number is not reused at once
            open(path, "wb").write(open(path + ".moved", "rb").read())
        return result

    monkeypatch.setattr(atomic, "write_atomic", write_then_intruder)
    monkeypatch.setattr(journal, "CHECKPOINT_MIN_BYTES", 0)
    store.open_trade("ETH", "LONG", 100, 95, 110, 1)
    assert seen and "ignores the lock" in seen[0][0]
    assert store._cache is None  # nothing of it is trusted: the next load reads the files again


def test_a_journal_replaced_right_after_it_was_started_is_refused(tmp_path, monkeypatch):
    store = journal_store(tmp_path / "t.json")
    store.open_trade("BTC", "LONG", 100, 95, 110, 1)
    crash_on_write(monkeypatch, 2)  # a checkpoint cut short after the checkpoint: old journal stays
    monkeypatch.setattr(journal, "CHECKPOINT_MIN_BYTES", 0)
    with pytest.raises(Crash):
        store.open_trade("ETH", "LONG", 100, 95, 110, 1)
    monkeypatch.undo()
    seen = []
    fresh = journal_store(tmp_path / "t.json", on_integrity_violation=seen.append)
    fresh.get_all_trades()
    monkeypatch.setattr(journal, "_open_written", lambda *args: None)  # as if replaced at once
    with pytest.raises(CorruptTradeLog, match="ignores the lock"):
        fresh.open_trade("SOL", "LONG", 100, 95, 110, 1)
    assert seen
    monkeypatch.undo()
    assert [t["symbol"] for t in journal_store(tmp_path / "t.json").get_all_trades()] == ["BTC", "ETH"]


def test_a_failed_checkpoint_after_an_acknowledged_write_keeps_the_write(tmp_path, monkeypatch, caplog):
    store = journal_store(tmp_path / "t.json")
    store.open_trade("BTC", "LONG", 100, 95, 110, 1)

    def disk_full(*args, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal, "CHECKPOINT_MIN_BYTES", 0)
    monkeypatch.setattr(journal, "checkpoint", disk_full)
    store.open_trade("ETH", "LONG", 100, 95, 110, 1)  # acknowledged: the checkpoint is not the write
    assert "checkpoint of" in caplog.text
    monkeypatch.undo()
    assert [t["symbol"] for t in journal_store(tmp_path / "t.json").get_all_trades()] == ["BTC", "ETH"]


def test_converting_a_log_that_does_not_exist_changes_nothing(tmp_path):
    assert "does not exist" in TradeStore(tmp_path / "t.json").convert("journal")
    assert os.listdir(tmp_path) == ["t.json.lock"]


@pytest.mark.parametrize("own", ["ops notes", {"folds": 1}, None, 0])
def test_a_document_with_its_own_journal_key_is_not_converted_over_it(tmp_path, own):
    # The checkpoint's marker is its top-level "journal": written over the document's own key,
    # the log became a checkpoint without a valid marker, refused by every later read.
    path = tmp_path / "t.json"
    store = TradeStore(path, clock=FakeClock(), **LIMITS)
    store.open_trade("BTC", "LONG", 100, 95, 110, 1)
    doc = json.loads(path.read_bytes())
    path.write_text(json.dumps({**doc, "journal": own}))
    before = path.read_bytes()
    with pytest.raises(ConversionRefused, match="'journal'"):
        TradeStore(path).convert("journal")
    assert path.read_bytes() == before and not os.path.exists(f"{path}.journal")
    reopened = TradeStore(path, clock=FakeClock(), **LIMITS)
    reopened.open_trade("ETH", "LONG", 100, 95, 110, 1)  # still a document, written as one
    assert json.loads(path.read_bytes())["journal"] == own
    assert [t["symbol"] for t in TradeStore(path).get_all_trades()] == ["BTC", "ETH"]


def test_the_format_s_own_keys_never_replace_a_document_s_in_silence():
    ledger = Ledger([], 1, {"journal": "mine", "note": 1})
    with pytest.raises(ValueError, match="'journal'"):
        ledger.to_json(head_keys={"journal": {"folds": 1, "folded": 0}})
    assert json.loads(ledger.to_json(head_keys={"other": 2})) == {
        "schema": 2, "next_id": 1, "other": 2, "journal": "mine", "note": 1, "trades": []}


def test_recover_never_restores_a_journal_format_log_from_a_backup(tmp_path):
    store = TradeStore(tmp_path / "t.json", clock=FakeClock(), **LIMITS)
    store.open_trade("BTC", "LONG", 100, 95, 110, 1)
    store.open_trade("ETH", "LONG", 100, 95, 110, 1)  # a backup exists now: the BTC-only version
    store.convert("journal")
    store.open_trade("SOL", "LONG", 100, 95, 110, 1)
    os.unlink(store.journal_file)  # lost: recover must not fall back on the older backup
    with pytest.raises(RecoveryRefused, match="journal-format"):
        store.recover(force=True)
    assert json.loads(open(store.trade_log, "rb").read())["schema"] == 3
    assert journal.looks_like_checkpoint(b' {"schema": 3, "next_id": 7, "journal": {"folds"')
    assert journal.looks_like_checkpoint(b'{"schema":3,"next_id":7x,"journal":{')  # a damaged next_id
    for document in (b'{"schema":30}', b'{"schema":3,"x":1}', b'{"schema":3,"next_id":2,"trades":[]}'):
        assert not journal.looks_like_checkpoint(document)  # e.g. a flipped bit read "schema":2 as 3


def test_ids_a_damaged_last_record_shows_are_never_given_out_again(tmp_path):
    store = journal_store(tmp_path / "t.json")
    store.open_trade("BTC", "LONG", 100, 95, 110, 1)
    store.open_trade("ETH", "LONG", 100, 95, 110, 1)  # T002: acknowledged, then its record flips
    data = bytearray(open(store.journal_file, "rb").read())
    data[-3] ^= 0x01  # inside the last record's payload: it reads as a torn write
    open(store.journal_file, "wb").write(bytes(data))
    fresh = journal_store(tmp_path / "t.json")
    assert [t["id"] for t in fresh.get_all_trades()] == ["T001"]  # the promise: dropped
    assert fresh.open_trade("SOL", "LONG", 100, 95, 110, 1)["id"] == "T003"  # but T002 is not reused


def test_a_follower_keeps_its_views_across_other_writers_records(tmp_path, monkeypatch):
    """Taking another writer's records updates the views, never rebuilds them from the whole
    history (each hand-off between journal writers used to cost a rebuild)."""
    from tradestore import ledger as ledger_module

    writer, follower = journal_store(tmp_path / "t.json"), journal_store(tmp_path / "t.json")
    for symbol in ("BTC", "ETH", "SOL"):
        writer.open_trade(symbol, "LONG", 100, 95, 110, 1)
    follower.open_trade("ADA", "LONG", 100, 95, 110, 1)  # its views are built, once
    builds = []
    real = ledger_module._Views.__init__
    monkeypatch.setattr(ledger_module._Views, "__init__", lambda self, trades: builds.append(1) or real(self, trades))
    writer.partial_close("T001", 0.5, 105)
    writer.close_trade("T002", 104)
    writer.update_trade("T003", {"notes": "x"})
    follower.open_trade("XRP", "LONG", 100, 95, 110, 1)  # reads the three records, checks the rules
    assert follower.equity() == writer.equity() and builds == []
