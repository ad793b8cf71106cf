"""StateReconciler: rebuild every derived file from the trade log, heal damage, guard the log.

The read path. One :meth:`StateReconciler.reconcile` cycle:

1. read the trade log once, without the lock (writers replace it with ``os.replace``, so a
   read sees one complete version), hash it and parse it; the log is never written. A
   reconciler keeps what it read between cycles (:class:`LogFollower`): a document whose
   bytes hash as before is not parsed again, a journal-format log is followed by reading only
   its new records, and the per-record work of the integrity scan and the derivation is
   redone only for records that changed (what remains per cycle is the sums, the curve and
   the files themselves: docs/PERFORMANCE.md);
2. run the corruption guard against the remembered last good version (see below);
3. derive the four files (:mod:`tradestore.derive`) and write each one atomically, with a
   ``_meta`` header naming the log version it was built from (sha256, trade count, next_id);
4. write the guard record last.

Guarantees:

- every derived file is a function of the log, the clock's UTC date and the limits (plus its
  generation time), so any damage is gone after one cycle;
- a guard abort writes nothing at all;
- the guard's memory (last good trade count and next_id) is kept in five places: the guard
  record and the ``_meta.source`` of each derived file. It is read as the second largest value
  over the readable copies, so losing or corrupting any one file, the guard record included,
  can neither erase the memory nor (with a forged huge value) block every later run;
- two reconcilers running at once cannot corrupt a file: every write goes through a uniquely
  named temp file and ``os.replace``.
"""

from __future__ import annotations

import copy
import errno
import gc
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from . import derive, journal, logfile
from .atomic import sweep_stray_temps, write_atomic
from .errors import CorruptTradeLog, UnsafePath
from .integrity import ledger_violations
from .locking import FileLock
from .document import loads_strict
from .ledger import Ledger
from .risk import RiskLimits
from .values import limit_number, utc

log = logging.getLogger("tradestore.reconciler")

GUARD_FILE = "reconcile_guard.json"
META = "_meta"
FORMAT = 1
# a temp file this old in the output directory belongs to a reconciler that died mid-write
STRAY_TEMP_AGE_S = 600.0


@dataclass(frozen=True)
class LogVersion:
    """Which trade log a derived file was built from."""

    sha256: str
    trade_count: int
    next_id: int

    def as_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "trade_count": self.trade_count, "next_id": self.next_id}


@dataclass(frozen=True)
class GuardMemory:
    """The last good run as remembered by the output directory; ``copies`` were readable."""

    trade_count: int
    next_id: int
    copies: int


@dataclass
class ReconcileResult:
    """What one cycle did.

    ``written``: files replaced. ``healed``: file name -> why it needed healing (``missing``,
    ``unreadable`` or ``different`` from the rebuild of the same log version and date).
    ``updated``: files rewritten because the log or the date changed (normal, not damage).
    ``aborted``/``reason``: the guard refused; then nothing was written.
    """

    written: list[str] = field(default_factory=list)
    healed: dict[str, str] = field(default_factory=dict)
    updated: list[str] = field(default_factory=list)
    aborted: bool = False
    reason: str | None = None
    source: LogVersion | None = None
    violations: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.aborted

    def summary(self) -> str:
        """One line for logs: what happened, what was healed and why."""
        if self.aborted:
            return f"ABORTED: {self.reason}"
        healed = ", ".join(f"{n} ({why})" for n, why in self.healed.items()) or "nothing"
        src = self.source
        counts = f"{src.trade_count} trades, next_id {src.next_id}" if src else "no log"
        extra = f"; {len(self.violations)} invariant violations" if self.violations else ""
        return f"ok: {counts}; wrote {len(self.written)} files; healed {healed}{extra}; {self.elapsed_s * 1000:.0f} ms"


# --------------------------------------------------------------------------- reading


def read_log(path: str, follower: LogFollower | None = None) -> tuple[bytes, Ledger]:
    """The log's bytes (for the hash) and its Ledger.

    Raises FileNotFoundError for a log that does not exist yet, CorruptTradeLog for an
    unreadable or lost one (missing, with a backup) and UnsafePath for a path that is not a
    regular file: the same decision as the store's (:func:`tradestore.logfile.open_log`).
    A document is read without the lock: writers replace it with ``os.replace``, so one
    ``open`` sees one whole version. A journal-format log is read holding the writers' lock
    (only finished writes are seen), and its bytes are its state as one document.

    ``follower``: what an earlier call read (:class:`LogFollower`), so that only what changed
    since is parsed; the result is the same as without it.
    """
    return (follower or LogFollower(path)).read()


class LogFollower:
    """One trade log read again and again, parsing only what changed since the last read.

    Each :meth:`read` returns what :func:`read_log` returns of the log at that moment; the
    :class:`Ledger` may be the one returned before, brought up to date (callers must not
    change it). A document is read whole every time and parsed only when its bytes differ
    (by sha256) from the last read's. A journal-format log is followed as a TradeStore
    follows it: holding the lock, only the journal's new records are read and merged
    (:meth:`TradeStore._load`), and a new checkpoint that continues the journal read here is
    adopted without a parse. What was read before is trusted only while it is unchanged on
    disk: every read checks the path's files as a new store would, hashes the checkpoint and
    the journal bytes already read, and reads everything again when either differs (an edit
    in place, a bit flip, a torn tail cut off), the path names another file, or a read
    failed. Whole-log scans of the ledger then cost only what changed (:meth:`Ledger.memo`).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._document: tuple[str, Ledger] | None = None  # (sha256 of the bytes, their ledger)
        self._journal: Any = None  # a TradeStore following a journal-format log (never writes)
        self._seen: tuple[tuple[int, int], int, str] | None = None  # journal identity, bytes read, their sha256
        self._digest: tuple[bytes, str] | None = None  # the last bytes read and their sha256

    def sha_of(self, data: bytes) -> str:
        """The sha256 of ``data``, not computed again when they are the bytes last read."""
        if self._digest is None or self._digest[0] is not data:
            self._digest = (data, hashlib.sha256(data).hexdigest())
        return self._digest[1]

    def read(self) -> tuple[bytes, Ledger]:
        store = self._journal
        if store is not None and store.trade_log != logfile.resolve(self.path):
            self._forget_journal()  # the path names another log now (a symlink was swapped)
        if self._journal is None:
            try:
                return self._read_document()
            except journal.LockNeeded:
                pass
        return self._read_journal()

    def _forget_journal(self) -> None:
        if self._journal is not None:
            self._journal._set_cache(None)  # closes the files it kept open
        self._journal, self._seen = None, None

    def _read_journal(self) -> tuple[bytes, Ledger]:
        if self._journal is None:
            from .store import TradeStore  # the store's reading and following rules, not a copy

            self._journal = TradeStore(self.path)
        store = self._journal
        try:
            store._check_paths()  # what a new store checks, every time
            for first in (True, False):
                with store._snapshot() as ledger:
                    version = store._cache
                if version is None or not version.journal_format or self._unchanged(version) or not first:
                    break
                store._set_cache(None)  # what was followed changed on disk: read it all again
        except BaseException:
            self._forget_journal()
            raise
        if version is None or not version.journal_format:
            # a document now (converted back), maybe beside a leftover journal: read it as one
            self._forget_journal()
            with FileLock(logfile.lock_path(self.path)):
                return self._read_document(locked=True)
        self._document = None
        return ledger.to_json(), ledger

    def _unchanged(self, version: Any) -> bool:
        """The checkpoint still hashes as the one followed, and the journal still begins with
        every byte read from it before (torn tail included); remembers what it holds now."""
        if hashlib.sha256(logfile.read_from(version.handle.fileno())).hexdigest() != version.checkpoint_sha:
            return False
        data = logfile.read_from(version.journal.handle.fileno())
        seen, self._seen = self._seen, None
        if seen is not None and seen[0] == version.journal.identity:
            _, size, sha = seen
            digest = hashlib.sha256(data[:size])
            if len(data) < size or digest.hexdigest() != sha:
                return False
            digest.update(data[size:])
        else:  # a journal not read here before: the store has just read all of it
            digest = hashlib.sha256(data)
        self._seen = (version.journal.identity, len(data), digest.hexdigest())
        return True

    def _read_document(self, *, locked: bool = False) -> tuple[bytes, Ledger]:
        resolved = logfile.resolve(self.path)
        handle = logfile.open_log(self.path)
        beside = os.path.lexists(journal.journal_path(resolved))
        if handle is None and not beside:
            raise FileNotFoundError(errno.ENOENT, "trade log not found", self.path)
        data = None
        if handle is not None:
            with handle as f:
                data = f.read()
        sha = self.sha_of(data) if data is not None else None
        if not beside and sha is not None and self._document is not None and self._document[0] == sha:
            return data, self._document[1]
        self._document = None
        loaded = journal.load(resolved, data, locked=locked)
        if loaded.journal is not None:
            loaded.journal.close()
        if data is None or loaded.journal_format:
            return loaded.ledger.to_json(), loaded.ledger
        self._document = (sha, loaded.ledger)
        return data, loaded.ledger


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Run a cycle without the cyclic garbage collector (restored after, as it was).

    The parsed log is millions of containers, all young when the parse returns (it runs with
    the collector paused); each collection the derivation's allocations then trigger walks
    them: at 100,000 trades that doubled the derivation's time. Nothing a cycle builds holds a
    reference cycle, so reference counting frees all of it.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _version(data: bytes, ledger: Ledger, follower: LogFollower | None = None) -> LogVersion:
    """The version ``data`` is (its hash: the one the follower computed if it read these bytes)."""
    sha = follower.sha_of(data) if follower is not None else hashlib.sha256(data).hexdigest()
    return LogVersion(sha, len(ledger.trades), ledger.next_id)


def _read_json(path: str) -> tuple[str, Any]:
    """('ok', doc) or ('missing' | 'unreadable', None)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return "missing", None
    except OSError:
        return "unreadable", None
    try:
        return "ok", loads_strict(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "unreadable", None


def _version_of(doc: Any) -> LogVersion | None:
    """The ``source`` a guard record or derived file claims, if well formed."""
    if not isinstance(doc, dict):
        return None
    meta = doc.get(META)
    src = meta.get("source") if isinstance(meta, dict) else doc.get("source")
    if not isinstance(src, dict):
        return None
    count, next_id, sha = src.get("trade_count"), src.get("next_id"), src.get("sha256")
    for v in (count, next_id):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            return None
    if not isinstance(sha, str):
        return None
    return LogVersion(sha, count, next_id)


def _memory(outputs: Mapping[str, tuple[str, Any]]) -> GuardMemory | None:
    """Second largest count and next_id over the readable copies; None if there are none.

    The second largest, because one damaged copy may claim anything: with two or more copies
    a single forged high value is outvoted, and a single lost or low one changes nothing.
    """
    versions = [v for v in (_version_of(doc) for status, doc in outputs.values() if status == "ok") if v]
    if not versions:
        return None
    return GuardMemory(
        trade_count=_second_largest([v.trade_count for v in versions]),
        next_id=_second_largest([v.next_id for v in versions]),
        copies=len(versions),
    )


def _second_largest(values: list[int]) -> int:
    ordered = sorted(values, reverse=True)
    return ordered[1] if len(ordered) > 1 else ordered[0]


def _comparable(doc: Any) -> Any:
    """The document without its generation time, which is the only field allowed to differ."""
    if not isinstance(doc, dict):
        return doc
    doc = copy.copy(doc)
    doc.pop("last_updated", None)
    doc.pop("generated_at", None)  # the guard record keeps its time at the top level
    if isinstance(doc.get(META), dict):
        doc[META] = {k: v for k, v in doc[META].items() if k != "generated_at"}
    return doc


def _encode(doc: Mapping[str, Any]) -> bytes:
    return (json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


# --------------------------------------------------------------------------- the reconciler


class StateReconciler:
    """Rebuilds ``portfolio.json``, ``equity.json``, ``risk_state.json`` and
    ``setup_performance.json`` in ``output_dir`` from ``trade_log``, which it never writes.

    ``corruption_threshold``: abort when the trade count falls by more than this fraction of
    the last good count (0.5: a drop to less than half aborts). ``on_corruption(info)`` is
    called with a dict (reason, trade_log, observed, remembered) when the guard aborts;
    ``on_invariant_violation(messages)`` when the derived files disagree with each other (the
    files are still written: they reflect the log, which is the truth). ``clock()`` returns
    the current time (aware datetime); only its UTC date affects the derived values.

    A file the reconciler writes that is also the log, its backup or its lock file (same path,
    symlink or hard link: e.g. a log named ``portfolio.json`` in the output directory) raises
    UnsafePath here, and again before any cycle writes, so a report can never replace the log.
    A lost log (missing, backup present) aborts the cycle exactly when the store refuses it.
    """

    def __init__(
        self,
        trade_log: str | os.PathLike[str],
        output_dir: str | os.PathLike[str] = "./state/",
        *,
        limits: RiskLimits | None = None,
        corruption_threshold: float = 0.5,
        on_corruption: Callable[[dict[str, Any]], Any] | None = None,
        on_invariant_violation: Callable[[list[str]], Any] | None = None,
        clock: Callable[[], datetime] | None = None,
        fsync: bool = True,
        **limit_options: Any,
    ) -> None:
        threshold = limit_number("corruption_threshold", corruption_threshold, at_most=1.0)  # a fraction
        # A store that is not one file (a PgTradeStore) is read through its export_document(),
        # the FORMAT.md document; its name stands for the path in messages and the guard file.
        self._source = trade_log if hasattr(trade_log, "export_document") else None
        self.trade_log = trade_log.name if self._source is not None else os.fspath(trade_log)
        self.output_dir = os.fspath(output_dir)
        self.limits = RiskLimits.from_options(limits, **limit_options)
        self.corruption_threshold = threshold
        self.on_corruption = on_corruption
        self.on_invariant_violation = on_invariant_violation
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.fsync = fsync
        self._integrity_cache: tuple[str, list[str]] | None = None  # (log sha256, violations)
        self._follower = LogFollower(self.trade_log) if self._source is None else None
        self._check_outputs()

    # ----------------------------------------------------------------- public

    def path(self, name: str) -> str:
        return os.path.join(self.output_dir, name)

    def remembered(self) -> GuardMemory | None:
        """The guard's memory: second largest count and next_id over the readable copies."""
        return _memory(self._read_outputs())

    def _check_outputs(self) -> None:
        """Refuse output names that are (by any route) the log, its backup or its lock file."""
        for name in (GUARD_FILE, *derive.FILES):
            logfile.check_not_log_file(self.path(name), self.trade_log, "derived file")

    def _read_log(self) -> tuple[bytes, Ledger]:
        if self._source is not None:
            data = self._source.export_document()
            return data, Ledger.from_json(data, self.trade_log)
        return read_log(self.trade_log, self._follower)

    def _read_outputs(self) -> dict[str, tuple[str, Any]]:
        return {name: _read_json(self.path(name)) for name in (GUARD_FILE, *derive.FILES)}

    def build(self, now: datetime | None = None) -> tuple[LogVersion, dict[str, dict[str, Any]]]:
        """Read the log and derive every file with its header, writing nothing.

        Raises FileNotFoundError or CorruptTradeLog when the log cannot be read.
        """
        data, ledger = self._read_log()
        return self._build(data, ledger, now or self.clock())

    def verify(self) -> dict[str, str]:
        """Derived files that differ from a fresh rebuild: name -> missing/unreadable/different.

        Ignores only the generation time. Raises CorruptTradeLog when the log is unreadable.
        """
        try:
            _, docs = self.build()
        except FileNotFoundError:
            raise CorruptTradeLog(f"{self.trade_log}: trade log not found") from None
        problems = {}
        for name, fresh in docs.items():
            status, existing = _read_json(self.path(name))
            if status != "ok":
                problems[name] = status
            elif _comparable(existing) != _comparable(fresh):
                problems[name] = "different"
        return problems

    def reconcile(self) -> ReconcileResult:
        """One cycle: read, guard, derive, heal. See the module docstring for guarantees."""
        started = time.perf_counter()
        with _collector_paused():
            result = self._reconcile()
        result.elapsed_s = time.perf_counter() - started
        return result

    # ----------------------------------------------------------------- the cycle

    def _reconcile(self) -> ReconcileResult:
        outputs = self._read_outputs()  # read once: the guard's memory and the heal check
        memory = _memory(outputs)
        try:
            data, ledger = self._read_log()
        except FileNotFoundError:
            if memory is not None and memory.trade_count > 0:
                return self._abort("trade log not found", memory, None)
            data, ledger = b"", Ledger()  # a new account: nothing to lose yet
        except (CorruptTradeLog, UnsafePath, OSError) as exc:
            return self._abort(f"trade log unreadable: {exc}", memory, None)
        version = _version(data, ledger, self._follower)
        reason = self._guard(version, memory)
        if reason is not None:
            return self._abort(reason, memory, version)

        now = self.clock()
        _, docs = self._build(data, ledger, now, version)
        result = ReconcileResult(source=version)
        self._check_outputs()  # links may have been made since construction
        os.makedirs(self.output_dir, exist_ok=True)
        self._sweep_strays()
        for name, fresh in docs.items():
            self._write(name, fresh, version, outputs[name], result)
        guard = {"format": FORMAT, "trade_log": self.trade_log if self._source else os.path.abspath(self.trade_log),
                 "source": version.as_dict(), "generated_at": now.isoformat()}
        self._write(GUARD_FILE, guard, version, outputs[GUARD_FILE], result)
        if result.healed:
            log.warning("healed %s", ", ".join(f"{n} ({w})" for n, w in result.healed.items()))
        result.violations = self._log_violations(ledger, version) + derived_violations(docs, self.limits)
        if result.violations:
            log.error("invariant violations: %s", "; ".join(result.violations))
            if self.on_invariant_violation is not None:
                self._call(self.on_invariant_violation, list(result.violations))
        return result

    def _guard(self, version: LogVersion, memory: GuardMemory | None) -> str | None:
        if memory is None:
            return None
        if memory.trade_count > 0:
            drop = (memory.trade_count - version.trade_count) / memory.trade_count
            if drop > self.corruption_threshold:
                return (f"trade count fell from {memory.trade_count} to {version.trade_count} "
                        f"({drop:.0%} > {self.corruption_threshold:.0%} threshold)")
        if version.next_id < memory.next_id:
            return f"next_id went backwards from {memory.next_id} to {version.next_id}"
        return None

    def _abort(self, reason: str, memory: GuardMemory | None, seen: LogVersion | None) -> ReconcileResult:
        log.critical("reconcile aborted, nothing written: %s (trade log %s)", reason, self.trade_log)
        if self.on_corruption is not None:
            self._call(self.on_corruption, {
                "reason": reason,
                "trade_log": self.trade_log,
                "observed": seen.as_dict() if seen else None,
                "remembered": (
                    {"trade_count": memory.trade_count, "next_id": memory.next_id, "copies": memory.copies}
                    if memory else None
                ),
            })
        return ReconcileResult(aborted=True, reason=reason, source=seen)

    def _build(self, data: bytes, ledger: Ledger, now: datetime,
               version: LogVersion | None = None) -> tuple[LogVersion, dict[str, dict[str, Any]]]:
        version = version or _version(data, ledger)
        now = utc(now)
        docs = derive.derive_all(ledger, now, self.limits)
        # What the files depend on besides the log: the UTC date, and the time itself only
        # when a loss-cap cooldown can lift a block at any moment of the day.
        as_of = now.date().isoformat() if self.limits.loss_cap_cooldown_hours is None else now.isoformat()
        for name, body in docs.items():
            body[META] = {"format": FORMAT, "file": name, "source": version.as_dict(),
                          "as_of": as_of, "generated_at": now.isoformat()}
        return version, docs

    def _write(self, name: str, fresh: dict[str, Any], version: LogVersion, before: tuple[str, Any],
               result: ReconcileResult) -> None:
        path = self.path(name)
        status, existing = before
        data = _encode(fresh)
        if status != "ok":
            result.healed[name] = status
        elif _comparable(existing) != _comparable(fresh):  # fresh holds only JSON types: equal as parsed
            claimed = _version_of(existing)
            meta = existing.get(META)
            same_date = name == GUARD_FILE or (
                isinstance(meta, dict) and meta.get("as_of") == fresh[META]["as_of"])
            # Damage: no valid header; or built from these very log bytes on this date yet not
            # equal to the rebuild; or claiming a log newer than the one on disk. Otherwise the
            # file is merely stale (an older log or an earlier date), which is no damage.
            if (claimed is None
                    or (claimed.sha256 == version.sha256 and (same_date or claimed != version))
                    or claimed.trade_count > version.trade_count or claimed.next_id > version.next_id):
                result.healed[name] = "different"
            else:
                result.updated.append(name)
        write_atomic(path, data, fsync=self.fsync)
        result.written.append(name)

    def _log_violations(self, ledger: Ledger, version: LogVersion) -> list[str]:
        # The whole-log integrity scan is a third of a cycle; a loop re-reading an unchanged
        # log gets the same answer, so it is kept per log hash.
        cached = self._integrity_cache
        if cached is None or cached[0] != version.sha256:
            cached = (version.sha256, ledger_violations(ledger))
            self._integrity_cache = cached
        return list(cached[1])

    def _sweep_strays(self) -> None:
        """Remove temp files of reconcilers that died mid-write (old enough to be no one's)."""
        for name in (GUARD_FILE, *derive.FILES):
            sweep_stray_temps(self.path(name), older_than=STRAY_TEMP_AGE_S)

    @staticmethod
    def _call(callback: Callable[..., Any], arg: Any) -> None:
        # an alerting hook that fails (network down) must not stop the cycle's report
        try:
            callback(arg)
        except Exception:
            log.exception("callback %r failed", callback)


def derived_violations(docs: Mapping[str, Mapping[str, Any]], limits: RiskLimits) -> list[str]:
    """Disagreements between the four derived documents of one build (empty when consistent)."""
    p, e, r, s = (docs[n] for n in derive.FILES)
    out = []
    equities = {"portfolio.current_equity": p["current_equity"], "portfolio.balance": p["balance"],
                "equity.current_equity": e["current_equity"], "risk_state.current_value": r["current_value"]}
    if len(set(equities.values())) != 1:
        out.append(f"current equity disagrees across files: {equities}")
    expected = round(limits.starting_capital + p["realized_pnl"], 8)
    if abs(p["current_equity"] - expected) > 1e-6:
        out.append(f"equity {p['current_equity']} != starting capital + realized P&L {expected}")
    if p["winning_trades"] + p["losing_trades"] != p["total_trades"]:
        out.append("winning_trades + losing_trades != total_trades")
    if s["total_closed"] != p["total_trades"] or sum(v["total_trades"] for v in s["setups"].values()) != s["total_closed"]:
        out.append("setup_performance totals disagree with portfolio total_trades")
    for key, value in (("drawdown_percent", e["drawdown_percent"]), ("max_drawdown_pct", e["max_drawdown_pct"])):
        if value > 0:
            out.append(f"equity.{key} = {value} is positive")
    if e["max_drawdown_pct"] > e["drawdown_percent"]:
        out.append("max drawdown is smaller than the current drawdown")
    return out
