"""Edges of the durability machinery: the shim's less used calls, the disk model's replay of
every call kind (checked against the real file system), and the workload helpers' failures."""

from __future__ import annotations

import errno
import json
import os
import random

import pytest

from tradestore_harness import fsworkload as fw
from tradestore_harness.fsfaults import CRASH_EXIT, Fault, FsCall, FsShim
from tradestore_harness.powerloss import DiskModel, ModelError, snapshot_dir
from tests.test_fsfaults import _run_child
from tradestore import TradeStore

# -- the shim ---------------------------------------------------------------------------------------


def test_installing_twice_still_uninstalls_to_the_real_functions(tmp_path):
    real_write, real_open = os.write, os.open
    shim = FsShim(tmp_path)
    with shim:
        assert shim.install() is shim
        assert shim.original["write"] is real_write  # not the shim's own wrapper
    assert (os.write, os.open) == (real_write, real_open)


def test_reset_can_stop_recording_but_keeps_counting(tmp_path):
    with FsShim(tmp_path) as shim:
        os.mkdir(tmp_path / "a")
        shim.reset(recording=False)
        os.mkdir(tmp_path / "b")
        os.mkdir(tmp_path / "c")
    assert (shim.count, shim.calls, shim.recording) == (2, [], False)


def test_a_failing_close_of_a_descriptor_that_is_already_gone_still_raises_the_injected_error(tmp_path):
    with FsShim(tmp_path, fault=Fault(1, "error", errno.ENOSPC)) as shim:
        fd = os.open(str(tmp_path / "f"), os.O_CREAT | os.O_WRONLY)
        shim.original["close"](fd)  # behind the shim's back: the real close will fail with EBADF
        with pytest.raises(OSError) as info:
            os.close(fd)
    assert info.value.errno == errno.ENOSPC  # the injected error, not the EBADF underneath
    assert [(c.kind, c.error, c.injected) for c in shim.calls] == [("open", None, None),
                                                                  ("close", errno.ENOSPC, "error")]


def test_a_write_that_really_fails_is_recorded_with_its_errno(tmp_path):
    (tmp_path / "r").write_bytes(b"read only")
    with FsShim(tmp_path) as shim:
        fd = os.open(str(tmp_path / "r"), os.O_RDONLY)
        try:
            with pytest.raises(OSError) as info:
                os.write(fd, b"x")
        finally:
            os.close(fd)
    assert info.value.errno == errno.EBADF
    assert (shim.calls[1].kind, shim.calls[1].error, shim.calls[1].injected) == ("write", errno.EBADF, None)


def test_paths_that_are_not_paths_pass_through_uncounted(tmp_path):
    with FsShim(tmp_path) as shim:
        with pytest.raises(TypeError):
            os.unlink(3.5)  # the real unlink's own error, not the shim's
    assert shim.count == 0


def test_fdatasync_ftruncate_fchmod_and_mkdir_are_counted_inside_and_passed_through_outside(tmp_path):
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()

    def exercise(d):
        fd = os.open(str(d / "f"), os.O_CREAT | os.O_RDWR)
        os.write(fd, b"abcdef")
        os.ftruncate(fd, 2)
        os.fchmod(fd, 0o600)
        os.fdatasync(fd)
        os.close(fd)
        dfd = os.open(str(d), os.O_RDONLY)
        os.fdatasync(dfd)
        os.close(dfd)
        os.mkdir(d / "sub")
        os.unlink(d / "f")

    with FsShim(inside) as shim:
        exercise(outside)
        assert shim.count == 0
        exercise(inside)
    assert [c.kind for c in shim.calls] == ["open", "write", "ftruncate", "fchmod", "fdatasync", "close",
                                            "open", "dirfsync", "close", "mkdir", "unlink"]
    assert shim.calls[2].offset == 2  # ftruncate records the new length
    assert sorted(p.name for p in outside.iterdir()) == ["sub"] == sorted(p.name for p in inside.iterdir())


def test_file_objects_are_seen_through_the_os_calls_they_make(tmp_path):
    with FsShim(tmp_path) as shim:
        with open(tmp_path / "x", "wb") as f:  # the builtin open(), routed through _pyio
            f.write(b"x")
            f.flush()
            os.fsync(f)
    assert [c.kind for c in shim.calls] == ["open", "write", "fsync", "close"]
    assert shim.calls[1].data == b"x"
    assert open is not None and type(open(tmp_path / "x", "rb")).__module__ != "_pyio"  # restored


def test_crash_after_a_write_leaves_the_whole_write_and_nothing_later(tmp_path):
    target = tmp_path / "a.json"
    target.write_bytes(b"old")
    assert _run_child(str(tmp_path), "crash-after", 2) == CRASH_EXIT  # call 2: the temp file's write
    assert target.read_bytes() == b"old"
    temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert [p.read_bytes() for p in temps] == [b"x" * 100]


# -- the disk model -----------------------------------------------------------------------------------


def test_the_model_replays_every_call_kind_like_the_real_file_system(tmp_path):
    root = tmp_path / "r"
    (root / "sub").mkdir(parents=True)
    (root / "a").write_bytes(b"hello world")
    (root / "gone").write_bytes(b"bye")
    snapshot = snapshot_dir(str(root))
    with FsShim(root) as shim:
        fd = os.open(str(root / "a"), os.O_RDWR | os.O_TRUNC)  # an existing file, truncated
        os.pwrite(fd, b"xy", 4)  # past the end: a hole of zeros before it
        os.ftruncate(fd, 8)  # grows with zeros
        os.fchmod(fd, 0o600)  # modes are not modelled
        os.fdatasync(fd)
        os.close(fd)
        os.mkdir(root / "new")
        fd = os.open(str(root / "new" / "b"), os.O_CREAT | os.O_WRONLY)
        os.write(fd, b"b")
        os.close(fd)
        os.rename(root / "new" / "b", root / "sub" / "b")  # across directories
        os.unlink(root / "gone")
    model = DiskModel(str(root), *snapshot)
    for call in shim.calls:
        model.apply(call)
    assert model.applied == len(shim.calls)
    assert model.current() == snapshot_dir(str(root))[0]
    assert model.current()["a"] == b"\0\0\0\0xy\0\0"
    # unsynced: the creation and removal of b in new/, its arrival in sub/, the unlink in the
    # root; and b's data (a's was fdatasync-ed)
    assert model.unsynced() == (4, 1)
    lost = {tuple(sorted(s.files)) for s in model.crash_states(random.Random(1))}
    assert ("a", "gone") in lost  # a power cut may undo the unlink and drop the move of b
    assert ("a", "sub/b") in lost


def test_a_shrinking_truncate_is_modelled(tmp_path):
    (tmp_path / "a").write_bytes(b"abcdef")
    snapshot = snapshot_dir(str(tmp_path))
    with FsShim(tmp_path) as shim:
        fd = os.open(str(tmp_path / "a"), os.O_RDWR)
        os.ftruncate(fd, 2)
        os.close(fd)
    model = DiskModel(str(tmp_path), *snapshot)
    for call in shim.calls:
        model.apply(call)
    assert model.current() == {"a": b"ab"} and model.unsynced() == (0, 1)


def test_calls_the_model_cannot_place_are_model_errors(tmp_path):
    root = str(tmp_path)
    model = DiskModel(root, {"a": b"1"})
    with pytest.raises(ModelError, match="is outside"):
        model.apply(FsCall(0, "unlink", os.path.join(os.path.dirname(root), "elsewhere")))
    with pytest.raises(ModelError, match="directory of .* is unknown to the model"):
        model.apply(FsCall(1, "unlink", os.path.join(root, "nodir", "x")))
    with pytest.raises(ModelError, match="descriptor 999 is not an open file"):
        model.apply(FsCall(2, "write", os.path.join(root, "a"), fd=999, offset=0, data=b"x"))
    with pytest.raises(ModelError, match="which the model does not have"):
        model.apply(FsCall(3, "rename", os.path.join(root, "nope"), dst=os.path.join(root, "a")))
    # a call that failed changes nothing, whatever it is
    model.apply(FsCall(4, "unlink", os.path.join(root, "a"), error=errno.EIO))
    model.apply(FsCall(5, "unlink", os.path.join(root, "a"), injected="error"))
    assert model.current() == {"a": b"1"} and model.unsynced() == (0, 0)


# -- workload helpers ---------------------------------------------------------------------------------


class RejectingStore(TradeStore):
    """Refuses every new trade, seed style (an error dict)."""

    def open_trade(self, *args, **kwargs):
        return {"error": "trading halted"}


class UnreadableStore(TradeStore):
    def get_all_trades(self):
        raise RuntimeError("checksum mismatch")

    def open_trade(self, *args, **kwargs):
        raise RuntimeError("checksum mismatch")


def test_a_baseline_the_target_refuses_is_a_setup_error(tmp_path):
    with pytest.raises(RuntimeError, match="baseline open ETH was rejected: trading halted"):
        fw.setup_baseline(RejectingStore, str(tmp_path), with_reconcile=False)


def test_run_op_names_each_kind_of_failure(tmp_path):
    log, lock, _ = fw.paths(str(tmp_path))
    ids = fw.base_ids()
    assert fw.run_op(TradeStore(log, lock), str(tmp_path), ("explode",), ids) == (
        "fail", "ValueError: unknown op ('explode',)")
    assert fw.run_op(TradeStore(log, lock), str(tmp_path), ("close", "new"), ids) == ("fail", "NoTarget: 'new'")
    assert fw.run_op(RejectingStore(log, lock), str(tmp_path), ("open", "XRP"), ids) == (
        "fail", "Rejected: trading halted")
    assert "new" not in ids
    outcome, value = fw.run_op(TradeStore(log, lock), str(tmp_path), ("open", "XRP"), ids)
    assert outcome == "ok" and ids["new"] == value["id"] == "T001"


@pytest.mark.parametrize("content,message", [
    (b'{"trades": [{"id": "T001", "pnl": NaN}], "next_id": 2}', "does not parse: NaN is not strict JSON"),
    (b'{"trades": {"T001": {}}, "next_id": 2}', "parses but has no list of trades"),
    (b'[1, 2]', "parses but has no list of trades"),
    (b'\xff\xfe', "(2 bytes) does not parse"),
])
def test_a_log_that_is_not_strict_json_with_a_list_of_trades_is_unreadable(tmp_path, content, message):
    (tmp_path / fw.LOG).write_bytes(content)
    with pytest.raises(fw.LogUnreadable, match=message.replace("(", r"\(").replace(")", r"\)")):
        fw.load_state(TradeStore, str(tmp_path))


def test_a_log_the_store_refuses_is_unreadable(tmp_path):
    (tmp_path / fw.LOG).write_bytes(json.dumps({"trades": [], "next_id": 1}).encode())
    with pytest.raises(fw.LogUnreadable, match="a fresh store cannot read trades.json: RuntimeError: checksum"):
        fw.load_state(UnreadableStore, str(tmp_path))


def test_probe_reports_why_the_next_open_failed(tmp_path):
    assert fw.probe(UnreadableStore, str(tmp_path)) == "RuntimeError: checksum mismatch"
    assert fw.probe(RejectingStore, str(tmp_path)) == "Rejected: trading halted"
    assert fw.probe(TradeStore, str(tmp_path)) is None
    assert [t["symbol"] for t in fw.load_state(TradeStore, str(tmp_path))] == [fw.PROBE[0]]


def _boom(report):
    report("progress", "about to fail")
    raise ValueError("boom in the worker")


def test_a_worker_that_raises_hands_back_its_traceback():
    seen = []
    with pytest.raises(RuntimeError) as info:
        fw.in_worker(_boom, (), seen.append, timeout=60)
    assert seen == ["about to fail"]
    assert str(info.value).startswith("worker _boom failed:\nTraceback")
    assert "ValueError: boom in the worker" in str(info.value)


def _share_raises(share):
    raise ValueError(f"boom {share}")


def _share_dies(share):
    os._exit(3)


def test_forked_map_hands_back_each_share_in_order_and_reports_a_failing_child():
    assert fw.forked_map(sum, [1, 2, 3, 4, 5], 2) == [1 + 3 + 5, 2 + 4]
    assert fw.forked_map(sum, [7], 2) == [7]  # an empty share forks no child
    with pytest.raises(RuntimeError, match=r"failed:(.|\n)*boom \[1\]"):
        fw.forked_map(_share_raises, [1], 2)
    with pytest.raises(RuntimeError, match=r"without a result \(exit code 3\)"):
        fw.forked_map(_share_dies, [1], 2)
