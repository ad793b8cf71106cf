"""The journal format against a hostile user and a hostile environment.

Each test states one way the journal format could lose an acknowledged write, reuse an id,
show a reader an unacknowledged write, accept a damaged or foreign file, raise something other
than a TradeStoreError, or leave the log unreadable, and checks it does not. Seven of them
(export over the log's files, a hard-linked copy, a reader racing a conversion, a write that
raised after committing, a stopped store's record, a symlinked journal, a journal overwritten in
place) failed on the first version of the journal format.
"""

from __future__ import annotations

import errno
import os

import pytest

from tradestore import locking
from tradestore import (CorruptTradeLog, StateReconciler, StoreStopped, TradeStore, TradeStoreError, UnsafePath,
                        atomic, journal)

from .conftest import FakeClock
from .test_journal import seed_rewrite
from .test_journal_processes import acknowledged_history_problems, drain

LIMITS = dict(max_positions=50, asset_consecutive_loss_cap=None, max_corr_group_risk_pct=100.0)


def journal_store(path, **kw) -> TradeStore:
    return TradeStore(path, log_format="journal", clock=kw.pop("clock", FakeClock()), **{**LIMITS, **kw})


def opened(store: TradeStore, *symbols: str) -> None:
    for symbol in symbols:
        store.open_trade(symbol, "LONG", 100, 95, 110, 1)


def symbols(path) -> list[str]:
    return [t["symbol"] for t in TradeStore(path).get_all_trades()]


def files_of(directory) -> dict[str, bytes]:
    return {name: open(os.path.join(directory, name), "rb").read() for name in sorted(os.listdir(directory))
            if os.path.isfile(os.path.join(directory, name))}


# --------------------------------------------------------------------------- writing over the log's own files


@pytest.mark.parametrize("target", ["journal", "checkpoint"])
def test_export_never_writes_over_the_logs_own_files(tmp_path, target):
    store = journal_store(tmp_path / "t.json")
    opened(store, "BTC", "ETH")
    path = store.journal_file if target == "journal" else store.trade_log
    before = files_of(tmp_path)
    with pytest.raises(UnsafePath):
        store.export(path)
    assert files_of(tmp_path) == before
    assert symbols(tmp_path / "t.json") == ["BTC", "ETH"]


def test_export_to_another_file_is_the_single_document(tmp_path):
    """The negative control of the test above: export to a free path works."""
    store = journal_store(tmp_path / "t.json")
    opened(store, "BTC", "ETH")
    assert store.export(tmp_path / "out.json") == 2
    assert (tmp_path / "out.json").read_bytes() == store.export_document()


def test_a_hard_linked_copy_of_the_log_never_writes_into_the_original(tmp_path):
    prod, paper = tmp_path / "prod.json", tmp_path / "paper.json"
    opened(journal_store(prod), "BTC")
    os.link(prod, paper)
    os.link(f"{prod}.journal", f"{paper}.journal")
    try:
        opened(journal_store(paper), "PAPER")
    except UnsafePath:
        pass  # refusing a journal that is also another file is a fix too
    assert symbols(prod) == ["BTC"]


def test_a_copy_of_the_log_made_by_copying_bytes_is_independent(tmp_path):
    """The control of the test above: copied files (new inodes) are another log."""
    prod, paper = tmp_path / "prod.json", tmp_path / "paper.json"
    opened(journal_store(prod), "BTC")
    paper.write_bytes(prod.read_bytes())
    (tmp_path / "paper.json.journal").write_bytes((tmp_path / "prod.json.journal").read_bytes())
    opened(journal_store(paper), "PAPER")
    assert symbols(prod) == ["BTC"] and symbols(paper) == ["BTC", "PAPER"]


# --------------------------------------------------------------------------- readers racing writers


def convert_while_reader_opens_journal(monkeypatch, store: TradeStore, to: str) -> list[str]:
    """Make another store convert the log to ``to`` right after a reader opened the checkpoint:
    the reader then holds the old checkpoint's bytes, and (holding no lock) must not take the
    files that follow as the ones that go with it."""
    real, fired = journal.logfile.open_regular, []

    def open_after_conversion(path, **kw):
        handle = real(path, **kw)
        if path == store.trade_log and not fired:
            fired.append(path)
            TradeStore(store.trade_log, **LIMITS).convert(to)
        return handle

    monkeypatch.setattr(journal.logfile, "open_regular", open_after_conversion)
    return fired


@pytest.mark.parametrize("reader", ["store", "reconciler"])
def test_a_reader_racing_a_conversion_to_the_document_format_reads_the_log(tmp_path, monkeypatch, reader):
    store = journal_store(tmp_path / "t.json")
    opened(store, "BTC", "ETH")
    fired = convert_while_reader_opens_journal(monkeypatch, store, "document")
    if reader == "store":
        seen = [t["symbol"] for t in TradeStore(store.trade_log, **LIMITS).get_all_trades()]
    else:
        version, _ = StateReconciler(store.trade_log, tmp_path / "st", **LIMITS).build()
        seen = ["BTC", "ETH"][:version.trade_count]
    assert fired and seen == ["BTC", "ETH"]


@pytest.mark.parametrize("reader", ["store", "reconciler"])
def test_a_reader_racing_a_conversion_to_the_journal_format_reads_the_log(tmp_path, monkeypatch, reader):
    """The other direction holds: the reader finds a journal, and reads again holding the lock."""
    store = TradeStore(tmp_path / "t.json", clock=FakeClock(), **LIMITS)
    opened(store, "BTC", "ETH")
    convert_while_reader_opens_journal(monkeypatch, store, "journal")
    if reader == "store":
        count = len(TradeStore(store.trade_log, **LIMITS).get_all_trades())
    else:
        count = StateReconciler(store.trade_log, tmp_path / "st", **LIMITS).build()[0].trade_count
    assert count == 2


# --------------------------------------------------------------------------- failures in the middle of a write


def no_room_for_a_new_journal(monkeypatch, store: TradeStore) -> None:
    """Every atomic write of ``store``'s journal (a new journal) fails with ENOSPC."""
    real = atomic.write_atomic

    def write(path, data, **kw):
        if path == store.journal_file:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data, **kw)

    monkeypatch.setattr(atomic, "write_atomic", write)


def test_a_write_that_raises_is_not_in_the_log_and_one_that_returns_is(tmp_path, monkeypatch):
    store = journal_store(tmp_path / "t.json")
    opened(store, "BTC")
    monkeypatch.setattr(journal, "MAX_PAYLOAD", 300)
    no_room_for_a_new_journal(monkeypatch, store)
    try:
        store.open_trade("ETH", "LONG", 100, 95, 110, 1, notes="x" * 400)
        acknowledged = True
    except OSError:
        acknowledged = False
    monkeypatch.undo()
    assert ("ETH" in symbols(tmp_path / "t.json")) == acknowledged


def stopped_store(tmp_path, monkeypatch) -> TradeStore:
    """A store holding BTC whose write of ETH could be neither made durable nor cut off again."""
    store = journal_store(tmp_path / "t.json")
    opened(store, "BTC")

    def fail(*args):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fail)
    monkeypatch.setattr(os, "ftruncate", fail)
    with pytest.raises(StoreStopped):
        opened(store, "ETH")
    monkeypatch.undo()
    return store


@pytest.mark.parametrize("reader", ["store", "reconciler"])
def test_a_stopped_store_shows_its_unacknowledged_record_to_no_reader(tmp_path, monkeypatch, reader):
    store = stopped_store(tmp_path, monkeypatch)
    try:
        if reader == "store":
            count = len(TradeStore(tmp_path / "t.json", lock_timeout=0.1, **LIMITS).get_all_trades())
        else:
            count = StateReconciler(tmp_path / "t.json", tmp_path / "st", **LIMITS).build()[0].trade_count
    except TradeStoreError:
        return  # refusing to read (stopped, or the lock is busy) is fine
    assert count == 1, "a reader saw the unacknowledged record"


def test_a_symlinked_journal_is_refused_as_unsafe_or_used_not_a_raw_oserror(tmp_path):
    store = journal_store(tmp_path / "t.json")
    opened(store, "BTC")
    os.rename(store.journal_file, tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", store.journal_file)
    try:
        other = journal_store(tmp_path / "t.json")
        other.get_all_trades()
        opened(other, "ETH")
    except TradeStoreError:
        return
    assert symbols(tmp_path / "t.json") == ["BTC", "ETH"]


# --------------------------------------------------------------------------- a crash at every file call


def _setup(directory, protocol: str) -> None:
    """The log each protocol starts from."""
    path = os.path.join(directory, "t.json")
    if protocol == "new-log":
        return
    store = TradeStore(path, log_format="document" if protocol == "to-journal" else "journal", clock=FakeClock(),
                       **LIMITS)
    opened(store, "BTC", "ETH")
    if protocol == "cut-torn-tail":
        with open(store.journal_file, "ab") as f:
            f.write(journal.encode_frame({"seq": 3, "next_id": 9, "trades": []})[:-5])


def _operate(directory, protocol: str) -> None:
    path = os.path.join(directory, "t.json")
    store = TradeStore(path, log_format="journal", clock=FakeClock(), **LIMITS)
    if protocol.startswith("to-"):
        store.convert(protocol.removeprefix("to-"))
    elif protocol == "too-large":
        store.update_trades_batch([("T001", {"notes": "n" * 400}), ("T002", {"notes": "m" * 400})])
    elif protocol == "checkpoint":  # a record larger than the checkpoint: one is due after it
        store.open_trade("SOL", "LONG", 100, 95, 110, 1, notes="x" * 1500)
    else:
        opened(store, "SOL")


def _state(path) -> tuple:
    trades = TradeStore(path).get_all_trades()
    return tuple((t["id"], t["symbol"], t.get("notes", "")) for t in trades)


CRASH_PROTOCOLS = ["append", "checkpoint", "too-large", "to-journal", "to-document", "new-log", "cut-torn-tail"]


def crash_sweep(tmp_path, protocol: str) -> tuple[int, list[str]]:
    """Crash ``protocol`` at each of its file calls in turn (before the call, and as a torn
    write); return how many crashes ran and what was wrong afterwards: a state that is neither
    the one before nor the one after, a next write that fails, an id given twice."""
    import shutil

    from tradestore_harness.fsfaults import Fault, FsShim, SimulatedCrash

    template = tmp_path / "template"
    template.mkdir()
    _setup(template, protocol)
    before = _state(template / "t.json") if protocol != "new-log" else ()
    done = tmp_path / "done"
    shutil.copytree(template, done)
    _operate(done, protocol)
    after = _state(done / "t.json")
    crashes, problems = 0, []
    for at in range(400):
        survived = False
        for action in ("crash", "torn"):
            work = tmp_path / f"{at}-{action}"
            shutil.copytree(template, work)
            shim = FsShim(work, fault=Fault(at, action, in_process=True), file_objects=False, real_sync=False)
            try:
                with shim:
                    _operate(work, protocol)
            except SimulatedCrash:
                crashes += 1
                # The "dead" writer's lock goes with it, as the kernel releases a dead process's
                # flock (the crash may have hit the lock's own pid-hint write).
                locking._forget_after_fork()
            else:
                survived = True
                break
            try:
                state = _state(work / "t.json")
                if state not in (before, after):
                    problems.append(f"crash at call {at} ({action}): state {state}")
                    continue
                opened(journal_store(work / "t.json"), "ADA")
                ids = [t["id"] for t in TradeStore(work / "t.json").get_all_trades()]
                # a new id, above all: not always the next number (a torn record's ids are skipped)
                if len(set(ids)) != len(ids) or ids != sorted(ids) or len(ids) != len(state) + 1:
                    problems.append(f"crash at call {at} ({action}): ids after the next write {ids}")
            except TradeStoreError as exc:
                problems.append(f"crash at call {at} ({action}): {type(exc).__name__}: {exc}")
            finally:
                shutil.rmtree(work)
        if survived:
            break
    return crashes, problems


@pytest.mark.parametrize("protocol", CRASH_PROTOCOLS)
def test_a_crash_at_any_file_call_leaves_the_state_before_or_after_and_the_next_write_works(
        tmp_path, monkeypatch, protocol):
    if protocol == "checkpoint":
        monkeypatch.setattr(journal, "CHECKPOINT_MIN_BYTES", 0)
    if protocol == "too-large":
        monkeypatch.setattr(journal, "MAX_PAYLOAD", 600)
    crashes, problems = crash_sweep(tmp_path, protocol)
    assert problems == []
    assert crashes >= {"append": 8, "checkpoint": 20}.get(protocol, 12), crashes


def test_the_crash_sweep_catches_a_checkpoint_written_in_place(tmp_path, monkeypatch):
    """Negative control: a checkpoint that truncates the journal and writes the new one in its
    place (no temp file, no rename) loses the journal's records to a crash in between."""
    monkeypatch.setattr(journal, "CHECKPOINT_MIN_BYTES", 0)
    real = atomic.write_atomic

    def in_place(path, data, **kw):
        if not path.endswith(".journal"):
            return real(path, data, **kw)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            return os.fstat(fd)
        finally:
            os.close(fd)

    monkeypatch.setattr(atomic, "write_atomic", in_place)
    _, problems = crash_sweep(tmp_path, "checkpoint")
    assert problems


# --------------------------------------------------------------------------- damaged journals, byte by byte


def small_journal_log(directory) -> tuple[TradeStore, list[tuple]]:
    """A log whose journal holds a header and three records; the states after each record."""
    store = journal_store(os.path.join(directory, "t.json"))
    opened(store, "BTC")  # the new log's checkpoint holds BTC; the journal starts empty
    states = [_state(store.trade_log)]
    for symbol in ("ETH", "SOL", "ADA"):
        opened(store, symbol)
        states.append(_state(store.trade_log))
    return store, states


def record_starts(path) -> list[int]:
    data = open(path, "rb").read()
    starts, pos = [], 0
    while pos < len(data):
        starts.append(pos)
        pos += journal.FRAME_HEADER + int.from_bytes(data[pos:pos + 4], "big")
    return starts  # header, record 1, 2, 3


def positions(path, rng, per_payload: int = 24) -> list[int]:
    """Every byte of every frame header, its first and last payload bytes, and a seeded sample
    of the payload bytes between: every kind of byte, without reading the log once per byte."""
    starts = record_starts(path) + [os.path.getsize(path)]
    chosen = []
    for start, end in zip(starts, starts[1:]):
        body = range(start + journal.FRAME_HEADER, end)
        chosen += list(range(start, start + journal.FRAME_HEADER + 1)) + [end - 1]
        chosen += rng.sample(body, min(per_payload, len(body)))
    return sorted(set(chosen))


def read_outcome(path) -> tuple | str:
    try:
        return _state(path)
    except CorruptTradeLog:
        return "refused"


def test_a_bit_flip_at_any_byte_is_refused_or_drops_only_the_last_record(tmp_path):
    import random
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    store, states = small_journal_log(tmp_path)
    good = open(store.journal_file, "rb").read()
    last = record_starts(store.journal_file)[-1]
    for position in positions(store.journal_file, rng):
        bit = rng.randrange(8)
        flipped = bytearray(good)
        flipped[position] ^= 1 << bit
        open(store.journal_file, "wb").write(bytes(flipped))
        outcome = read_outcome(store.trade_log)
        allowed = ("refused", states[2]) if position >= last else ("refused",)
        assert outcome in allowed, f"seed {seed}: flip of bit {bit} at byte {position}: {outcome}"
        if outcome == "refused":  # and a writer writes nothing
            with pytest.raises(CorruptTradeLog):
                opened(journal_store(store.trade_log), "XRP")
            assert open(store.journal_file, "rb").read() == bytes(flipped)
    open(store.journal_file, "wb").write(good)
    assert read_outcome(store.trade_log) == states[3]


def test_a_truncation_at_any_byte_reads_as_a_prefix_of_the_writes(tmp_path):
    """A cut is a torn tail: the records before it are read, the log stays writable. (A cut
    that removes whole acknowledged records cannot be told from a torn write: they are lost.)"""
    import random
    seed = random.randrange(2**32)
    store, states = small_journal_log(tmp_path)
    good = open(store.journal_file, "rb").read()
    starts = record_starts(store.journal_file) + [len(good)]
    for cut in positions(store.journal_file, random.Random(seed)):
        open(store.journal_file, "wb").write(good[:cut])
        whole = sum(1 for end in starts[1:] if end <= cut)  # frames entirely before the cut
        outcome = read_outcome(store.trade_log)
        expected = "refused" if whole == 0 else states[whole - 1]
        assert outcome == expected, f"seed {seed}: cut at {cut}: {outcome}"
    open(store.journal_file, "wb").write(good[:starts[3] + 5])  # inside record 3
    writer = journal_store(store.trade_log)
    opened(writer, "XRP")
    assert [s for _, s, _ in _state(store.trade_log)] == ["BTC", "ETH", "SOL", "XRP"]


@pytest.mark.parametrize("zeros", [1, 11, 12, 13, 4096])
def test_a_zero_filled_tail_is_unwritten_and_the_next_writer_cuts_it(tmp_path, zeros):
    store, states = small_journal_log(tmp_path)
    size = os.path.getsize(store.journal_file)
    with open(store.journal_file, "ab") as f:
        f.write(b"\0" * zeros)
    assert read_outcome(store.trade_log) == states[3]
    opened(journal_store(store.trade_log), "XRP")
    assert read_outcome(store.trade_log)[-1][:2] == ("T005", "XRP")
    assert os.path.getsize(store.journal_file) < size + zeros or zeros < 100


def test_zeros_over_an_acknowledged_record_with_records_after_it_are_refused(tmp_path):
    store, _ = small_journal_log(tmp_path)
    data = bytearray(open(store.journal_file, "rb").read())
    starts = record_starts(store.journal_file)
    data[starts[2]:starts[3]] = bytes(starts[3] - starts[2])
    open(store.journal_file, "wb").write(bytes(data))
    assert read_outcome(store.trade_log) == "refused"


# --------------------------------------------------------------------------- foreign and stale files


SEED_MOMENTS = ["new-log", "after-appends", "after-checkpoint", "after-cut-short-checkpoint", "after-to-journal",
                "after-to-document"]


@pytest.mark.parametrize("moment", SEED_MOMENTS)
def test_a_seed_era_writer_at_any_moment_is_refused_or_loses_nothing(tmp_path, monkeypatch, moment):
    path = tmp_path / "t.json"
    store = TradeStore(path, log_format="document" if moment == "after-to-journal" else "journal",
                       clock=FakeClock(), **LIMITS)
    opened(store, "BTC")
    if moment != "new-log":
        opened(store, "ETH", "SOL")
    if moment == "after-checkpoint":
        monkeypatch.setattr(journal, "CHECKPOINT_MIN_BYTES", 0)
        store.open_trade("ADA", "LONG", 100, 95, 110, 1, notes="x" * 2000)
        monkeypatch.undo()
    if moment == "after-cut-short-checkpoint":
        no_room_for_a_new_journal(monkeypatch, store)
        monkeypatch.setattr(journal, "CHECKPOINT_MIN_BYTES", 0)
        store.open_trade("ADA", "LONG", 100, 95, 110, 1, notes="x" * 2000)  # acknowledged in the journal
        monkeypatch.undo()
    if moment == "after-to-journal":
        store.convert("journal")
    if moment == "after-to-document":
        store.convert("document")
    acknowledged = _state(path)
    seed_rewrite(path)
    before = files_of(tmp_path)
    for reader, symbol in ((store, "XRP"), (journal_store(path), "DOGE")):
        try:
            state = tuple((t["id"], t["symbol"], t.get("notes", "")) for t in reader.get_all_trades())
        except CorruptTradeLog:
            with pytest.raises(CorruptTradeLog):
                opened(reader, symbol)
            assert files_of(tmp_path) == before
            continue
        assert state[:len(acknowledged)] == acknowledged and "SEED" in [t[1] for t in state], moment
        opened(reader, symbol)
        ids = [t["id"] for t in TradeStore(path).get_all_trades()]
        assert len(set(ids)) == len(ids)


def test_a_journal_copied_from_another_log_is_refused(tmp_path):
    a, b = journal_store(tmp_path / "a.json"), journal_store(tmp_path / "b.json")
    opened(a, "BTC", "ETH")
    opened(b, "SOL", "ADA")
    os.replace(atomic.write_atomic(tmp_path / "copy", open(a.journal_file, "rb").read()) and tmp_path / "copy",
               b.journal_file)
    before = files_of(tmp_path)
    for reader in (b, journal_store(tmp_path / "b.json")):
        with pytest.raises(CorruptTradeLog, match="does not know its journal"):
            reader.get_all_trades()
        with pytest.raises(CorruptTradeLog):
            opened(reader, "XRP")
    assert files_of(tmp_path) == before


def test_a_journal_overwritten_in_place_under_a_running_writer_loses_no_acknowledged_write(tmp_path):
    a, b = journal_store(tmp_path / "a.json"), journal_store(tmp_path / "b.json")
    opened(a, "BTC", "ETH")
    opened(b, "SOL", "ADA")  # the same sizes as a's
    with open(b.journal_file, "r+b") as f:  # what cp does to an existing file
        f.write(open(a.journal_file, "rb").read())
        f.truncate()
    try:
        opened(b, "XRP")
    except CorruptTradeLog:
        return  # refused: nothing acknowledged
    assert "XRP" in symbols(tmp_path / "b.json")


@pytest.mark.parametrize("stale", ["checkpoint", "journal"])
def test_a_file_restored_from_a_backup_copy_beside_a_newer_one_is_refused(tmp_path, monkeypatch, stale):
    store = journal_store(tmp_path / "t.json")
    opened(store, "BTC", "ETH")
    backup = {name: open(tmp_path / name, "rb").read() for name in ("t.json", "t.json.journal")}
    monkeypatch.setattr(journal, "CHECKPOINT_MIN_BYTES", 0)
    store.open_trade("SOL", "LONG", 100, 95, 110, 1, notes="x" * 2000)  # and a checkpoint
    monkeypatch.undo()
    opened(store, "ADA")
    name = "t.json" if stale == "checkpoint" else "t.json.journal"
    open(tmp_path / name, "wb").write(backup[name])
    with pytest.raises(CorruptTradeLog):
        journal_store(tmp_path / "t.json").get_all_trades()


def test_two_journal_logs_in_one_directory_are_independent(tmp_path):
    a, b = journal_store(tmp_path / "a.json"), journal_store(tmp_path / "a.json.paper")
    for n in range(6):
        opened(a if n % 2 else b, f"S{n}")
    assert symbols(tmp_path / "a.json") == ["S1", "S3", "S5"]
    assert symbols(tmp_path / "a.json.paper") == ["S0", "S2", "S4"]


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink-to-log", "hard-link-to-log", "dangling-symlink"])
def test_an_odd_file_at_the_journal_path_is_refused_without_blocking(tmp_path, kind):
    import threading
    store = journal_store(tmp_path / "t.json")
    opened(store, "BTC", "ETH")
    os.unlink(store.journal_file)
    if kind == "fifo":
        os.mkfifo(store.journal_file)
    elif kind == "directory":
        os.mkdir(store.journal_file)
    elif kind == "symlink-to-log":
        os.symlink(store.trade_log, store.journal_file)
    elif kind == "hard-link-to-log":
        os.link(store.trade_log, store.journal_file)
    else:
        os.symlink(tmp_path / "nowhere", store.journal_file)
    outcomes = []

    def attempt():
        for call in (store.get_all_trades, lambda: journal_store(tmp_path / "t.json").get_all_trades(),
                     lambda: opened(store, "XRP")):
            try:
                call()
                outcomes.append("read")
            except TradeStoreError as exc:
                outcomes.append(type(exc).__name__)
            except BaseException as exc:  # noqa: BLE001 - reported below
                outcomes.append(f"raw {exc!r}")

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "a call blocked on the file at the journal's path"
    assert all(o in ("UnsafePath", "CorruptTradeLog") for o in outcomes), outcomes


# --------------------------------------------------------------------------- concurrency


@pytest.mark.parametrize("convert_every", [0, 3])
def test_the_reconciler_under_concurrent_journal_writers_derives_from_one_read_state(tmp_path, convert_every):
    """Writer processes (checkpointing often; with convert_every, also switching the log's format
    back and forth) and a reconciler process: every acknowledged write is in the log, every
    reconcile's derived files name the version it read, none ever needs healing, the trade
    count it sees never falls, and a last reconcile verifies clean."""
    from . import journal_adversary_workers as workers
    from .workers import SPAWN

    log, writers = str(tmp_path / "t.json"), 2
    results, stop = SPAWN.Queue(), SPAWN.Event()
    barrier = SPAWN.Barrier(writers + 1)
    procs = [SPAWN.Process(target=workers.write_cycles, args=(log, barrier, results, w, 15, 2048, convert_every))
             for w in range(writers)]
    procs.append(SPAWN.Process(target=workers.reconcile_until, args=(log, str(tmp_path / "state"), barrier, stop,
                                                                     results)))
    for p in procs:
        p.start()
    reports = drain(results, writers)
    stop.set()
    reports += drain(results, 1)
    for p in procs:
        p.join(30)
    problems = acknowledged_history_problems(log, reports)
    counts = []
    for _, what, detail in reports:
        if what == "cycle":
            count, healed, stale = detail
            if not counts:  # the first cycle creates the files
                healed = {name: why for name, why in healed.items() if why != "missing"}
            counts.append(count)
            problems += [f"healed {healed}"] * bool(healed) + [f"files of another version: {stale}"] * bool(stale)
    problems += ["the reconciler saw the trade count fall"] * (counts != sorted(counts))
    assert len(counts) >= 2, "the reconciler ran fewer than two cycles"
    final = StateReconciler(log, tmp_path / "state", **LIMITS)
    assert final.reconcile().ok and final.verify() == {}
    assert problems == [], f"{len(counts)} reconcile cycles"


def test_threads_of_one_process_mixing_reads_and_writes_lose_nothing(tmp_path, monkeypatch):
    import threading
    monkeypatch.setattr(journal, "CHECKPOINT_MIN_BYTES", 4096)
    log = tmp_path / "t.json"
    shared = journal_store(log)
    writers, cycles = 4, 12
    barrier = threading.Barrier(writers + 2)
    reports, stop = [], threading.Event()

    def write(worker):
        store = shared if worker % 2 else journal_store(log)  # one shared store, and stores of their own
        barrier.wait()
        try:
            for _ in range(cycles):
                trade = store.open_trade(f"W{worker}", "LONG", 100, 95, 110, 1)
                reports.append((worker, "opened", trade["id"]))
                store.update_trade(trade["id"], {"notes": "n" * 200})
                store.close_trade(trade["id"], 101)
                reports.append((worker, "closed", trade["id"]))
        except Exception as exc:
            reports.append((worker, "error", repr(exc)))

    def read(reader):
        store = shared if reader else journal_store(log)
        barrier.wait()
        seen: dict[str, str] = {}
        try:
            while not stop.is_set():
                now = {t["id"]: t["status"] for t in store.get_all_trades()}
                for trade_id, status in seen.items():
                    if trade_id not in now or (status == "CLOSED" and now[trade_id] != "CLOSED"):
                        reports.append((f"reader{reader}", "error", f"{trade_id} went back"))
                seen = now
        except Exception as exc:
            reports.append((f"reader{reader}", "error", repr(exc)))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    readers = [threading.Thread(target=read, args=(r,)) for r in range(2)]
    for t in threads + readers:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    for t in readers:
        t.join(60)
    assert acknowledged_history_problems(log, reports) == []
    assert len(TradeStore(log).get_all_trades()) == writers * cycles


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_descriptor_leaks_across_writes_checkpoints_conversions_and_refusals(tmp_path, monkeypatch):
    import gc
    monkeypatch.setattr(journal, "CHECKPOINT_MIN_BYTES", 2048)
    store, reader = journal_store(tmp_path / "t.json"), journal_store(tmp_path / "t.json")
    opened(store, "BTC")
    reader.get_all_trades()
    gc.collect()
    baseline = open_descriptors()
    for n in range(60):
        store.update_trade("T001", {"notes": f"{n}" * 150})
        reader.get_trade("T001")
        if n % 20 == 10:
            store.convert("document")
            reader.get_all_trades()
            store.convert("journal")
        with pytest.raises(TradeStoreError):
            store.close_trade("T999", 100)
    good = open(store.journal_file, "rb").read()
    for _ in range(20):  # refusals of a damaged journal, by a fresh store and the reconciler
        open(store.journal_file, "wb").write(b"\1" * 40 + good)
        with pytest.raises(CorruptTradeLog):
            journal_store(tmp_path / "t.json").get_all_trades()
        with pytest.raises(CorruptTradeLog):
            StateReconciler(tmp_path / "t.json", tmp_path / "st", **LIMITS).build()
        open(store.journal_file, "wb").write(good)
    gc.collect()
    assert open_descriptors() <= baseline + 2


def test_a_read_that_times_out_on_the_lock_raises_lock_timeout_and_the_next_read_works(tmp_path):
    import threading

    from tradestore import LockTimeout
    writer = journal_store(tmp_path / "t.json")
    opened(writer, "BTC")
    reader = journal_store(tmp_path / "t.json", lock_timeout=0.05)
    reader.get_all_trades()
    inside, release = threading.Event(), threading.Event()

    def hold():
        with writer.transaction() as tx:
            tx.open_trade("ETH", "LONG", 100, 95, 110, 1)
            inside.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    inside.wait(30)
    with pytest.raises(LockTimeout):
        reader.get_all_trades()  # the journal is read holding the lock
    release.set()
    thread.join(30)
    assert [t["symbol"] for t in reader.get_all_trades()] == ["BTC", "ETH"]


def test_a_fork_inside_a_journal_transaction_commits_only_in_the_parent(tmp_path):
    """The child that goes on with the inherited block gets ForkedTransaction; the parent commits."""
    from tradestore import ForkedTransaction
    store = journal_store(tmp_path / "t.json")
    opened(store, "BTC")
    read_end, write_end = os.pipe()
    pid = None
    try:
        with store.transaction() as tx:
            tx.open_trade("ETH", "LONG", 100, 95, 110, 1)
            pid = os.fork()
            if pid == 0:
                tx.open_trade("CHILD", "LONG", 100, 95, 110, 1)
    except ForkedTransaction:
        if pid == 0:
            os.write(write_end, b"\0")
    except BaseException:
        if pid == 0:
            os.write(write_end, b"\2")
    finally:
        if pid == 0:
            os._exit(0)
    os.waitpid(pid, 0)
    os.close(write_end)
    assert os.read(read_end, 1) == b"\0"
    assert symbols(tmp_path / "t.json") == ["BTC", "ETH"]


@pytest.mark.parametrize("reader_state", ["fresh", "following"])
@pytest.mark.parametrize("pause_after", ["checkpoint", "journal"])
def test_a_read_during_a_checkpoint_waits_for_it_and_never_sees_half_of_it(tmp_path, monkeypatch, reader_state,
                                                                          pause_after):
    """A checkpoint is paused after its first or second file; readers (fresh, or following the
    old journal) either wait (LockTimeout here) or see the whole state, never a refusal."""
    import threading

    from tradestore import LockTimeout
    writer = journal_store(tmp_path / "t.json")
    opened(writer, "BTC", "ETH")
    reader = journal_store(tmp_path / "t.json", lock_timeout=0.05)
    if reader_state == "following":
        reader.get_all_trades()
    paused, resume = threading.Event(), threading.Event()
    real = atomic.write_atomic
    target = writer.trade_log if pause_after == "checkpoint" else writer.journal_file

    def pausing(path, data, **kw):
        result = real(path, data, **kw)
        if path == target:
            paused.set()
            resume.wait(30)
        return result

    monkeypatch.setattr(atomic, "write_atomic", pausing)
    monkeypatch.setattr(journal, "CHECKPOINT_MIN_BYTES", 0)
    thread = threading.Thread(target=lambda: writer.open_trade("SOL", "LONG", 100, 95, 110, 1, notes="x" * 2000))
    thread.start()
    assert paused.wait(30)
    outcomes = []
    for attempt in (reader.get_all_trades, reader.export_document):
        try:
            attempt()
            outcomes.append("read")
        except LockTimeout:
            outcomes.append("waited")
        except TradeStoreError as exc:
            outcomes.append(f"{type(exc).__name__}: {exc}")
    resume.set()
    thread.join(30)
    monkeypatch.undo()
    assert outcomes == ["waited", "waited"], outcomes  # the writer holds the lock throughout
    assert [t["symbol"] for t in reader.get_all_trades()] == ["BTC", "ETH", "SOL"]


def test_a_batch_update_of_many_trades_is_one_record_read_back_whole(tmp_path):
    store = journal_store(tmp_path / "t.json", max_positions=3000)
    ids = []
    with store.transaction() as tx:
        for n in range(1500):
            ids.append(tx.open_trade(f"S{n}", "LONG", 100, 95, 110, 1)["id"])
    size = os.path.getsize(store.journal_file)
    assert store.update_trades_batch([(i, {"notes": f"batch {i}"}) for i in ids]) == len(ids)
    assert os.path.getsize(store.journal_file) > size or os.path.getsize(store.journal_file) < 200  # one record, or a checkpoint
    fresh = TradeStore(tmp_path / "t.json")
    assert all(t["notes"] == f"batch {t['id']}" for t in fresh.get_all_trades())
    assert fresh.get_next_id() == "T1501"


def test_a_stopped_store_refuses_every_call(tmp_path, monkeypatch):
    store = stopped_store(tmp_path, monkeypatch)
    calls = {
        "get_all_trades": store.get_all_trades, "get_trade": lambda: store.get_trade("T001"),
        "export_document": store.export_document, "export": lambda: store.export(tmp_path / "out.json"),
        "verify_integrity": store.verify_integrity, "can_open_position": lambda: store.can_open_position("SOL"),
        "convert": lambda: store.convert("document"), "open_trade": lambda: opened(store, "SOL"),
        "close_trade": lambda: store.close_trade("T001", 101), "recover": store.recover,
    }
    for name, call in calls.items():
        with pytest.raises(TradeStoreError):
            call()
    assert not (tmp_path / "out.json").exists()
