"""The chaos campaign on the journal format: the harness's own reader of the format, our store
passing every scenario on it, and its four negative controls caught, each by the scenario that
should catch it, with the property it breaks. Seeded (``CHAOS_TEST_SEED``), printed on failure."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random

import pytest

from tradestore import StoreStopped, TradeStore
from tradestore_harness import journal_reader, nemesis
from tradestore_harness.fsfaults import Fault, FsShim
from tradestore_harness.journal_target import JournalStore

SEED = int(os.environ.get("CHAOS_TEST_SEED", "20261128"))


# -- the independent reader ---------------------------------------------------------------------


def _journal_log(tmp_path, ops: int, seed: int = SEED):
    """A journal-format log after ``ops`` seeded writes (checkpoints as the campaign makes
    them); yields the store and whether each write checkpointed, after each write."""
    store = JournalStore(tmp_path / "trades.json", max_positions=50)
    r = random.Random(seed)
    opened: list[str] = []
    for n in range(ops):
        kind = r.choice(["open", "open", "update", "partial", "close"]) if opened else "open"
        if kind == "open":
            opened.append(store.open_trade(f"S{n}", "LONG", 100.0, 95.0, 110.0, 1.0)["id"])
        elif kind == "update":
            store.update_trade(r.choice(opened), {"notes": "x" * r.randrange(40)})
        elif kind == "partial":
            store.partial_close(r.choice(opened), 0.5, 104.0, "p")
        else:
            store.close_trade(opened.pop(r.randrange(len(opened))), 106.0, "c")
        yield store


def test_the_reader_finds_what_the_library_exports_after_every_write(tmp_path):
    how = set()
    for store in _journal_log(tmp_path, 40):
        state = journal_reader.read(store.trade_log, store.lock_file)
        assert state.data == store.export_document(), f"seed {SEED}: {state.how}"
        how.add(state.how.split(" and ")[0])
    assert how == {"the checkpoint"}  # every state was the checkpoint with (or without) records
    records = journal_reader.scan(open(store.journal_file, "rb").read()).frames[1:]
    assert records, "the journal ends with records"


def _log_with_records(tmp_path) -> tuple[bytes, bytes, list]:
    """A checkpoint, its journal (header and two records) and the frames."""
    store = TradeStore(tmp_path / "trades.json", log_format="journal")  # the library's floor: no checkpoint
    trade = store.open_trade("ETH", "LONG", 100.0, 95.0, 110.0, 1.0)
    store.update_trade(trade["id"], {"notes": "one"})
    store.update_trade(trade["id"], {"notes": "two"})
    checkpoint, journal = (open(p, "rb").read() for p in (store.trade_log, store.journal_file))
    return checkpoint, journal, list(journal_reader.scan(journal).frames)


def test_a_torn_last_frame_is_ignored_at_every_cut_and_a_bad_frame_before_others_is_refused(tmp_path):
    checkpoint, journal, frames = _log_with_records(tmp_path)
    assert [f.payload.get("seq") for f in frames] == [None, 1, 2]
    notes = lambda data: journal_reader.state_of(checkpoint, data).document["trades"][0]["notes"]  # noqa: E731
    assert notes(journal) == "two"
    last = frames[-1]
    for cut in range(last.start, last.end):  # cut anywhere in the last frame: that write is dropped
        assert notes(journal[:cut]) == "one", cut
    assert notes(journal[:last.start] + b"\0" * (last.end - last.start)) == "one"  # grown, never written
    for at in range(last.start + journal_reader.FRAME_HEADER, last.end):  # a flip in the last payload: dropped
        assert notes(journal[:at] + bytes([journal[at] ^ 1]) + journal[at + 1:]) == "one", at
    for at in range(frames[1].start, frames[1].end):  # a flip in a frame with a frame after it: refused
        with pytest.raises(journal_reader.Unreadable):
            journal_reader.state_of(checkpoint, journal[:at] + bytes([journal[at] ^ 0x10]) + journal[at + 1:])


def test_checkpoint_and_journal_combine_only_as_the_format_says(tmp_path):
    checkpoint, journal, frames = _log_with_records(tmp_path)
    header = frames[0].payload
    assert header["checkpoint"] == hashlib.sha256(checkpoint).hexdigest()
    doc = json.loads(checkpoint)
    with pytest.raises(journal_reader.Unreadable, match="never be combined"):  # rewritten by another writer
        journal_reader.state_of(json.dumps({**doc, "next_id": 9}).encode(), journal)
    with pytest.raises(journal_reader.Unreadable, match="journal is missing"):
        journal_reader.state_of(checkpoint, None)
    folded = json.dumps({**doc, "journal": {"folds": header["id"], "folded": 2}}).encode()
    assert journal_reader.state_of(folded, journal).how.startswith("the checkpoint, which already holds")
    with pytest.raises(journal_reader.Unreadable):  # folds one record fewer than the journal holds
        journal_reader.state_of(json.dumps({**doc, "journal": {"folds": header["id"], "folded": 1}}).encode(), journal)
    document = json.dumps({"schema": 2, "next_id": 1, "trades": []}).encode()
    assert journal_reader.state_of(document, journal[:frames[1].start]).data == document  # a conversion cut short
    with pytest.raises(journal_reader.Unreadable, match="no header"):
        journal_reader.state_of(checkpoint, journal[:5])
    assert journal_reader.state_of(None, None) is None
    assert journal_reader.state_of(b"{garbage", None).data == b"{garbage"  # a damaged document: judged elsewhere


def test_journal_damage_does_what_it_says(tmp_path):
    checkpoint, journal, frames = _log_with_records(tmp_path)
    path = str(tmp_path / "trades.json.journal")
    for how in nemesis.JOURNAL_DAMAGE + nemesis.JOURNAL_TAIL_DAMAGE:
        with open(path, "wb") as f:
            f.write(journal)
        nemesis.damage_journal(path, how, random.Random(SEED))
        if how == "journal-missing":
            assert not os.path.exists(path)
            continue
        damaged = open(path, "rb").read()
        if how == "journal-bad-frame":
            with pytest.raises(journal_reader.Unreadable):
                journal_reader.state_of(checkpoint, damaged)
        else:
            found = journal_reader.scan(damaged)
            assert found.torn and len(found.frames) == (3 if how == "journal-torn-tail" else 2), how
    with pytest.raises(ValueError):
        nemesis.damage_journal(path, "journal-melt", random.Random(1))


def test_the_spy_keeps_each_journal_commit_as_the_state_it_leaves(tmp_path):
    from tradestore_harness import spy
    from tradestore_harness.history import HistoryWriter, read_events

    log = tmp_path / "trades.json"
    installed = spy.install(HistoryWriter(tmp_path / "history", "w0"), str(log), str(tmp_path / "trades.json.lock"),
                            str(tmp_path / "versions"))
    exports, seen = [], []
    installed.on_commit.append(seen.append)
    try:
        for store in _journal_log(tmp_path, 8):
            exports.append(store.export_document())
    finally:
        spy.uninstall()
    commits = [e for e in read_events(tmp_path / "history") if e["ev"] == "commit"]
    assert all(c["locked"] and "unreadable" not in c for c in commits) and [c["sha"] for c in commits] == seen
    versions = {p.stem: p.read_bytes() for p in (tmp_path / "versions").glob("*.json")}
    assert {hashlib.sha256(e).hexdigest() for e in exports} <= set(versions)  # every write's state kept
    assert len(commits) > len(exports)  # the checkpoints' renames are commits too (of the same state)


def test_a_stopped_store_refuses_its_next_write_with_store_stopped(tmp_path):
    # Found by io-errors on the journal format: a store that stopped (its failed record could
    # not be cut off) keeps the lock, and its next write from the same thread raised
    # NestedTransactionError ("already holds the lock through another TradeStore") instead.
    store = TradeStore(tmp_path / "trades.json", log_format="journal")
    store.open_trade("ETH", "LONG", 100.0, 95.0, 110.0, 1.0)
    with FsShim(tmp_path, faults=[Fault(None, "error", errno.EIO, persistent=True, kind="fsync")]):
        with pytest.raises(StoreStopped):
            store.open_trade("XRP", "LONG", 100.0, 95.0, 110.0, 1.0)
    with pytest.raises(StoreStopped):
        store.open_trade("LTC", "LONG", 100.0, 95.0, 110.0, 1.0)


def _updates(directory, fault=None, count=5):
    """``count`` stop updates of one trade of a journal-format log in ``directory`` (every
    file-system call recorded, ``fault`` armed); returns (calls, outcomes)."""
    from tradestore_harness.journal_target import JournalStore

    with FsShim(directory, fault=fault, real_sync=False) as shim:
        store = JournalStore(directory / "trades.json", max_positions=10)  # checkpoints when the journal outgrows it
        outcomes = []
        for n in range(count):
            try:
                store.update_trade("T001", {"notes": f"update {n}"})
                outcomes.append("ok")
            except OSError:
                outcomes.append("fail")
    return shim.calls, outcomes


def test_an_acknowledged_append_survives_a_power_cut_after_its_journal_rename_was_not_synced(tmp_path):
    # Found by io-errors on the journal format (seed 2): a checkpoint renames a new journal
    # into place and its directory fsync fails, so the checkpoint raises (logged: the write it
    # followed is in the old journal). The next write appended to the new journal and was
    # acknowledged after the fsync of its data, but the journal's name was never made durable:
    # a power cut undoes the rename, and the acknowledged write is gone.
    import random

    from tradestore_harness import journal_reader
    from tradestore_harness.powerloss import DiskModel, materialise, snapshot_dir

    base = tmp_path / "base"
    base.mkdir()
    store = TradeStore(base / "trades.json", log_format="journal", max_positions=10)
    for symbol in ("ETH", "XRP", "LTC", "BNB", "TRX", "XLM"):  # a checkpoint larger than two records
        store.open_trade(symbol, "LONG", 100.0, 95.0, 110.0, 1.0)
    snapshot = snapshot_dir(str(base))
    materialise(*snapshot, str(tmp_path / "rec"))
    calls, _ = _updates(tmp_path / "rec")
    renamed = next(c.index for c in calls if c.kind == "replace" and c.dst.endswith(".journal"))
    synced = next(c.index for c in calls[renamed:] if c.kind == "dirfsync")
    run = tmp_path / "run"
    materialise(*snapshot, str(run))
    calls, outcomes = _updates(run, Fault(synced, "error", errno.EIO))
    last = max(k for k, outcome in enumerate(outcomes) if outcome == "ok")
    model = DiskModel(str(run), *snapshot)
    for call in calls:
        model.apply(call)
    for state in model.crash_states(random.Random(0)):
        held = journal_reader.state_of(state.files.get("trades.json"), state.files.get("trades.json.journal"))
        assert held.document["trades"][0]["notes"] == f"update {last}", (state.label, outcomes)


# -- the campaign on the journal format -------------------------------------------------------------

JOURNAL = "tradestore-journal"


def campaign(target, *names, duration=None, seed=SEED):
    from tradestore_chaos import scenarios
    from tradestore_chaos.campaign import Campaign

    available = scenarios.available()
    run = Campaign({n: available[n] for n in names}, target, seed, quick=True, duration=duration,
                   writers=3, progress=lambda line: None)
    run.run()
    return run


def describe(run):
    return f"seed {run.seed}: " + "; ".join(f"{v.property}: {v.detail[:600]}" for r in run.results
                                            for v in r.violations[:3]) + "; " + "; ".join(
        f"{r.scenario} not proven: {r.unproven}" for r in run.results if r.unproven)


# Grouped so that two test workers share the work evenly.
PASSING = [
    ("crash-points", "power-loss", "log-replaced"),
    ("io-errors",),
    ("corrupt-log",),
    ("race-duplicate", "toctou-waitpoint", "mutex", "kill-storm", "reconcile-under-writes"),
]


@pytest.mark.parametrize("names", PASSING, ids=["+".join(n) for n in PASSING])
def test_our_journal_store_passes(names):
    run = campaign(JOURNAL, *names, duration=1.5)
    assert run.passed, describe(run)
    by_name = {r.scenario: r for r in run.results}
    for name in {"crash-points", "io-errors", "log-replaced"} & set(names):
        assert by_name[name].crash_points > 0, name
    if "power-loss" in by_name:
        assert by_name["power-loss"].states_checked > 300
    if "corrupt-log" in by_name:
        assert by_name["corrupt-log"].corruptions_injected == 8  # 2 of the log, 4 of the journal, 2 parseable
    if "kill-storm" in by_name:
        assert by_name["kill-storm"].writes_cut > 0 and by_name["kill-storm"].ok > 0


# Each control with the scenario that must catch it and the property it breaks.
CAUGHT_BY = [
    ("journal-no-fsync", "power-loss", "ack-durable"),
    ("journal-torn-accepted", "crash-points", "log-parses"),
    ("journal-torn-accepted", "corrupt-log", "torn-tail-ignored"),
    ("journal-checkpoint-no-dirfsync", "power-loss", "ack-durable"),
    ("journal-replay-twice", "crash-points", "replay-exact"),
]


@pytest.mark.parametrize("target,scenario,prop", CAUGHT_BY)
def test_each_journal_control_is_caught_by_its_scenario(target, scenario, prop):
    run = campaign(target, scenario)
    assert prop in run.violated(), describe(run)


def test_a_checkpoint_without_its_directory_fsync_loses_the_writes_after_it(tmp_path):
    # Not only the first write (which makes a checkpoint too): the workload of four writes,
    # alone, in which a checkpoint starts a journal that the next writes append to.
    from tradestore_chaos.scenarios import power_loss
    from tradestore_harness import fsworkload as fw

    report = fw.in_worker(power_loss.power_worker, ("journal-checkpoint-no-dirfsync", str(tmp_path), [], SEED, 12),
                          lambda _m: None)
    props = dict(report["violations"])
    assert "ack-durable" in props and str(fw.CHECKPOINT_WORKLOAD) in props["ack-durable"], (SEED, props)


@pytest.mark.slow
def test_quick_campaign_passes_on_the_journal_format():
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-m", "chaos", "--target", JOURNAL, "--quick", "--seed", str(SEED)],
                         cwd=root, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted({target for target, _, _ in CAUGHT_BY}))
def test_the_whole_campaign_catches_each_journal_control(target):
    from tradestore_chaos import scenarios

    run = campaign(target, *scenarios.available(), duration=2.0)
    expected = {prop for t, _, prop in CAUGHT_BY if t == target}
    assert expected <= set(run.violated()), describe(run)
