"""The one file-system interposition layer: see, record, crash and fail a process's file calls.

:class:`FsShim` replaces functions of the ``os`` module (and ``fcntl.flock``/``fcntl.lockf``)
*in the current process only*. Code calls them as ``os.open``, ``os.write``, ... so a wrapped
attribute is what it runs. Python file objects are seen too: while a shim with
``file_objects=True`` is installed, the builtin ``open()``, ``io.open`` (and so ``os.fdopen``,
``tempfile``'s file objects and ``pathlib.Path.open``/``write_text``/``write_bytes``) build
their files from the pure-Python ``_pyio`` implementation, whose every open, write, truncate
and close is an ``os`` call through the same wrappers. ``shutil``'s copies are seen through
``os.sendfile`` (or read and write calls when it falls back). Writes that reach the disk some
other way (``mmap``, a C extension such as ``sqlite3``, a ``FileIO`` built before the shim was
installed) are not seen; :func:`tradestore_harness.powerloss.unseen_changes` detects that from
the files themselves, and the scenarios then say the store cannot be judged this way.

Only calls that touch the shim's root directory are counted: a path under the root, or a
descriptor opened from such a path while the shim was installed. Everything else (pipes, the
interpreter's own files) passes through untouched and unnumbered, so call indices are the same
from run to run of the same work.

Guarantees:

- every counted call gets the next index (0, 1, 2, ...) and, when recording, an
  :class:`FsCall` saying what it did, including the bytes a write put where;
- a :class:`Fault` acts exactly at the call(s) it selects (one index, or every call of one
  kind): ``crash`` ends the process with :data:`CRASH_EXIT` before the call, ``crash-after``
  after it, ``torn`` writes the first half of a write and then ends it; ``error`` raises
  ``OSError(errno)`` instead of the call (once, or with ``persistent`` for that call and every
  later call of the same kind); ``short`` lets only the first half of a write land and returns
  that count, as a disk near full or a signal does; ``eintr`` raises ``InterruptedError``
  before a write lands anything; ``skip`` returns success without running the call (a
  negative control that "forgets" a step); ``hook`` calls ``Fault.hook(call)`` right before
  the call runs (e.g. another writer replaces the log at that moment);
- ``Fault.in_process`` makes a crash raise :class:`SimulatedCrash` instead of exiting; every
  later counted call of the dead writer raises it too, except ``close``, which the kernel does
  for a dead process anyway;
- crashes use ``os._exit``: no ``finally`` block, ``atexit`` hook or buffered output runs,
  which is what a kill looks like to the files, while coverage's ``_exit`` patch still saves
  its data;
- ``observers`` see every call of the functions they name, counted or not (see
  :class:`Observer`): the spy of :mod:`tradestore_harness.spy` is one.

Shims nest: one installed inside another wraps the outer one's wrappers, so a control that
skips its fsyncs under an inner shim is recorded by the outer one as never having fsynced.
Use it only in a process that the harness owns; it is not thread-aware.
"""

from __future__ import annotations

import builtins
import errno as errno_module
import fcntl
import io
import os
from dataclasses import dataclass, field, replace
from typing import Any, Callable

CRASH_EXIT = 77  # exit status of a process stopped by an injected crash

# The os functions a store uses to write and make durable. ``dirfsync`` is not a function:
# it is the kind given to an ``fsync`` of a descriptor opened on a directory.
WRITES = ("write", "pwrite", "writev", "sendfile", "copy_file_range")
WRAPPED = (
    "open",
    "write",
    "pwrite",
    "writev",
    "sendfile",
    "copy_file_range",
    "fsync",
    "fdatasync",
    "replace",
    "rename",
    "link",
    "unlink",
    "close",
    "fchmod",
    "ftruncate",
    "truncate",
    "mkdir",
)
LOCKS = ("flock", "lockf", "fcntl")  # fcntl functions: passed to observers, never counted
KINDS = WRAPPED + ("dirfsync",)
ACTIONS = ("crash", "crash-after", "torn", "error", "short", "eintr", "skip", "hook")


class SimulatedCrash(BaseException):
    """The writer "died" at this call (``Fault.in_process``): nothing of it runs any more."""


@dataclass(frozen=True)
class FsCall:
    """One counted file-system call, as it happened (or as it was attempted)."""

    index: int
    kind: str  # one of KINDS
    path: str | None  # absolute path; for descriptor calls, the path the descriptor was opened with
    dst: str | None = None  # replace/rename/link: the destination
    fd: int | None = None
    flags: int = 0  # open: the flags
    created: bool = False  # open: the call created a new file
    is_dir: bool = False  # open: the path is a directory
    offset: int | None = None  # writes: where the bytes landed; ftruncate/truncate: the new length
    data: bytes | None = None  # writes: the bytes that landed
    error: int | None = None  # errno when the call failed (really or by injection)
    injected: str | None = None  # the fault action applied at this call, if any

    def _with(self, **changes: object) -> "FsCall":
        return replace(self, **changes)

    @property
    def writes(self) -> bool:
        """A call that puts bytes into a file (write, pwrite, writev, sendfile, copy_file_range)."""
        return self.kind in WRITES

    @property
    def ran(self) -> bool:
        """The call reached the file system (it did not fail, and was not crashed before or skipped)."""
        return self.error is None and self.injected not in ("crash", "error", "skip", "eintr")

    def describe(self) -> str:
        """A short human description, e.g. ``fsync(.trades.json.1a2b.tmp)``."""
        name = os.path.basename(self.path) if self.path else "?"
        if self.dst is not None:
            return f"{self.kind}({name} -> {os.path.basename(self.dst)})"
        if self.writes and self.data is not None:
            return f"{self.kind}({name}, {len(self.data)} bytes @ {self.offset})"
        return f"{self.kind}({name})"


@dataclass(frozen=True)
class Fault:
    """What to do at call ``at`` (an index), or with ``at=None`` at every call of ``kind``.

    ``action`` is one of :data:`ACTIONS` (see the module docstring). ``kind`` with an index
    only restricts it (the fault acts if call ``at`` is of that kind).
    """

    at: int | None
    action: str
    errno: int = 0
    persistent: bool = False
    kind: str | None = None
    in_process: bool = False
    hook: Callable[[FsCall], None] | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action={self.action!r}: expected one of {', '.join(ACTIONS)}")
        if self.action == "error" and not self.errno:
            raise ValueError("an error fault needs an errno (e.g. errno.ENOSPC)")
        if self.action == "hook" and self.hook is None:
            raise ValueError("a hook fault needs hook=callable(call)")
        if self.at is None and self.kind is None:
            raise ValueError("a fault needs a call index (at=N) or a kind (kind='fsync'), or both")
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r}: expected one of {', '.join(KINDS)}")

    def selects(self, index: int, kind: str) -> bool:
        return (self.at is None or self.at == index) and (self.kind is None or self.kind == kind)


class Observer:
    """Sees calls of the functions in ``functions`` (os or fcntl names), counted or not.

    ``around(name, proceed, args, kwargs)`` must call ``proceed(*args, **kwargs)`` (or decide
    not to) and return its result; it may act before and after, and see exceptions.
    """

    functions: tuple[str, ...] = ()

    def around(self, name: str, proceed: Callable, args: tuple, kwargs: dict) -> Any:  # pragma: no cover
        return proceed(*args, **kwargs)


# -- file objects through _pyio ------------------------------------------------------------------

_routed = 0
_c_open = {"builtins": builtins.open, "io": io.open}


def _route_file_objects() -> None:
    """Make new Python file objects of this process pure Python (``_pyio``), so their I/O is
    ``os`` calls. Counted: nested shims route once and restore once."""
    global _routed
    import _pyio

    if _routed == 0:
        _c_open["builtins"], _c_open["io"] = builtins.open, io.open
        builtins.open = io.open = _pyio.open
        # ``isinstance(f, io.IOBase)`` and friends keep holding for the pure-Python objects
        for name in ("IOBase", "RawIOBase", "BufferedIOBase", "TextIOBase"):
            getattr(io, name).register(getattr(_pyio, name))
    _routed += 1


def _unroute_file_objects() -> None:
    global _routed
    _routed -= 1
    if _routed == 0:
        builtins.open, io.open = _c_open["builtins"], _c_open["io"]


def _suspend_routing(suspend: bool) -> None:
    """While a routing shim is paused: new file objects from C (``True``), or _pyio again."""
    import _pyio

    if _routed:
        builtins.open = io.open = (_c_open["io"] if suspend else _pyio.open)


@dataclass
class _Tracked:
    path: str
    is_dir: bool


@dataclass
class FsShim:
    """Wraps ``os`` functions while installed; counts, records and injects faults under ``root``.

    ``recording`` keeps an :class:`FsCall` per counted call in ``calls``; ``fault`` (one) and
    ``faults`` (more) are the armed faults. ``on_crash`` runs just before an injected crash
    exits (a worker uses it to flush what it must report); it must not touch the root.
    ``file_objects`` routes Python file objects through ``_pyio`` while installed (see module
    docstring); ``observers`` see the calls they name. ``real_sync=False`` keeps fsyncs from
    reaching the disk (they are numbered, recorded and faulted as ever): for runs whose
    durability is judged by the disk model or by a kill, which keeps the page cache, the real
    flush is only cost.
    """

    root: str | None
    recording: bool = True
    fault: Fault | None = None
    on_crash: Callable[[FsCall], None] | None = None
    faults: list = field(default_factory=list)
    file_objects: bool = True
    observers: list = field(default_factory=list)
    real_sync: bool = True
    calls: list[FsCall] = field(default_factory=list)
    count: int = 0
    dead: bool = False  # an in-process crash happened: every later counted call dies too
    _orig: dict = field(default_factory=dict)
    _fds: dict = field(default_factory=dict)
    _paused: int = 0
    _failing: dict = field(default_factory=dict)  # kind -> errno a persistent fault keeps failing

    def __post_init__(self) -> None:
        # root None: count nothing (a shim that only carries observers, like the spy's)
        self.root = os.path.abspath(os.fspath(self.root)) if self.root is not None else None
        self._roots = {self.root, os.path.realpath(self.root)} if self.root is not None else set()
        self.faults = list(self.faults)

    # -- installation -------------------------------------------------------------------------

    def install(self) -> "FsShim":
        """Replace the functions in this process. Idempotent per shim."""
        if self._orig:
            return self
        for name in WRAPPED:
            if hasattr(os, name):
                self._orig[name] = getattr(os, name)
                setattr(os, name, self._wrapper(name, getattr(self, "_w_" + name)))
        for name in LOCKS:
            self._orig[name] = getattr(fcntl, name)
            if any(name in o.functions for o in self.observers):
                setattr(fcntl, name, self._wrapper(name, self._orig[name]))
        if self.file_objects:
            _route_file_objects()
        return self

    def uninstall(self) -> None:
        """Put the original functions back."""
        if not self._orig:
            return
        for name, func in self._orig.items():
            setattr(fcntl if name in LOCKS else os, name, func)
        self._orig.clear()
        if self.file_objects:
            _unroute_file_objects()

    def __enter__(self) -> "FsShim":
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    def _wrapper(self, name: str, inner: Callable) -> Callable:
        """``inner`` behind the observers that watch ``name`` (outermost first)."""
        watching = [o for o in self.observers if name in o.functions]
        if not watching:
            return inner
        call = inner
        for observer in reversed(watching):
            call = (lambda obs, nxt: lambda *a, **k: obs.around(name, nxt, a, k))(observer, call)
        return call

    def reset(self, fault: Fault | None = None, recording: bool | None = None) -> None:
        """Start numbering from 0 again with ``fault`` armed; forget recorded calls."""
        self.calls = []
        self.count = 0
        self.fault = fault
        self._failing = {}
        self.dead = False
        if recording is not None:
            self.recording = recording

    def clear_fault(self) -> None:
        """Disarm every fault (the "disk" is healthy again); numbering continues."""
        self.fault = None
        self.faults = []
        self._failing = {}

    class _Pause:
        def __init__(self, shim: "FsShim") -> None:
            self.shim = shim

        def __enter__(self) -> None:
            self.shim._paused += 1
            if self.shim._paused == 1 and self.shim.file_objects and self.shim._orig:
                _suspend_routing(True)

        def __exit__(self, *exc: object) -> None:
            self.shim._paused -= 1
            if self.shim._paused == 0 and self.shim.file_objects and self.shim._orig:
                _suspend_routing(False)

    def paused(self) -> "_Pause":
        """Context in which calls pass through unnumbered (for the harness's own checks); file
        objects made meanwhile are the C ones again, since nothing of them is counted."""
        return FsShim._Pause(self)

    @property
    def original(self) -> dict:
        """The functions this shim replaced (for writing to a report pipe while installed)."""
        return self._orig

    # -- classification -----------------------------------------------------------------------

    def _under_root(self, path: object) -> str | None:
        try:
            text = os.fsdecode(os.fspath(path))
        except TypeError:
            return None
        absolute = os.path.abspath(text)
        for root in self._roots:
            if absolute == root or absolute.startswith(root + os.sep):
                return absolute
        return None

    def _counted_path(self, path: object, dir_fd: object = None) -> str | None:
        if self._paused:
            return None
        try:
            return self._under_root(resolve(path, dir_fd))
        except (TypeError, ValueError, OSError):
            return None  # not a path, or a dir_fd that is no open directory: the real call says so

    def _counted_fd(self, fd: object) -> _Tracked | None:
        if self._paused or not isinstance(fd, int):
            return None
        return self._fds.get(fd)

    # -- the core: number, decide the fault, run, record ---------------------------------------

    def _begin(self, kind: str) -> tuple[int, Fault | None]:
        """Number the call and return (index, the fault that acts on it or None)."""
        index = self.count
        self.count += 1
        if kind in self._failing:
            return index, Fault(index, "error", self._failing[kind])
        for fault in ([self.fault] if self.fault else []) + self.faults:
            if fault.selects(index, kind):
                if fault.persistent and fault.action == "error":
                    self._failing[kind] = fault.errno
                return index, fault
        return index, None

    def _record(self, call: FsCall) -> None:
        if self.recording:
            self.calls.append(call)

    def _crash(self, call: FsCall, fault: Fault | None) -> None:
        self._record(call)
        if fault is not None and fault.in_process:
            self.dead = True
            raise SimulatedCrash(f"crash at fs call {call.index} ({call.kind}, {call.injected})")
        if self.on_crash is not None:
            self.on_crash(call)
        os._exit(CRASH_EXIT)

    def _raise(self, call: FsCall, code: int) -> None:
        self._record(call._with(error=code, injected="error" if code != errno_module.EINTR else "eintr"))
        exc = InterruptedError if code == errno_module.EINTR else OSError
        raise exc(code, f"{os.strerror(code)} (injected at fs call {call.index})", call.path)

    def _dead_call(self, kind: str, func: Callable, args: tuple, kwargs: dict):
        if kind == "close":  # the kernel closes a dead process's descriptors
            return func(*args, **kwargs)
        raise SimulatedCrash(f"{kind} after the crash")

    def _run(self, kind: str, call_kwargs: dict, func: Callable, args: tuple, kwargs: dict,
             *, after: Callable[[object], dict] | None = None, close_first: bool = False):
        """Apply the fault decision around ``func(*args, **kwargs)`` and record the call."""
        if self.dead:
            return self._dead_call(kind, func, args, kwargs)
        index, fault = self._begin(kind)
        action = fault.action if fault else None
        call = FsCall(index=index, kind=kind, **call_kwargs)
        if action == "hook":
            with self.paused():
                fault.hook(call)
            action = None
        if action in ("crash", "torn"):  # torn only tears writes: elsewhere it is a crash before
            if fault.in_process and kind == "close":  # the kernel closes a dead process's files
                func(*args, **kwargs)
            self._crash(call._with(injected="crash"), fault)
        if action == "skip":
            self._record(call._with(injected="skip"))
            return None if kind != "open" else func(*args, **kwargs)
        if action in ("error", "eintr"):
            if close_first:  # a failing close still releases the descriptor (as on Linux)
                try:
                    func(*args, **kwargs)
                except OSError:
                    pass
            self._raise(call, fault.errno if action == "error" else errno_module.EINTR)
        try:
            result = func(*args, **kwargs)
        except OSError as exc:
            self._record(call._with(error=exc.errno))
            raise
        done = call._with(**(after(result) if after else {}))
        if action == "crash-after":
            self._crash(done._with(injected="crash-after"), fault)
        self._record(done)
        return result

    def _write_call(self, kind: str, fd: int, tracked: _Tracked, run: Callable[[int | None], int],
                    landed: Callable[[int, int], bytes], size: int, offset: int | None = None):
        """A call that writes ``size`` bytes to ``fd`` (at ``offset``, or at its file position).

        ``run(limit)`` performs it, writing at most ``limit`` bytes (None: all); ``landed(n, at)``
        gives the ``n`` bytes it put at offset ``at``.
        """
        real_lseek = os.lseek
        if self.dead:
            return self._dead_call(kind, run, (None,), {})
        index, fault = self._begin(kind)
        action = fault.action if fault else None
        call = FsCall(index=index, kind=kind, path=tracked.path, fd=fd)
        if action == "hook":
            with self.paused():
                fault.hook(call)
            action = None
        if action == "crash":
            self._crash(call._with(injected="crash"), fault)
        if action == "skip":
            self._record(call._with(injected="skip"))
            return size
        if action in ("error", "eintr"):
            self._raise(call, fault.errno if action == "error" else errno_module.EINTR)
        limit = max(1, size // 2) if action in ("torn", "short") and size > 1 else (0 if action == "torn" else None)
        try:
            written = run(limit) if limit != 0 else 0
        except OSError as exc:
            self._record(call._with(error=exc.errno))
            raise
        # where the bytes landed: the position after the call minus the count (right for O_APPEND)
        at = offset if offset is not None else real_lseek(fd, 0, os.SEEK_CUR) - written
        done = call._with(offset=at, data=landed(written, at))
        if action in ("torn", "crash-after"):
            self._crash(done._with(injected=action), fault)
        self._record(done._with(injected=action) if action == "short" else done)
        return written

    # -- wrappers -------------------------------------------------------------------------------

    def _w_open(self, path, flags, mode=0o777, *, dir_fd=None):
        real = self._orig["open"]
        absolute = self._counted_path(path, dir_fd)
        if absolute is None:
            return real(path, flags, mode, dir_fd=dir_fd)
        existed = os.path.lexists(absolute)
        is_dir = os.path.isdir(absolute)
        created = bool(flags & os.O_CREAT) and not existed

        def after(fd: int) -> dict:
            self._fds[fd] = _Tracked(absolute, is_dir)
            return {"fd": fd}

        return self._run("open", {"path": absolute, "flags": flags, "created": created, "is_dir": is_dir},
                         real, (path, flags, mode), _relative_to(dir_fd), after=after)

    def _w_write(self, fd, data):
        real = self._orig["write"]
        tracked = self._counted_fd(fd)
        if tracked is None:
            return real(fd, data)
        view = memoryview(data).cast("B")
        return self._write_call("write", fd, tracked, lambda limit: real(fd, view[:limit]),
                                lambda n, _at: bytes(view[:n]), len(view))

    def _w_pwrite(self, fd, data, offset):
        real = self._orig["pwrite"]
        tracked = self._counted_fd(fd)
        if tracked is None:
            return real(fd, data, offset)
        view = memoryview(data).cast("B")
        return self._write_call("pwrite", fd, tracked, lambda limit: real(fd, view[:limit], offset),
                                lambda n, _at: bytes(view[:n]), len(view), offset)

    def _w_writev(self, fd, buffers):
        real = self._orig["writev"]
        tracked = self._counted_fd(fd)
        if tracked is None:
            return real(fd, buffers)
        joined = b"".join(bytes(b) for b in buffers)
        return self._write_call("writev", fd, tracked,
                                lambda limit: real(fd, [joined[:limit] if limit is not None else joined]),
                                lambda n, _at: joined[:n], len(joined))

    def _copy_from(self, in_fd: int, start: int | None) -> Callable[[int, int], bytes]:
        """``landed`` for a copy from ``in_fd``: the bytes now at its ``start`` (or before its position)."""
        def landed(n: int, _at: int) -> bytes:
            begin = start if start is not None else os.lseek(in_fd, 0, os.SEEK_CUR) - n
            return os.pread(in_fd, n, begin)
        return landed

    @staticmethod
    def _copy_size(in_fd: int, start: int | None, count: int) -> int:
        """How many bytes a copy of ``count`` from ``in_fd`` (at ``start``, or its position)
        will move: a short write must be short of that, not of the caller's upper bound."""
        begin = start if start is not None else os.lseek(in_fd, 0, os.SEEK_CUR)
        return max(0, min(count, os.fstat(in_fd).st_size - begin))

    def _w_sendfile(self, out_fd, in_fd, offset, count, *args, **kwargs):
        real = self._orig["sendfile"]
        tracked = self._counted_fd(out_fd)
        if tracked is None:
            return real(out_fd, in_fd, offset, count, *args, **kwargs)
        size = self._copy_size(in_fd, offset, count)
        return self._write_call(
            "sendfile", out_fd, tracked,
            lambda limit: real(out_fd, in_fd, offset, count if limit is None else min(count, limit), *args, **kwargs),
            self._copy_from(in_fd, offset), size)

    def _w_copy_file_range(self, src, dst, count, offset_src=None, offset_dst=None):
        real = self._orig["copy_file_range"]
        tracked = self._counted_fd(dst)
        if tracked is None:
            return real(src, dst, count, offset_src, offset_dst)
        size = self._copy_size(src, offset_src, count)
        return self._write_call(
            "copy_file_range", dst, tracked,
            lambda limit: real(src, dst, count if limit is None else min(count, limit), offset_src, offset_dst),
            self._copy_from(src, offset_src), size, offset_dst)

    def _sync(self, name: str, fd):
        real = self._orig[name]
        target = fd if isinstance(fd, int) else fd.fileno()
        tracked = self._counted_fd(target)
        if tracked is None:
            return real(fd)
        kind = "dirfsync" if tracked.is_dir else name
        if not self.real_sync:  # numbered, recorded and faulted as ever; only the disk is spared
            real = _no_sync
        return self._run(kind, {"path": tracked.path, "fd": target}, real, (fd,), {})

    def _w_fsync(self, fd):
        return self._sync("fsync", fd)

    def _w_fdatasync(self, fd):
        return self._sync("fdatasync", fd)

    def _two_paths(self, kind, src, dst, kwargs):
        real = self._orig[kind]
        a = self._counted_path(src, kwargs.get("src_dir_fd"))
        b = self._counted_path(dst, kwargs.get("dst_dir_fd"))
        if a is None and b is None:
            return real(src, dst, **kwargs)
        return self._run(kind, {"path": a or resolve(src, kwargs.get("src_dir_fd")),
                                "dst": b or resolve(dst, kwargs.get("dst_dir_fd"))}, real, (src, dst), kwargs)

    def _w_replace(self, src, dst, **kwargs):
        return self._two_paths("replace", src, dst, kwargs)

    def _w_rename(self, src, dst, **kwargs):
        return self._two_paths("rename", src, dst, kwargs)

    def _w_link(self, src, dst, **kwargs):
        return self._two_paths("link", src, dst, kwargs)

    def _w_unlink(self, path, *, dir_fd=None):
        real = self._orig["unlink"]
        absolute = self._counted_path(path, dir_fd)
        if absolute is None:
            return real(path, dir_fd=dir_fd)
        return self._run("unlink", {"path": absolute}, real, (path,), _relative_to(dir_fd))

    def _w_close(self, fd):
        real = self._orig["close"]
        tracked = self._counted_fd(fd)
        if tracked is None:
            return real(fd)
        self._fds.pop(fd, None)
        return self._run("close", {"path": tracked.path, "fd": fd}, real, (fd,), {}, close_first=True)

    def _w_fchmod(self, fd, mode):
        real = self._orig["fchmod"]
        tracked = self._counted_fd(fd)
        if tracked is None:
            return real(fd, mode)
        return self._run("fchmod", {"path": tracked.path, "fd": fd}, real, (fd, mode), {})

    def _w_ftruncate(self, fd, length):
        real = self._orig["ftruncate"]
        tracked = self._counted_fd(fd)
        if tracked is None:
            return real(fd, length)
        return self._run("ftruncate", {"path": tracked.path, "fd": fd, "offset": length}, real, (fd, length), {})

    def _w_truncate(self, path, length):
        real = self._orig["truncate"]
        if isinstance(path, int):
            return self._w_ftruncate(path, length)
        absolute = self._counted_path(path)
        if absolute is None:
            return real(path, length)
        return self._run("truncate", {"path": absolute, "offset": length}, real, (path, length), {})

    def _w_mkdir(self, path, mode=0o777, *, dir_fd=None):
        real = self._orig["mkdir"]
        absolute = self._counted_path(path, dir_fd)
        if absolute is None:
            return real(path, mode, dir_fd=dir_fd)
        return self._run("mkdir", {"path": absolute}, real, (path, mode), _relative_to(dir_fd))


def resolve(path: object, dir_fd: int | None = None) -> str:
    """The absolute path a call names with ``path``, relative to the directory open as
    ``dir_fd`` when given (``os.open(name, flags, dir_fd=d)``, ``os.replace(a, b,
    src_dir_fd=d, dst_dir_fd=d)``), else to the working directory. Raises ``TypeError`` for
    a non-path, ``OSError`` when ``dir_fd`` is no open descriptor."""
    text = os.fsdecode(os.fspath(path))
    if dir_fd is None or os.path.isabs(text):
        return os.path.abspath(text)
    return os.path.normpath(os.path.join(os.readlink(f"/proc/self/fd/{int(dir_fd)}"), text))


def _relative_to(dir_fd: int | None) -> dict:
    """The keyword that passes ``dir_fd`` on to the real call (none when it was not given)."""
    return {} if dir_fd is None else {"dir_fd": dir_fd}


def _no_sync(_fd) -> None:
    """What an fsync does under ``real_sync=False``: nothing (see :class:`FsShim`)."""


def skipping(root: str, kind: str) -> FsShim:
    """A shim (to use as a context) that skips every ``kind`` call under ``root``: a store run
    inside it "forgets" that step, while a shim outside it records the step as never made."""
    return FsShim(root, recording=False, faults=[Fault(None, "skip", kind=kind)], file_objects=False)
