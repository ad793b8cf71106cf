"""The durability model: what a power cut at any moment could leave on the disk.

A process kill keeps the operating system's page cache, so every completed ``write`` and
``rename`` survives it. A power cut keeps only what was made durable. :class:`DiskModel`
replays the file-system calls recorded by :class:`tradestore_harness.fsfaults.FsShim` and tracks, after
each call, two views of every file and directory:

- *data*: bytes written to a file are durable once that file (the inode, whatever its name is
  now) is ``fsync``-ed (``fdatasync`` counts the same);
- *names*: a creation, ``link``, ``rename``/``replace`` or ``unlink`` in a directory is durable
  once that directory is ``fsync``-ed.

:meth:`DiskModel.crash_states` lists the states a power cut at that moment could leave:

- every directory keeps a *prefix* of its unsynced name changes (none, some, all): journaling
  file systems commit metadata in the order it was made, so a later rename never survives
  without the earlier ones in the same directory;
- every file whose data is not yet durable and that is reachable by a surviving name is
  *dropped* (its durable bytes), *kept* (all bytes), or *torn* at a block boundary (the first
  ``k`` blocks of the new bytes over the old ones; at most two tear points per file); a file
  that grew may also keep its new size with the blocks that did not land reading as zeros
  (dropped or torn, then zero-filled to the new length: what an append cut off by a power cut
  leaves on file systems that commit a file's size before its data);
- the product of these choices is enumerated in full up to ``cap`` combinations per moment;
  beyond that the extremes (all dropped, all kept) plus a seeded sample of ``cap`` are taken,
  so the count stays bounded while every moment is still visited.

Simplifications (stated so that a reader can judge the proof): directories created during a
recording are durable at once; file modes and timestamps are not modelled; the data of a file
is durable only by an ``fsync`` of a descriptor of that file (never by a directory ``fsync``);
once an ``fsync`` of a file has failed, no later ``fsync`` makes the pages that were dirty then
durable (the kernel may have marked its dirty pages clean without writing them), except for the pages
written again since (a write dirties its pages, and the next ``fsync`` writes them whole); a
failed directory ``fsync`` changes nothing, and a later one that succeeds makes the
directory's names durable.
These assumptions are no weaker than POSIX promises, so a store proved here relies on no
file-system-specific ordering beyond in-order metadata commits.
"""

from __future__ import annotations

import itertools
import os
import random
from dataclasses import dataclass, field

from .fsfaults import FsCall

BLOCK = 512  # a disk sector: the unit a drive writes atomically
PAGE = 4096  # a page of the page cache: the unit the kernel marks dirty, writes back or drops
MAX_TEARS = 2  # tear points per file: after the first block and before the last


class ModelError(Exception):
    """The recorded calls do not fit the model (e.g. a file it never heard of)."""


@dataclass
class _Inode:
    data: bytearray
    durable: bytes
    # Pages (of PAGE bytes) that were dirty when an fsync of this file failed and have not been
    # written since: the kernel may have marked them clean without writing them, so a later
    # fsync "succeeds" and leaves their old bytes on the disk. Writing into a page again dirties
    # it, and the next fsync writes it whole.
    stale: set = field(default_factory=set)

    def _pages(self, start: int, end: int) -> range:
        return range(start // PAGE, (end + PAGE - 1) // PAGE)

    def sync_failed(self) -> None:
        size = max(len(self.data), len(self.durable))
        self.stale |= {p for p in self._pages(0, size)
                       if self.data[p * PAGE:(p + 1) * PAGE] != self.durable[p * PAGE:(p + 1) * PAGE]}

    def written(self, start: int, end: int) -> None:
        self.stale -= set(self._pages(start, end))

    def truncated(self, length: int) -> None:
        self.stale = {p for p in self.stale if p * PAGE < length}

    def synced(self) -> None:
        durable = bytearray(self.data)
        for p in self.stale:
            start, end = p * PAGE, min((p + 1) * PAGE, len(durable))
            durable[start:end] = self.durable[start:end].ljust(end - start, b"\0")
        self.durable = bytes(durable)

    @property
    def dirty(self) -> bool:
        return bytes(self.data) != self.durable


@dataclass
class _Dir:
    entries: dict[str, int]
    durable: dict[str, int]
    pending: list[list[tuple]] = field(default_factory=list)  # unsynced changes, in order

    def view(self, keep: int) -> dict[str, int]:
        """The entries a power cut leaves if the first ``keep`` unsynced changes survive."""
        names = dict(self.durable)
        for change in self.pending[:keep]:
            _apply(names, change)
        return names


def _apply(names: dict[str, int], change: list[tuple]) -> None:
    for step in change:
        if step[0] == "set":
            names[step[1]] = step[2]
        else:
            names.pop(step[1], None)


@dataclass(frozen=True)
class CrashState:
    """One possible disk after a power cut: relative path -> bytes, and how it came about."""

    files: dict
    label: str

    def key(self) -> tuple:
        return tuple(sorted(self.files.items()))


class DiskModel:
    """Replays :class:`FsCall` s under ``root`` starting from a fully durable ``snapshot``.

    ``snapshot`` maps paths relative to ``root`` to their bytes; ``dirs`` lists the relative
    directories that exist (``""`` is the root itself; parents of snapshot files are added);
    ``links`` groups paths that are one file (see :func:`hard_links`).
    """

    def __init__(self, root: str, snapshot: dict[str, bytes], dirs: tuple[str, ...] = ("",),
                 links: tuple[tuple[str, ...], ...] = ()) -> None:
        self.root = os.path.abspath(root)
        self.inodes: dict[int, _Inode] = {}
        self.dirs: dict[str, _Dir] = {}
        self.fds: dict[int, tuple[str, object]] = {}
        self.applied = 0
        for d in dirs:
            self._ensure_dir(d)
        same_as = {rel: group[0] for group in links for rel in group}
        inode_of: dict[str, int] = {}
        for rel, data in sorted(snapshot.items()):
            parent, name = os.path.split(rel)
            directory = self._ensure_dir(parent)
            first = same_as.get(rel, rel)
            if first not in inode_of:
                inode_of[first] = self._new_inode(data, durable=True)
            directory.entries[name] = directory.durable[name] = inode_of[first]

    # -- replay ---------------------------------------------------------------------------------

    def _ensure_dir(self, rel: str) -> _Dir:
        rel = os.path.normpath(rel) if rel else ""
        rel = "" if rel == "." else rel
        if rel not in self.dirs:
            self.dirs[rel] = _Dir({}, {})
            if rel:
                self._ensure_dir(os.path.dirname(rel))
        return self.dirs[rel]

    def _new_inode(self, data: bytes = b"", durable: bool = False) -> int:
        ino = len(self.inodes) + 1
        self.inodes[ino] = _Inode(bytearray(data), bytes(data) if durable else b"")
        return ino

    def _rel(self, path: str) -> str:
        rel = os.path.relpath(path, self.root)
        if rel.startswith(".."):
            raise ModelError(f"{path} is outside {self.root}")
        return "" if rel == "." else rel

    def _locate(self, path: str) -> tuple[_Dir, str]:
        parent, name = os.path.split(self._rel(path))
        if parent not in self.dirs:
            raise ModelError(f"directory of {path} is unknown to the model")
        return self.dirs[parent], name

    def _change(self, directory: _Dir, change: list[tuple]) -> None:
        _apply(directory.entries, change)
        directory.pending.append(change)

    def _inode_of(self, fd: int | None) -> _Inode:
        kind, ref = self.fds.get(fd, (None, None))
        if kind != "file":
            raise ModelError(f"descriptor {fd} is not an open file the model knows")
        return self.inodes[ref]

    def apply(self, call: FsCall) -> None:
        """Advance the model by one call. Calls that failed (really or by injection) change nothing."""
        self.applied += 1
        kind = call.kind
        if not call.ran:
            if kind in ("fsync", "fdatasync") and (call.injected == "error" or call.error is not None):
                held, ref = self.fds.get(call.fd, (None, None))
                if held == "file":
                    self.inodes[ref].sync_failed()
            return
        if kind == "open":
            if call.is_dir:
                self.fds[call.fd] = ("dir", self._rel(call.path))
                return
            directory, name = self._locate(call.path)
            if call.created or name not in directory.entries:
                ino = self._new_inode()
                self._change(directory, [("set", name, ino)])
            else:
                ino = directory.entries[name]
                if call.flags & os.O_TRUNC:
                    self.inodes[ino].data = bytearray()
            self.fds[call.fd] = ("file", ino)
        elif call.writes:
            inode = self._inode_of(call.fd)
            end = call.offset + len(call.data)
            if len(inode.data) < call.offset:
                inode.data.extend(b"\0" * (call.offset - len(inode.data)))
            inode.data[call.offset:end] = call.data
            inode.written(call.offset, end)
        elif kind in ("ftruncate", "truncate"):
            if kind == "truncate":
                directory, name = self._locate(call.path)
                if name not in directory.entries:
                    raise ModelError(f"truncate of {call.path}, which the model does not have")
                inode = self.inodes[directory.entries[name]]
            else:
                inode = self._inode_of(call.fd)
            del inode.data[call.offset:]
            inode.data.extend(b"\0" * (call.offset - len(inode.data)))
            inode.truncated(call.offset)
        elif kind in ("fsync", "fdatasync"):
            self._inode_of(call.fd).synced()
        elif kind == "dirfsync":
            _, rel = self.fds[call.fd]
            directory = self.dirs[rel]
            directory.durable = dict(directory.entries)
            directory.pending = []
        elif kind == "close":
            self.fds.pop(call.fd, None)
        elif kind in ("replace", "rename"):
            src_dir, src = self._locate(call.path)
            dst_dir, dst = self._locate(call.dst)
            if src not in src_dir.entries:
                raise ModelError(f"rename of {call.path}, which the model does not have")
            ino = src_dir.entries[src]
            if dst_dir.entries.get(dst) == ino:
                return  # rename(2) between two links of one file does nothing, leaving both
            if src_dir is dst_dir:
                self._change(src_dir, [("del", src), ("set", dst, ino)])
            else:
                self._change(src_dir, [("del", src)])
                self._change(dst_dir, [("set", dst, ino)])
        elif kind == "link":
            src_dir, src = self._locate(call.path)
            dst_dir, dst = self._locate(call.dst)
            self._change(dst_dir, [("set", dst, src_dir.entries[src])])
        elif kind == "unlink":
            directory, name = self._locate(call.path)
            self._change(directory, [("del", name)])
        elif kind == "mkdir":
            self._ensure_dir(self._rel(call.path))
        # fchmod and anything else: modes are not modelled

    # -- views ----------------------------------------------------------------------------------

    def current(self) -> dict[str, bytes]:
        """What a reader sees now (the page cache): relative path -> bytes."""
        out = {}
        for rel, directory in self.dirs.items():
            for name, ino in directory.entries.items():
                out[os.path.join(rel, name)] = bytes(self.inodes[ino].data)
        return out

    def unsynced(self) -> tuple[int, int]:
        """(unsynced name changes, files with unsynced data reachable from any name)."""
        changes = sum(len(d.pending) for d in self.dirs.values())
        reachable = {ino for d in self.dirs.values() for ino in list(d.entries.values()) + list(d.durable.values())}
        return changes, sum(1 for ino in reachable if self.inodes[ino].dirty)

    def crash_states(self, rng: random.Random, cap: int = 64) -> list[CrashState]:
        """The distinct disks a power cut right now could leave (bounded by ``cap``, see module doc)."""
        dir_names = sorted(self.dirs)
        prefix_choices = [range(len(self.dirs[d].pending) + 1) for d in dir_names]
        dir_combos = _bounded_product(prefix_choices, rng, cap)
        seen: dict[tuple, CrashState] = {}
        for keeps in dir_combos:
            views = {d: self.dirs[d].view(k) for d, k in zip(dir_names, keeps)}
            visible = sorted({ino for names in views.values() for ino in names.values()})
            dirty = [ino for ino in visible if self.inodes[ino].dirty]
            variants = [_data_variants(self.inodes[ino]) for ino in dirty]
            data_cap = max(4, cap // len(dir_combos))
            for pick in _bounded_product([range(len(v)) for v in variants], rng, data_cap):
                contents = {ino: self.inodes[ino].durable for ino in visible}
                how = []
                for ino, choice, options in zip(dirty, pick, variants):
                    label, data = options[choice]
                    contents[ino] = data
                    how.append(f"inode {ino} {label}")
                files = {os.path.join(d, name): contents[ino] for d, names in views.items() for name, ino in names.items()}
                dir_label = ", ".join(
                    f"{d or '.'} keeps {k}/{len(self.dirs[d].pending)} unsynced name changes"
                    for d, k in zip(dir_names, keeps) if self.dirs[d].pending
                ) or "all names durable"
                state = CrashState(files, dir_label + ("; " + ", ".join(how) if how else ""))
                seen.setdefault(state.key(), state)
        return list(seen.values())


def _data_variants(inode: _Inode) -> list[tuple[str, bytes]]:
    new, old = bytes(inode.data), inode.durable
    options = [("data dropped", old), ("data kept", new)]
    blocks = (len(new) + BLOCK - 1) // BLOCK
    tears = sorted({1, blocks - 1} - {0}) if blocks > 1 else []
    landed = [("data dropped", old)]
    for k in tears[:MAX_TEARS]:
        cut = k * BLOCK
        options.append((f"torn after {cut} bytes", new[:cut] + old[cut:]))
        landed.append((f"torn after {cut} bytes", new[:cut] + old[cut:]))
    # A file that grew: its new size can reach the disk before its new blocks do, and the
    # blocks never written then read as zeros (an append cut off by the power: a tail of zeros).
    for label, data in landed:
        if len(data) < len(new):
            options.append((f"{label}, grown to {len(new)} bytes with zeros", data.ljust(len(new), b"\0")))
    return options


def _bounded_product(choices: list, rng: random.Random, cap: int) -> list[tuple]:
    """Every combination if there are at most ``cap``; else first, last and a seeded sample."""
    total = 1
    for c in choices:
        total *= len(c)
    if total <= cap:
        return list(itertools.product(*choices))
    picked = {tuple(c[0] for c in choices), tuple(c[-1] for c in choices)}
    while len(picked) < cap:
        picked.add(tuple(rng.choice(c) for c in choices))
    return sorted(picked)


def snapshot_dir(root: str) -> tuple[dict[str, bytes], tuple[str, ...]]:
    """Every regular file under ``root`` (relative path -> bytes) and every directory."""
    files, dirs = {}, [""]
    for here, subdirs, names in os.walk(root):
        rel = os.path.relpath(here, root)
        rel = "" if rel == "." else rel
        for d in subdirs:
            dirs.append(os.path.join(rel, d))
        for name in names:
            with open(os.path.join(here, name), "rb") as f:
                files[os.path.join(rel, name)] = f.read()
    return files, tuple(dirs)


def hard_links(root: str) -> tuple[tuple[str, ...], ...]:
    """Groups of relative paths under ``root`` that are one file (hard links), for DiskModel."""
    groups: dict[tuple[int, int], list[str]] = {}
    for here, _subdirs, names in os.walk(root):
        for name in names:
            path = os.path.join(here, name)
            st = os.lstat(path)
            groups.setdefault((st.st_dev, st.st_ino), []).append(os.path.relpath(path, root))
    return tuple(tuple(sorted(g)) for g in groups.values() if len(g) > 1)


def materialise(files: dict[str, bytes], dirs: tuple[str, ...], target: str) -> None:
    """Write a crash state (or a snapshot) into the empty directory ``target``."""
    for d in dirs:
        os.makedirs(os.path.join(target, d), exist_ok=True)
    for rel, data in files.items():
        path = os.path.join(target, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def sync_dir(files: dict[str, bytes], dirs: tuple[str, ...], target: str, *, renew: bool = False) -> None:
    """Make ``target`` hold exactly ``files`` (and ``dirs``), touching only what differs.

    Checking hundreds of crash states one after another in one scratch directory this way
    costs a fraction of creating and removing a directory tree per state. With ``renew`` every
    file is written afresh (a new inode), so a process that remembers files by inode, such as
    a lock registry or a version cache, meets them as new files, exactly as in a fresh directory.
    """
    wanted = {os.path.normpath(os.path.join(target, rel)): data for rel, data in files.items()}
    for d in dirs:
        os.makedirs(os.path.join(target, d), exist_ok=True)
    for here, _subdirs, names in os.walk(target):
        for name in names:
            path = os.path.join(here, name)
            if path not in wanted or renew:
                os.unlink(path)
    for path, data in wanted.items():
        try:
            with open(path, "rb") as f:
                if f.read() == data:
                    continue
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def unseen_changes(root: str, snapshot: tuple, calls: list) -> tuple[str, ...]:
    """Files under ``root`` whose real content differs from what replaying ``calls`` from
    ``snapshot`` gives: the writes the interposition layer did not see.

    The model is only as good as the calls it sees; this is its check against the real disk.
    A call the model cannot place (a rename of a file it never saw created) counts too.
    """
    model = DiskModel(root, *snapshot)
    try:
        for call in calls:
            model.apply(call)
    except ModelError as exc:
        return (f"({exc})",)
    modelled, (actual, _) = model.current(), snapshot_dir(root)
    return tuple(sorted(name for name in set(modelled) | set(actual) if modelled.get(name) != actual.get(name)))

