"""Checkers of the file-system scenarios: pure functions from what was observed to what failed.

The crash-points, io-errors, power-loss and log-replaced scenarios run a store under a fault,
then write down what happened as one observation (a frozen dataclass below): the history of
the run (which operations were acknowledged, which were cut off), the states the recording
says are allowed, and what a fresh store found on the disk afterwards. The functions here turn
an observation into ``(property, detail)`` findings, exactly like :mod:`tradestore_harness.checkers`
does for the process scenarios; they touch no file and no process, so a hand-made observation
is enough to prove each one can fail (``tests/test_fscheckers.py``).

States are lists of normalised trades (time fields dropped, see
:func:`tradestore_harness.fsworkload.normalise`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

Finding = tuple[str, str]

# An injected failure of these kinds must reach the caller: after a failed fsync the kernel
# may have dropped the dirty pages, so a store that carries on (or retries into a "success")
# acknowledges data that may be gone, and no file shows it. Every other failure (a write, a
# rename, an open, a close) either leaves its trace in the files, which the state checks see,
# or is harmless when retried (a short write, EINTR, shutil falling back from sendfile).
# One exception: a sync that fails after the operation's result is already on disk (every
# power-cut state right before it holds the result), such as a journal's checkpoint after an
# fsynced record; the ok answer is then true whatever that sync did. So is one whose result is
# on disk when it comes, in every power-cut state of a model that keeps the pages dirty at a
# failed fsync off the disk until they are written again (the store wrote the data again and
# synced that, not merely retried the fsync): FaultedStep.on_disk covers both.
MUST_SURFACE = frozenset({"fsync", "fdatasync", "dirfsync"})


def describe_loss(acked: list, found: list | None) -> list[str]:
    """Trades of the acknowledged state that ``found`` lacks or holds in another version."""
    found_by_id = {t.get("id"): t for t in (found or [])}
    lost = []
    for trade in acked:
        have = found_by_id.get(trade.get("id"))
        if have != trade:
            what = "missing" if have is None else "older version"
            lost.append(f"{trade.get('id')} {trade.get('symbol')} {trade.get('status')} ({what})")
    return lost


@dataclass(frozen=True)
class Recovery:
    """What a fresh store found after a crash (crash-points) or a power cut (power-loss).

    ``acked``: the state every acknowledged operation implies; ``allowed``: the states that are
    right (before or after the operation in flight); ``found``: the trades read, or None with
    ``unreadable`` saying why; ``derived``: what one reconcile left wrong (None: healed, or no
    reconcile was due); ``probe``: why one more open failed (None: it worked);
    ``probe_changed``: that open changed other trades; ``unreadable_prop``: the property an
    unreadable log violates (``log-parses``, or ``replay-exact`` when the files hold a valid
    state that the fresh store read differently).
    """

    where: str
    acked: list
    allowed: list
    found: list | None
    unreadable: str | None = None
    derived: str | None = None
    probe: str | None = None
    probe_changed: bool = False
    unreadable_prop: str = "log-parses"


def check_recovery(r: Recovery) -> list[Finding]:
    """log-parses, replay-exact, ack-durable, state-before-or-after, derived-heals, recovers-writable."""
    if r.found is None:
        lost = describe_loss(r.acked, None)
        return [(r.unreadable_prop, f"{r.where}: {r.unreadable}; acknowledged trades unreadable: {', '.join(lost)}")]
    found: list[Finding] = []
    if r.found not in r.allowed:
        lost = describe_loss(r.acked, r.found)
        if lost:
            found.append(("ack-durable", f"{r.where}: lost {', '.join(lost)}"))
        else:
            found.append(("state-before-or-after", f"{r.where}: recovered {len(r.found)} trades, neither "
                                                   f"the state before nor after the interrupted operation"))
    if r.derived is not None:
        found.append(("derived-heals", f"{r.where}: {r.derived}"))
    if r.probe is not None:
        found.append(("recovers-writable", f"{r.where}: the next open after recovery failed: {r.probe}"))
    elif r.probe_changed:
        found.append(("recovers-writable", f"{r.where}: the open after recovery changed other trades"))
    return found


@dataclass(frozen=True)
class PointReached:
    """Whether a run under a fault at call ``index`` met the call the recording had there.

    ``expected``: the kind recorded at that index; ``met``: the kind the run met there (None:
    it never got that far).
    """

    where: str
    expected: str
    met: str | None


def check_point_reached(p: PointReached) -> list[Finding]:
    """calls-repeatable: a fault point tests what it claims only if the run makes the same calls.

    A store whose file-system calls differ between two runs of the same work from the same
    files leaves this point untested; that is reported, never passed over.
    """
    if p.met is None:
        return [("calls-repeatable", f"{p.where}: the run never reached the fault point (it made fewer "
                                     f"file-system calls than the recording), so the point was not tested")]
    if p.met != p.expected:
        return [("calls-repeatable", f"{p.where}: the recording had {p.expected} at this index, the run met "
                                     f"{p.met}: the store's calls differ from run to run, so the point was "
                                     f"not tested where it was meant")]
    return []


@dataclass(frozen=True)
class FaultedStep:
    """One operation of an io-errors run, and the files after it.

    ``outcome``: "ok" or "fail"; ``record``: the normalised record an ok call returned;
    ``failed``: kinds of injected failures the call met that must reach the caller
    (:data:`MUST_SURFACE`, not the lock file's); ``faulted``: any fault hit it;
    ``before``/``after``: the trades before and after it; ``recorded``: (before, after) of this
    operation in the fault-free recording, or None when the run already left the recorded
    path; ``target``: the trade id a close/partial/update addressed (None for an open);
    ``on_disk``: every disk a power cut right before the first failed sync could leave
    already held ``after`` (the failed sync came after the write was on disk, e.g. in a
    journal's checkpoint that follows an fsynced record), or every disk a power cut right after
    the ok answer could leave holds it (the data was written again into a new file and synced);
    the ok answer is then true.
    """

    where: str
    kind: str
    outcome: str
    record: dict | None
    failed: frozenset
    faulted: bool
    before: list
    after: list
    recorded: tuple | None
    target: str | None = None
    on_disk: bool = False


def check_faulted_step(s: FaultedStep) -> list[Finding]:
    """fault-surfaced, ack-durable, state-before-or-after for one operation under a fault."""
    found: list[Finding] = []
    if s.kind == "reconcile":
        if s.after != s.before:
            found.append(("state-before-or-after", f"{s.where}: a reconcile changed the trade log"))
        if s.outcome == "ok" and s.failed:
            found.append(("fault-surfaced", f"{s.where}: reported ok although {sorted(s.failed)} failed"))
        return found
    if s.outcome == "ok":
        if s.failed and not s.on_disk:
            found.append(("fault-surfaced", f"{s.where}: returned ok although {sorted(s.failed)} failed"))
        record = s.record or {}
        stored = next((t for t in s.after if t.get("id") == record.get("id")), None)
        if stored != record:
            found.append(("ack-durable", f"{s.where}: acknowledged {record.get('id')} {record.get('symbol')} "
                                         f"is {'missing' if stored is None else 'stored differently'}"))
        lost = [t for t in describe_loss(s.before, s.after) if not t.startswith(f"{record.get('id')} ")]
        if lost:
            found.append(("ack-durable", f"{s.where}: other trades changed or lost: {', '.join(lost)}"))
        return found
    if not s.faulted:  # a plain rejection (e.g. of the trade an earlier failed op would have opened)
        if s.after != s.before:
            found.append(("state-before-or-after", f"{s.where}: a rejected operation changed the log"))
        return found
    if s.recorded is not None and s.before == s.recorded[0]:  # on the recorded path: both answers known
        if s.after not in s.recorded:
            lost = describe_loss(s.before, s.after)
            found.append(("ack-durable" if lost else "state-before-or-after",
                          f"{s.where}: neither before nor after" + (f"; lost {', '.join(lost)}" if lost else "")))
        return found
    changed = [t for t in describe_loss(s.before, s.after) if s.target is None or not t.startswith(f"{s.target} ")]
    added = len(s.after) - len(s.before)
    if changed or added > (1 if s.kind == "open" else 0):
        found.append(("state-before-or-after", f"{s.where}: the failed operation changed other trades: {changed}"))
    return found


@dataclass(frozen=True)
class AfterFault:
    """The same store's next call once the fault cleared (io-errors).

    ``problem``: why the probe open failed (None: it worked); ``before``/``after``: the trades
    before and after it; ``probe_symbol``: the symbol it opened; ``derived``: what one
    reconcile left wrong afterwards (None: healed or not due); ``stopped``: an operation under
    the fault raised StoreStopped (the store could not cut off a write it had not acknowledged,
    and stops, keeping the lock, rather than let another process take that write as committed:
    its every later call must raise StoreStopped too; a new process recovers, judged apart).
    """

    where: str
    problem: str | None
    before: list
    after: list = field(default_factory=list)
    probe_symbol: str = "PROBE"
    derived: str | None = None
    stopped: bool = False


def check_after_fault(a: AfterFault) -> list[Finding]:
    """next-call-succeeds and derived-heals once the disk is healthy again."""
    if a.stopped:
        if a.problem is not None and a.problem.startswith("StoreStopped"):
            return []
        return [("next-call-succeeds", f"{a.where}: the store stopped, but once the fault cleared its next call "
                                       f"{'succeeded' if a.problem is None else 'raised ' + a.problem} instead of "
                                       "raising StoreStopped")]
    if a.problem is not None:
        return [("next-call-succeeds", f"{a.where}: the open after the fault cleared failed: {a.problem}")]
    found: list[Finding] = []
    if a.after[:-1] != a.before or not a.after or a.after[-1].get("symbol") != a.probe_symbol:
        found.append(("next-call-succeeds", f"{a.where}: the open after the fault cleared also changed "
                                            f"{describe_loss(a.before, a.after[:-1]) or 'the trade list'}"))
    if a.derived is not None:
        found.append(("derived-heals", f"{a.where}: after the fault cleared one reconcile left {a.derived}"))
    return found


@dataclass(frozen=True)
class Observability:
    """Whether the interposition layer saw every write of a recorded run.

    ``unseen``: files whose real content differs from what the seen calls produce.
    """

    unseen: tuple = ()


def not_observable(o: Observability) -> str | None:
    """The reason a file-system scenario cannot judge this store, or None if it can.

    Not a failure: the store may be correct; these scenarios just cannot see how it writes.
    """
    if not o.unseen:
        return None
    return (f"the store changed {', '.join(o.unseen)} through something the harness's file-system layer does "
            f"not see (not os, io, open(), os.fdopen, tempfile, pathlib or shutil: e.g. mmap or a C library), "
            f"so its crash and power-cut states cannot be built")
