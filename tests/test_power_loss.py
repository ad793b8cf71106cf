"""The durability model, and the power-loss scenario on our store and on the two controls."""

from __future__ import annotations

import io
import os
import random

import pytest

from tradestore_harness import fsworkload as fw
from tradestore_harness.context import ScenarioContext
from tradestore_harness.fsfaults import FsShim
from tradestore_harness.powerloss import BLOCK, DiskModel, materialise, snapshot_dir
from tradestore_harness.fsfaults import skipping
from tradestore import atomic

OLD = b'{"v":"old"}' + b" " * 600  # two sectors, so torn states exist
NEW = b'{"v":"new"}' + b" " * 1500


def _cut_states(tmp_path, write) -> list[tuple[int, int, list]]:
    """Record ``write()`` on a durable a.json = OLD; (cut, calls, states) at every cut."""
    (tmp_path / "a.json").write_bytes(OLD)
    snapshot = snapshot_dir(str(tmp_path))
    with FsShim(tmp_path) as shim:
        write(str(tmp_path / "a.json"))
    model = DiskModel(str(tmp_path), *snapshot)
    rng = random.Random(0)
    cuts = [(0, len(shim.calls), model.crash_states(rng))]
    for i, call in enumerate(shim.calls, 1):
        model.apply(call)
        cuts.append((i, len(shim.calls), model.crash_states(rng)))
    return cuts


def test_a_correct_write_leaves_old_or_new_and_new_once_it_returned(tmp_path):
    cuts = _cut_states(tmp_path, lambda p: atomic.write_atomic(p, NEW, keep_backup=True))
    for cut, total, states in cuts:
        seen = {s.files.get("a.json") for s in states}
        assert seen <= {OLD, NEW}, (cut, seen)
        if cut == total:
            assert seen == {NEW}
    # the model did consider torn and dropped temp data while it was unsynced
    labels = " ".join(s.label for _, _, states in cuts for s in states)
    assert f"torn after {BLOCK} bytes" in labels and "data dropped" in labels


def _skipping(path: str, kind: str) -> None:
    """The library's own atomic write, with every call of ``kind`` skipped by a fault."""
    with skipping(os.path.dirname(path), kind):
        atomic.write_atomic(path, NEW)


def test_without_file_fsync_the_log_can_be_empty_or_torn_after_return(tmp_path):
    cuts = _cut_states(tmp_path, lambda p: _skipping(p, "fsync"))
    final = {s.files.get("a.json") for s in cuts[-1][2]}
    assert b"" in final and NEW[:BLOCK] in final and NEW in final


def test_without_dir_fsync_the_rename_can_be_undone_after_return(tmp_path):
    cuts = _cut_states(tmp_path, lambda p: _skipping(p, "dirfsync"))
    assert {s.files.get("a.json") for s in cuts[-1][2]} == {OLD, NEW}


def test_unsynced_renames_survive_only_in_order(tmp_path):
    (tmp_path / "x").write_bytes(b"x")
    snapshot = snapshot_dir(str(tmp_path))
    with FsShim(tmp_path) as shim:
        import os

        os.rename(str(tmp_path / "x"), str(tmp_path / "y"))
        os.rename(str(tmp_path / "y"), str(tmp_path / "z"))
    model = DiskModel(str(tmp_path), *snapshot)
    for call in shim.calls:
        model.apply(call)
    names = sorted(tuple(sorted(s.files)) for s in model.crash_states(random.Random(0)))
    assert names == [("x",), ("y",), ("z",)]  # never two names, never none


def test_the_enumeration_is_bounded(tmp_path):
    def many(p):
        for i in range(8):  # eight unsynced files of two sectors each: 4**8 combinations
            with open(f"{p}.{i}", "wb"):
                pass
        import os

        for i in range(8):
            fd = os.open(f"{p}.{i}", os.O_WRONLY)
            os.write(fd, NEW)
            os.close(fd)

    cuts = _cut_states(tmp_path, many)
    assert all(len(states) <= 64 * 2 for _, _, states in cuts)
    assert len(cuts[-1][2]) > 8


def test_materialise_round_trips_a_snapshot(tmp_path):
    (tmp_path / "src" / "state").mkdir(parents=True)
    (tmp_path / "src" / "state" / "p.json").write_bytes(b"{}")
    (tmp_path / "src" / "t.json").write_bytes(b"[]")
    files, dirs = snapshot_dir(str(tmp_path / "src"))
    materialise(files, dirs, str(tmp_path / "dst"))
    assert snapshot_dir(str(tmp_path / "dst")) == (files, dirs)


def _run(tmp_path, target: str, seed: int = 7):
    from tradestore_chaos.scenarios import power_loss

    ctx = ScenarioContext(target=target, seed=seed, quick=True, duration=None, writers=1, workdir=tmp_path)
    return power_loss.run(ctx)


def test_power_loss_passes_on_our_store(tmp_path):
    result = _run(tmp_path, "tradestore")
    assert result.violations == [], f"seed {result.seed}: {result.violations}"
    assert result.states_checked > 100 and result.crash_points > 50


SEEDS = [7, pytest.param(8, marks=pytest.mark.slow), pytest.param(9, marks=pytest.mark.slow)]


@pytest.mark.parametrize("seed", SEEDS)
def test_power_loss_catches_a_store_without_file_fsync(tmp_path, seed):
    result = _run(tmp_path, "unsafe-no-fsync", seed)
    props = {v.property: v.detail for v in result.violations}
    assert "log-parses" in props, f"seed {seed}: not caught: {result.violations}"
    # names the trade its first (acknowledged) operation wrote, which is now unreadable
    assert "acknowledged trades unreadable: T00" in props["log-parses"]


@pytest.mark.parametrize("seed", SEEDS)
def test_power_loss_catches_a_store_without_directory_fsync(tmp_path, seed):
    result = _run(tmp_path, "unsafe-no-dir-fsync", seed)
    props = {v.property: v.detail for v in result.violations}
    assert "ack-durable" in props, f"seed {seed}: not caught: {result.violations}"
    assert "lost T00" in props["ack-durable"]


def test_workloads_always_start_with_a_log_write():
    for seed in range(50):
        workloads = fw.make_workloads(seed, (1, 2, 3), reconcile=True)
        assert workloads[0] == [fw.FRESH, ("open", fw.NEW_SYMBOLS[-1])]  # the very first write
        for ops in workloads[1:]:
            assert ops[0][0] in ("open", "partial", "update", "close")


def test_sync_dir_makes_a_directory_hold_exactly_the_state(tmp_path):
    from tradestore_harness.powerloss import sync_dir

    sync_dir({"a": b"1", "state/b": b"2"}, ("", "state"), str(tmp_path))
    (tmp_path / "stray.tmp").write_bytes(b"x")
    (tmp_path / "a").write_bytes(b"changed")
    sync_dir({"a": b"1", "state/c": b"3"}, ("", "state"), str(tmp_path))
    assert snapshot_dir(str(tmp_path)) == ({"a": b"1", "state/c": b"3"}, ("", "state"))


def test_findings_group_by_property_and_put_clear_examples_first():
    findings = fw.Findings(examples=2)
    for i in range(4):
        findings.add("ack-durable", f"case {i}")
    findings.add("ack-durable", "names T003", first=True)
    findings.add("log-parses", "torn")
    (prop, detail), (prop2, detail2) = findings.as_list()
    assert prop == "ack-durable" and detail.startswith("5 case(s): names T003; case 0 (and 3 more)")
    assert (prop2, detail2) == ("log-parses", "1 case(s): torn")


def _dies(report):
    import os

    os._exit(9)


def test_a_worker_that_dies_is_reported_not_waited_for():
    with pytest.raises(RuntimeError, match="exit code 9"):
        fw.in_worker(_dies, (), lambda _m: None)


def test_a_rename_between_two_links_of_one_file_changes_nothing(tmp_path):
    import os

    (tmp_path / "log").write_bytes(b"v1")
    os.link(tmp_path / "log", tmp_path / "bak")
    snapshot = snapshot_dir(str(tmp_path))
    with FsShim(tmp_path) as shim:
        os.link(str(tmp_path / "log"), str(tmp_path / "t"))
        os.replace(str(tmp_path / "t"), str(tmp_path / "bak"))  # a no-op for the kernel too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bak", "log", "t"]
    from tradestore_harness.powerloss import hard_links

    model = DiskModel(str(tmp_path), *snapshot, links=(("bak", "log"),))
    assert hard_links(str(tmp_path)) == (("bak", "log", "t"),)
    model.apply(shim.calls[0])
    model.apply(shim.calls[1])
    assert sorted(model.current()) == ["bak", "log", "t"]


def _in_place_store(opener):
    """A store that rewrites its log in place through ``opener(path, "wb")``, never fsynced."""
    from tradestore import TradeStore

    class InPlace(TradeStore):
        def _write_log(self, data: bytes):
            with opener(self.trade_log, "wb") as f:
                f.write(data)
            return os.stat(self.trade_log)

    return lambda trade_log, lock_file=None, **limits: InPlace(trade_log, lock_file, **limits)


# The builtin open(): seen by the layer, so judged (and caught: nothing is fsynced).
BuiltinOpenStore = _in_place_store(lambda path, mode: open(path, mode))
# The C FileIO class, taken before any layer is installed, as a C extension writes: not seen.
InvisibleStore = _in_place_store(io.FileIO)


def test_a_store_writing_with_the_builtin_open_is_seen_and_judged(tmp_path):
    from tradestore_chaos.scenarios import power_loss

    report = fw.in_worker(power_loss.power_worker,
                          ("tests.test_power_loss:BuiltinOpenStore", str(tmp_path), [[("open", "XRP")]], 1, 12),
                          lambda _m: None)
    assert report["not_applicable"] is None and report["states_checked"] > 0
    props = dict(report["violations"])
    assert "log-parses" in props and "acknowledged trades unreadable: T001 ETH CLOSED" in props["log-parses"]


@pytest.mark.parametrize("module", ["crash_points", "io_errors", "power_loss"])
def test_a_store_writing_below_the_layer_is_not_applicable_not_failed(tmp_path, module):
    import importlib

    scenario = importlib.import_module(f"tradestore_chaos.scenarios.{module}")
    ctx = ScenarioContext(target="tests.test_power_loss:InvisibleStore", seed=1, quick=True, duration=None,
                          writers=1, workdir=tmp_path)
    result = scenario.run(ctx)
    assert result.violations == [] and result.passed
    assert result.not_applicable.startswith("the store changed trades.json through something")
    assert result.notes[-1].startswith("NOT APPLICABLE: ")


def _write_new(path: str, *, retry_same_file: bool) -> None:
    """Write NEW into a temp file, rename it over ``path``, fsync the directory. When the file's
    fsync fails: fsync it again (``retry_same_file``) or start over with a new temp file."""
    import errno

    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, NEW)
    try:
        os.fsync(fd)
    except OSError as exc:
        assert exc.errno == errno.EIO
        if retry_same_file:
            os.fsync(fd)  # "succeeds": the pages the failure dropped are clean and never written
        else:
            os.close(fd)
            os.unlink(tmp)
            return _write_new(path, retry_same_file=False)
    os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(dfd)
    os.close(dfd)


@pytest.mark.parametrize("retry_same_file", [True, False])
def test_pages_dirty_when_an_fsync_failed_are_never_durable_but_a_new_file_is(tmp_path, retry_same_file):
    import errno

    from tradestore_harness.fsfaults import Fault

    (tmp_path / "a.json").write_bytes(OLD)
    snapshot = snapshot_dir(str(tmp_path))
    with FsShim(tmp_path) as probe:  # where the first fsync falls
        _write_new(str(tmp_path / "a.json"), retry_same_file=retry_same_file)
    first_fsync = next(c.index for c in probe.calls if c.kind == "fsync")
    materialise(*snapshot, str(tmp_path / "again"))
    (tmp_path / "again" / "a.json").write_bytes(OLD)
    with FsShim(tmp_path / "again", fault=Fault(first_fsync, "error", errno.EIO), real_sync=False) as shim:
        _write_new(str(tmp_path / "again" / "a.json"), retry_same_file=retry_same_file)
    model = DiskModel(str(tmp_path / "again"), *snapshot)
    for call in shim.calls:
        model.apply(call)
    final = {s.files.get("a.json") for s in model.crash_states(random.Random(0))}
    if retry_same_file:
        # the retried fsync wrote nothing: the file's page never reached the disk (its size did)
        assert b"\0" * len(NEW) in final and NEW in final
    else:
        assert final == {NEW}  # the data went to the disk through a new file


def test_a_page_written_again_after_a_failed_fsync_is_durable_at_the_next_one(tmp_path):
    # An append-only file: a record whose fsync failed is cut off and the next record written
    # over it; that page is dirty again, so the next fsync writes it whole. A page dirty at the
    # failure and never written since stays lost.
    import errno

    from tradestore_harness.fsfaults import Fault

    def appends(path):
        fd = os.open(path, os.O_WRONLY)
        os.pwrite(fd, b"A" * 5000, len(OLD))  # two pages: the one after OLD's end and the next
        try:
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, len(OLD))
        os.pwrite(fd, b"B" * 10, len(OLD))  # into the first page again
        os.fsync(fd)
        os.close(fd)

    (tmp_path / "a.json").write_bytes(OLD)
    snapshot = snapshot_dir(str(tmp_path))
    with FsShim(tmp_path, fault=Fault(2, "error", errno.EIO), real_sync=False) as shim:
        appends(str(tmp_path / "a.json"))
    assert [c.kind for c in shim.calls][:3] == ["open", "pwrite", "fsync"] and shim.calls[2].injected == "error"
    model = DiskModel(str(tmp_path), *snapshot)
    for call in shim.calls:
        model.apply(call)
    assert {s.files["a.json"] for s in model.crash_states(random.Random(0))} == {OLD + b"B" * 10}
