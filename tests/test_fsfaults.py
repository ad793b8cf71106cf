"""The os-call shim: it sees the store's calls in order, and its faults act exactly where armed."""

from __future__ import annotations

import errno
import os

import multiprocess
import pytest

from tradestore_harness.fsfaults import CRASH_EXIT, Fault, FsShim
from tradestore import atomic


def _kinds(shim: FsShim) -> list[str]:
    return [c.kind for c in shim.calls]


def test_records_the_atomic_write_protocol_in_order(tmp_path):
    target = tmp_path / "a.json"
    target.write_bytes(b"old")
    with FsShim(tmp_path) as shim:
        atomic.write_atomic(str(target), b"new", keep_backup=True)
    assert _kinds(shim) == ["open", "fchmod", "write", "fsync", "close", "link", "replace", "replace",
                            "open", "dirfsync", "close"]
    assert [c.index for c in shim.calls] == list(range(11))
    write = shim.calls[2]
    assert (write.data, write.offset) == (b"new", 0)
    assert shim.calls[0].created and not shim.calls[8].created and shim.calls[8].is_dir
    assert shim.calls[7].dst == str(target)


def test_calls_outside_the_root_are_neither_counted_nor_changed(tmp_path):
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    with FsShim(inside, fault=Fault(0, "error", errno.EIO)) as shim:
        atomic.write_atomic(str(outside / "x.json"), b"{}")
        fd = os.open(str(outside / "y"), os.O_CREAT | os.O_WRONLY)
        os.write(fd, b"y")
        os.close(fd)
    assert shim.count == 0 and shim.calls == []
    assert (outside / "x.json").read_bytes() == b"{}"


def test_paused_calls_are_not_counted(tmp_path):
    with FsShim(tmp_path) as shim:
        with shim.paused():
            atomic.write_atomic(str(tmp_path / "a"), b"1")
        atomic.write_atomic(str(tmp_path / "b"), b"2")
    assert shim.count == 8  # only the second write: open, write, fsync, close, replace, open, dirfsync, close


def test_uninstall_restores_the_os_module(tmp_path):
    real = os.write
    with FsShim(tmp_path):
        assert os.write is not real
    assert os.write is real


def test_error_once_fails_exactly_one_call(tmp_path):
    # call 2 is the fsync of the temp file: it fails, the write is abandoned, the target untouched
    target = tmp_path / "a.json"
    target.write_bytes(b"old")
    with FsShim(tmp_path, fault=Fault(3, "error", errno.EIO)) as shim:
        with pytest.raises(OSError) as info:
            atomic.write_atomic(str(target), b"new")
        assert info.value.errno == errno.EIO
        assert shim.calls[3].kind == "fsync" and shim.calls[3].error == errno.EIO
        atomic.write_atomic(str(target), b"newer")  # the fault was one-shot
    assert target.read_bytes() == b"newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]  # the failed temp was removed


def test_persistent_error_keeps_failing_that_kind_only(tmp_path):
    target = tmp_path / "a.json"
    with FsShim(tmp_path, fault=Fault(1, "error", errno.ENOSPC, persistent=True)) as shim:
        for _ in range(2):
            with pytest.raises(OSError) as info:
                atomic.write_atomic(str(target), b"data")
            assert info.value.errno == errno.ENOSPC
        failed = [c.kind for c in shim.calls if c.error]
        assert failed == ["write", "write"]
        shim.clear_fault()
        atomic.write_atomic(str(target), b"data")
    assert target.read_bytes() == b"data"


def test_a_failing_close_still_releases_the_descriptor(tmp_path):
    with FsShim(tmp_path, fault=Fault(1, "error", errno.EIO)):
        fd = os.open(str(tmp_path / "f"), os.O_CREAT | os.O_WRONLY)
        with pytest.raises(OSError):
            os.close(fd)
    with pytest.raises(OSError) as info:
        os.fstat(fd)
    assert info.value.errno == errno.EBADF


def test_fault_validation():
    with pytest.raises(ValueError):
        Fault(0, "explode")
    with pytest.raises(ValueError):
        Fault(0, "error")


def _crashing_write(root: str, action: str, index: int) -> None:
    """Child: write old -> new atomically under a fault; never returns normally if it crashes."""
    shim = FsShim(root, fault=Fault(index, action))
    shim.install()
    atomic.write_atomic(os.path.join(root, "a.json"), b"x" * 100)
    os._exit(0)


def _run_child(root, action, index) -> int:
    ctx = multiprocess.get_context("spawn")
    proc = ctx.Process(target=_crashing_write, args=(root, action, index))
    proc.start()
    proc.join(60)
    return proc.exitcode


@pytest.mark.parametrize(
    "action,index,expect",
    [
        # calls: open 0, fchmod 1, write 2, fsync 3, close 4, replace 5, open dir 6, dirfsync 7
        ("crash", 5, "old"),  # before the replace: the old file survives
        ("crash-after", 5, "new"),  # after the replace, before the directory fsync
        ("torn", 2, "old"),  # half the temp file written: the target is untouched
    ],
)
def test_crashes_exit_at_the_armed_call(tmp_path, action, index, expect):
    target = tmp_path / "a.json"
    target.write_bytes(b"old")
    assert _run_child(str(tmp_path), action, index) == CRASH_EXIT
    assert target.read_bytes() == (b"old" if expect == "old" else b"x" * 100)
    temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    if action == "torn":
        assert [p.stat().st_size for p in temps] == [50]  # exactly half of the write landed
    if action == "crash":
        assert len(temps) == 1  # os._exit ran no cleanup: the stray temp is left for the sweep
