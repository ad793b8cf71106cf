"""Record, crash and fail the file-system calls a process makes under one directory.

:class:`FsShim` replaces functions of the ``os`` module *in the current process only* (the
library calls them as ``os.open``, ``os.write``, ... so a wrapped attribute is what it runs).
Only calls that touch the shim's root directory are counted: a path under the root, or a
descriptor opened from such a path. Everything else (pipes, the interpreter's own files)
passes through untouched and unnumbered, so call indices are stable from run to run.

Guarantees:

- every counted call gets the next index (0, 1, 2, ...) and, when recording, an
  :class:`FsCall` saying what it did, including the bytes a ``write`` put where;
- a :class:`Fault` armed at index ``N`` acts exactly when call ``N`` is about to run:
  ``crash`` exits the process with :data:`CRASH_EXIT` before the call, ``crash-after`` after it,
  ``torn`` writes the first half of a ``write`` and then exits, ``error`` raises
  ``OSError(errno)`` instead of the call (once, or with ``persistent`` for that call and every
  later call of the same kind);
- crashes use ``os._exit``: no ``finally`` block, ``atexit`` hook or buffered output of the
  process runs, which is what a kill looks like to the files, while coverage's ``_exit`` patch
  still saves its data.

Use it only in a worker process that the harness owns; it is not thread-aware.
"""

from __future__ import annotations

import errno as errno_module
import os
from dataclasses import dataclass, field, replace
from typing import Callable

CRASH_EXIT = 77  # exit status of a process stopped by an injected crash

# The os functions a store uses to write and make durable. ``dirfsync`` is not a function:
# it is the kind given to an ``fsync`` of a descriptor opened on a directory.
WRAPPED = (
    "open",
    "write",
    "pwrite",
    "fsync",
    "fdatasync",
    "replace",
    "rename",
    "link",
    "unlink",
    "close",
    "fchmod",
    "ftruncate",
    "mkdir",
)
KINDS = WRAPPED + ("dirfsync",)


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
    offset: int | None = None  # write/pwrite: where the bytes landed; ftruncate: the new length
    data: bytes | None = None  # write/pwrite: the bytes that landed
    error: int | None = None  # errno when the call failed (really or by injection)
    injected: str | None = None  # the fault action applied at this call, if any

    def _with(self, **changes: object) -> "FsCall":
        return replace(self, **changes)

    def _replace_injected(self, action: str) -> "FsCall":
        return replace(self, injected=action)

    def describe(self) -> str:
        """A short human description, e.g. ``fsync(.trades.json.1a2b.tmp)``."""
        name = os.path.basename(self.path) if self.path else "?"
        if self.dst is not None:
            return f"{self.kind}({name} -> {os.path.basename(self.dst)})"
        if self.kind in ("write", "pwrite") and self.data is not None:
            return f"{self.kind}({name}, {len(self.data)} bytes @ {self.offset})"
        return f"{self.kind}({name})"


@dataclass(frozen=True)
class Fault:
    """What to do at call ``at``. ``action``: "crash", "crash-after", "torn" or "error"."""

    at: int
    action: str
    errno: int = 0
    persistent: bool = False

    def __post_init__(self) -> None:
        if self.action not in ("crash", "crash-after", "torn", "error"):
            raise ValueError(f"action={self.action!r}: expected crash, crash-after, torn or error")
        if self.action == "error" and not self.errno:
            raise ValueError("an error fault needs an errno (e.g. errno.ENOSPC)")


@dataclass
class _Tracked:
    path: str
    is_dir: bool


@dataclass
class FsShim:
    """Wraps ``os`` functions while installed; counts, records and injects faults under ``root``.

    ``recording`` keeps an :class:`FsCall` per counted call in ``calls``; ``fault`` is the
    armed fault (or None). ``on_crash`` runs just before an injected crash exits (a worker
    uses it to flush what it must report); it must not touch the root directory.
    """

    root: str
    recording: bool = True
    fault: Fault | None = None
    on_crash: Callable[[FsCall], None] | None = None
    calls: list[FsCall] = field(default_factory=list)
    count: int = 0
    _orig: dict = field(default_factory=dict)
    _fds: dict = field(default_factory=dict)
    _paused: int = 0
    _fault_kind: str | None = None  # kind that a persistent fault keeps failing

    def __post_init__(self) -> None:
        self.root = os.path.abspath(os.fspath(self.root))
        self._roots = {self.root, os.path.realpath(self.root)}

    # -- installation -------------------------------------------------------------------------

    def install(self) -> "FsShim":
        """Replace the ``os`` functions in this process. Idempotent per shim."""
        if self._orig:
            return self
        for name in WRAPPED:
            self._orig[name] = getattr(os, name)
            setattr(os, name, getattr(self, "_w_" + name))
        return self

    def uninstall(self) -> None:
        """Put the original ``os`` functions back."""
        for name, func in self._orig.items():
            setattr(os, name, func)
        self._orig.clear()

    def __enter__(self) -> "FsShim":
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    def reset(self, fault: Fault | None = None, recording: bool | None = None) -> None:
        """Start numbering from 0 again with ``fault`` armed; forget recorded calls."""
        self.calls = []
        self.count = 0
        self.fault = fault
        self._fault_kind = None
        if recording is not None:
            self.recording = recording

    def clear_fault(self) -> None:
        """Disarm the fault (the "disk" is healthy again); numbering continues."""
        self.fault = None
        self._fault_kind = None

    class _Pause:
        def __init__(self, shim: "FsShim") -> None:
            self.shim = shim

        def __enter__(self) -> None:
            self.shim._paused += 1

        def __exit__(self, *exc: object) -> None:
            self.shim._paused -= 1

    def paused(self) -> "_Pause":
        """Context in which calls pass through unnumbered (for the harness's own checks)."""
        return FsShim._Pause(self)

    @property
    def original(self) -> dict:
        """The real ``os`` functions (for writing to a report pipe while installed)."""
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
        if self._paused or dir_fd is not None:
            return None
        return self._under_root(path)

    def _counted_fd(self, fd: int) -> _Tracked | None:
        if self._paused:
            return None
        return self._fds.get(fd)

    # -- the core: number, decide the fault, run, record ---------------------------------------

    def _begin(self, kind: str) -> tuple[int, str | None]:
        """Number the call and return (index, action to apply or None)."""
        index = self.count
        self.count += 1
        fault = self.fault
        if fault is None:
            return index, None
        if index == fault.at:
            if fault.persistent:
                self._fault_kind = kind
            return index, fault.action
        if fault.persistent and self._fault_kind == kind and index > fault.at:
            return index, "error"
        return index, None

    def _record(self, call: FsCall) -> None:
        if self.recording:
            self.calls.append(call)

    def _crash(self, call: FsCall) -> None:
        self._record(call)
        if self.on_crash is not None:
            self.on_crash(call)
        os._exit(CRASH_EXIT)

    def _raise(self, call: FsCall, path: str | None) -> None:
        code = self.fault.errno if self.fault else errno_module.EIO
        self._record(call._with(error=code))
        raise OSError(code, f"{os.strerror(code)} (injected at fs call {call.index})", path)

    def _run(self, kind: str, call_kwargs: dict, func: Callable, args: tuple, kwargs: dict,
             *, after: Callable[[object], dict] | None = None, close_first: bool = False):
        """Apply the fault decision around ``func(*args, **kwargs)`` and record the call."""
        index, action = self._begin(kind)
        call = FsCall(index=index, kind=kind, **call_kwargs)
        if action == "crash":
            self._crash(call._replace_injected("crash"))
        if action == "error":
            if close_first:  # a failing close still releases the descriptor (as on Linux)
                try:
                    func(*args, **kwargs)
                except OSError:
                    pass
            self._raise(call._replace_injected("error"), call.path)
        try:
            result = func(*args, **kwargs)
        except OSError as exc:
            self._record(call._with(error=exc.errno))
            raise
        extra = after(result) if after else {}
        done = call._with(**extra)
        if action == "crash-after":
            self._crash(done._replace_injected("crash-after"))
        self._record(done)
        return result

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
                         real, (path, flags, mode), {}, after=after)

    def _w_write(self, fd, data):
        real = self._orig["write"]
        tracked = self._counted_fd(fd)
        if tracked is None:
            return real(fd, data)
        index, action = self._begin("write")
        start = os.lseek(fd, 0, os.SEEK_CUR)
        call = FsCall(index=index, kind="write", path=tracked.path, fd=fd, offset=start)
        if action == "crash":
            self._crash(call._replace_injected("crash"))
        if action == "error":
            self._raise(call._replace_injected("error"), tracked.path)
        if action == "torn":
            view = memoryview(data)
            half = view[: max(1, len(view) // 2)] if len(view) > 1 else view[:0]
            written = real(fd, half) if len(half) else 0
            self._crash(call._with(data=bytes(half[:written]))._replace_injected("torn"))
        try:
            written = real(fd, data)
        except OSError as exc:
            self._record(call._with(error=exc.errno))
            raise
        done = call._with(data=bytes(memoryview(data)[:written]))
        if action == "crash-after":
            self._crash(done._replace_injected("crash-after"))
        self._record(done)
        return written

    def _w_pwrite(self, fd, data, offset):
        real = self._orig["pwrite"]
        tracked = self._counted_fd(fd)
        if tracked is None:
            return real(fd, data, offset)
        return self._run("pwrite", {"path": tracked.path, "fd": fd, "offset": offset}, real, (fd, data, offset), {},
                         after=lambda n: {"data": bytes(memoryview(data)[:n])})

    def _w_fsync(self, fd):
        real = self._orig["fsync"]
        target = fd if isinstance(fd, int) else fd.fileno()
        tracked = self._counted_fd(target)
        if tracked is None:
            return real(fd)
        kind = "dirfsync" if tracked.is_dir else "fsync"
        return self._run(kind, {"path": tracked.path, "fd": target}, real, (fd,), {})

    def _w_fdatasync(self, fd):
        real = self._orig["fdatasync"]
        target = fd if isinstance(fd, int) else fd.fileno()
        tracked = self._counted_fd(target)
        if tracked is None:
            return real(fd)
        kind = "dirfsync" if tracked.is_dir else "fdatasync"
        return self._run(kind, {"path": tracked.path, "fd": target}, real, (fd,), {})

    def _two_paths(self, kind, src, dst, kwargs):
        real = self._orig[kind]
        a = self._counted_path(src, kwargs.get("src_dir_fd"))
        b = self._counted_path(dst, kwargs.get("dst_dir_fd"))
        if a is None and b is None:
            return real(src, dst, **kwargs)
        return self._run(kind, {"path": a or os.path.abspath(os.fsdecode(src)),
                                "dst": b or os.path.abspath(os.fsdecode(dst))}, real, (src, dst), kwargs)

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
        return self._run("unlink", {"path": absolute}, real, (path,), {})

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

    def _w_mkdir(self, path, mode=0o777, *, dir_fd=None):
        real = self._orig["mkdir"]
        absolute = self._counted_path(path, dir_fd)
        if absolute is None:
            return real(path, mode, dir_fd=dir_fd)
        return self._run("mkdir", {"path": absolute}, real, (path, mode), {})

