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


# -- every Python route to a file is one os call the shim sees ---------------------------------


def _writes(shim: FsShim) -> bytes:
    return b"".join(c.data for c in shim.calls if c.writes)


def test_fdopen_tempfile_pathlib_and_shutil_writes_are_seen_with_their_bytes(tmp_path):
    import pathlib
    import shutil
    import tempfile

    with FsShim(tmp_path) as shim:
        fd, name = tempfile.mkstemp(dir=tmp_path)
        with os.fdopen(fd, "w") as f:
            f.write("fdopen")
            f.flush()
            os.fsync(f.fileno())
        with tempfile.NamedTemporaryFile("wb", dir=tmp_path, delete=False) as f:
            f.write(b"named")
        pathlib.Path(tmp_path, "p.txt").write_text("pathlib")
        shutil.copyfile(name, tmp_path / "copy")  # Linux: os.sendfile
        with open(tmp_path / "log", "a") as f:
            f.write("append")
    kinds = [c.kind for c in shim.calls]
    assert kinds[:4] == ["open", "write", "fsync", "close"] and shim.calls[1].data == b"fdopen"
    assert _writes(shim) == b"fdopen" + b"named" + b"pathlib" + b"fdopen" + b"append"
    assert (tmp_path / "copy").read_bytes() == b"fdopen"


def test_a_write_to_an_append_mode_file_records_where_it_landed(tmp_path):
    (tmp_path / "log").write_bytes(b"0123")
    with FsShim(tmp_path) as shim:
        fd = os.open(tmp_path / "log", os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"45")
        os.close(fd)
    assert (shim.calls[1].offset, shim.calls[1].data) == (4, b"45")


def test_writev_copy_file_range_and_truncate_are_seen(tmp_path):
    (tmp_path / "src").write_bytes(b"abcdef")
    with FsShim(tmp_path) as shim:
        fd = os.open(tmp_path / "dst", os.O_CREAT | os.O_RDWR)
        os.writev(fd, [b"12", b"34"])
        src = os.open(tmp_path / "src", os.O_RDONLY)
        os.copy_file_range(src, fd, 3, 1, 4)
        os.close(src)
        os.close(fd)
        os.truncate(tmp_path / "dst", 6)
    by_kind = {c.kind: c for c in shim.calls}
    assert (by_kind["writev"].data, by_kind["writev"].offset) == (b"1234", 0)
    assert (by_kind["copy_file_range"].data, by_kind["copy_file_range"].offset) == (b"bcd", 4)
    assert by_kind["truncate"].offset == 6 and (tmp_path / "dst").read_bytes() == b"1234bc"


def test_file_objects_are_left_to_the_c_implementation_when_asked(tmp_path):
    with FsShim(tmp_path, file_objects=False) as shim:
        (tmp_path / "x").write_bytes(b"x")
    assert shim.count == 0


# -- the new fault actions -----------------------------------------------------------------------


def test_a_short_write_lands_half_and_says_so_and_a_correct_loop_writes_the_rest(tmp_path):
    target = tmp_path / "a.json"
    with FsShim(tmp_path, faults=[Fault(None, "short", kind="write")]) as shim:
        atomic.write_atomic(str(target), b"0123456789")
    writes = [(c.data, c.offset, c.injected) for c in shim.calls if c.kind == "write"]
    assert writes[:2] == [(b"01234", 0, "short"), (b"56", 5, "short")]  # every write was cut short
    assert target.read_bytes() == b"0123456789"


def test_eintr_raises_interrupted_error_before_anything_lands(tmp_path):
    with FsShim(tmp_path, fault=Fault(1, "eintr")) as shim:
        fd = os.open(tmp_path / "f", os.O_CREAT | os.O_WRONLY)
        with pytest.raises(InterruptedError):
            os.write(fd, b"data")
        os.write(fd, b"data")  # once: the retry works
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"data"
    assert [(c.kind, c.error, c.injected) for c in shim.calls[1:3]] == [
        ("write", errno.EINTR, "eintr"), ("write", None, None)]


def test_skipped_calls_never_reach_an_outer_shim(tmp_path):
    from tradestore_harness.fsfaults import skipping

    with FsShim(tmp_path) as outer:
        with skipping(str(tmp_path), "fsync"):
            atomic.write_atomic(str(tmp_path / "a"), b"1")
    assert [c.kind for c in outer.calls] == ["open", "write", "close", "replace", "open", "dirfsync", "close"]
    assert os.fsync is not None and outer.original == {}


def test_a_hook_runs_right_before_its_call_with_the_shim_paused(tmp_path):
    seen = []

    def hook(call):
        seen.append(call.kind)
        (tmp_path / "during").write_bytes(b"x")  # paused: not counted, not faulted

    with FsShim(tmp_path, fault=Fault(None, "hook", kind="replace", hook=hook)) as shim:
        atomic.write_atomic(str(tmp_path / "a"), b"1")
    assert seen == ["replace"] and "replace" in [c.kind for c in shim.calls]
    assert not [c for c in shim.calls if c.path and c.path.endswith("during")]


def test_an_in_process_crash_kills_every_later_call_but_close(tmp_path):
    from tradestore_harness.fsfaults import SimulatedCrash

    target = tmp_path / "a"
    target.write_bytes(b"old")
    with FsShim(tmp_path, fault=Fault(2, "crash", in_process=True)) as shim:
        with pytest.raises(SimulatedCrash):
            atomic.write_atomic(str(target), b"new")  # its clean-up (unlink) dies too
        assert shim.dead
    assert target.read_bytes() == b"old"
    assert len([p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]) == 1  # the dead writer's temp


def test_fault_validation_names_what_is_missing():
    with pytest.raises(ValueError, match="hook=callable"):
        Fault(0, "hook")
    with pytest.raises(ValueError, match="call index"):
        Fault(None, "skip")
    with pytest.raises(ValueError, match="kind='nope'"):
        Fault(None, "skip", kind="nope")


def test_observers_see_the_calls_they_name_counted_or_not(tmp_path):
    import fcntl

    from tradestore_harness.fsfaults import Observer

    class Seen(Observer):
        functions = ("flock", "replace")

        def __init__(self):
            self.names = []

        def around(self, name, proceed, args, kwargs):
            self.names.append(name)
            return proceed(*args, **kwargs)

    seen = Seen()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with FsShim(tmp_path / "root", observers=[seen]):
        (elsewhere / "a").write_bytes(b"1")
        os.replace(elsewhere / "a", elsewhere / "b")
        with open(elsewhere / "lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            fcntl.flock(f, fcntl.LOCK_UN)
    assert seen.names == ["replace", "flock", "flock"]
    assert fcntl.flock.__module__ is None or fcntl.flock.__name__ == "flock"  # restored to the builtin


def test_the_new_calls_pass_through_outside_the_root_and_truncate_takes_a_descriptor(tmp_path):
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    (outside / "src").write_bytes(b"abc")
    with FsShim(inside) as shim:
        with FsShim(inside, recording=False):  # nested: routed once, restored once
            fd = os.open(outside / "dst", os.O_CREAT | os.O_RDWR)
            src = os.open(outside / "src", os.O_RDONLY)
            os.writev(fd, [b"12"])
            os.sendfile(fd, src, 0, 3)
            os.copy_file_range(src, fd, 1, 0)
            os.truncate(fd, 4)
            os.truncate(outside / "dst", 5)
            os.close(src)
            os.close(fd)
        inner_fd = os.open(inside / "f", os.O_CREAT | os.O_RDWR)
        os.truncate(inner_fd, 0)  # a descriptor: recorded as ftruncate
        os.close(inner_fd)
    assert shim.count == 3 and [c.kind for c in shim.calls] == ["open", "ftruncate", "close"]
    assert (outside / "dst").read_bytes() == b"12ab\0"


def test_a_hooked_or_skipped_write_and_the_calls_of_a_dead_writer(tmp_path):
    from tradestore_harness.fsfaults import SimulatedCrash

    seen = []
    faults = [Fault(1, "hook", hook=lambda call: seen.append(call.kind)), Fault(2, "skip")]
    with FsShim(tmp_path, faults=faults) as shim:
        fd = os.open(tmp_path / "f", os.O_CREAT | os.O_WRONLY)
        assert os.write(fd, b"ab") == 2  # hooked, then written
        assert os.write(fd, b"cd") == 2  # skipped: reported written, nothing lands
        os.close(fd)
    assert seen == ["write"] and (tmp_path / "f").read_bytes() == b"ab"
    assert shim.calls[2].injected == "skip"
    with FsShim(tmp_path, fault=Fault(2, "crash", in_process=True)) as shim:
        fd = os.open(tmp_path / "g", os.O_CREAT | os.O_WRONLY)
        other = os.open(tmp_path / "h", os.O_CREAT | os.O_WRONLY)
        with pytest.raises(SimulatedCrash):
            os.close(fd)  # the kernel still closes it
        with pytest.raises(SimulatedCrash):
            os.write(other, b"x")  # a dead writer writes nothing
        os.close(other)  # but its descriptors are closed
    with pytest.raises(OSError):
        os.fstat(fd)
    assert (tmp_path / "h").read_bytes() == b""


def test_without_real_sync_fsyncs_are_numbered_and_recorded_but_spare_the_disk(tmp_path, monkeypatch):
    flushed = []
    monkeypatch.setattr(os, "fsync", flushed.append)  # what the shim would call to flush
    with FsShim(tmp_path, real_sync=False) as shim:
        atomic.write_atomic(str(tmp_path / "a"), b"1")
    kinds = [c.kind for c in shim.calls]
    assert "fsync" in kinds and "dirfsync" in kinds and flushed == []


def test_the_harness_s_own_reads_while_paused_use_the_c_file_objects(tmp_path):
    (tmp_path / "x").write_bytes(b"x")
    with FsShim(tmp_path) as shim:
        routed = type(open(tmp_path / "x", "rb")).__module__
        with shim.paused():
            with open(tmp_path / "x", "rb") as f:
                during = type(f).__module__
        with open(tmp_path / "x", "rb") as f:
            after = type(f).__module__
    assert (routed, during, after) == ("_pyio", "_io", "_pyio")


def test_a_short_sendfile_moves_half_of_what_the_copy_would_move(tmp_path):
    import shutil

    (tmp_path / "src").write_bytes(b"0123456789")
    with FsShim(tmp_path, fault=Fault(None, "short", kind="sendfile")) as shim:
        shutil.copyfile(tmp_path / "src", tmp_path / "dst")  # shutil loops until the copy is whole
    sends = [(c.data, c.offset) for c in shim.calls if c.kind == "sendfile" and c.data]
    assert sends[:2] == [(b"01234", 0), (b"56", 5)]
    assert (tmp_path / "dst").read_bytes() == b"0123456789"


def test_calls_relative_to_a_directory_descriptor_are_recorded_with_their_real_paths(tmp_path):
    from tradestore_harness.fsfaults import resolve

    (tmp_path / "sub").mkdir()
    folder = os.open(tmp_path / "sub", os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert resolve("a.json", folder) == str(tmp_path / "sub" / "a.json")
        assert resolve(str(tmp_path / "b"), folder) == str(tmp_path / "b")  # absolute: dir_fd unused
        assert resolve("c") == os.path.abspath("c")
        with FsShim(tmp_path) as shim:
            fd = os.open("t.tmp", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=folder)
            os.write(fd, b"x")
            os.fsync(fd)
            os.close(fd)
            os.replace("t.tmp", "a.json", src_dir_fd=folder, dst_dir_fd=folder)
            os.mkdir("d", dir_fd=folder)
            os.unlink("a.json", dir_fd=folder)
        sub = str(tmp_path / "sub")
        assert [(c.kind, c.path, c.dst) for c in shim.calls] == [
            ("open", f"{sub}/t.tmp", None), ("write", f"{sub}/t.tmp", None), ("fsync", f"{sub}/t.tmp", None),
            ("close", f"{sub}/t.tmp", None), ("replace", f"{sub}/t.tmp", f"{sub}/a.json"),
            ("mkdir", f"{sub}/d", None), ("unlink", f"{sub}/a.json", None)]
        assert sorted(os.listdir(tmp_path / "sub")) == ["d"]
    finally:
        os.close(folder)
