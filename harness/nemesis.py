"""Nemesis: the faults a scenario injects from outside the workers.

SIGKILL of a worker process (the kernel then releases its lock; its page-cache writes stay),
and damage to files on disk: derived files damaged five ways, the trade log torn, emptied or
overwritten with garbage. Every choice is taken from the random generator passed in, so a
seed replays the same faults.
"""

from __future__ import annotations

import json
import os
import random
import signal

from tradestore_harness.history import HistoryWriter

DERIVED_DAMAGE = ("delete", "truncate", "garbage", "empty", "forged")
LOG_DAMAGE = ("torn", "emptied", "garbage")
# Damage that still parses: only the reconciler's guard can tell. ``shrunk`` keeps a quarter of
# the trades (a fall beyond the guard's threshold); ``next-id-back`` drops the last trade and
# moves next_id back onto its id (a small fall that only the guard's memory of next_id catches).
LOG_DAMAGE_PARSEABLE = ("shrunk", "next-id-back")
# Damage to a journal-format log's journal (``<log>.journal``). Refused, like a damaged log: a
# bit flipped in a frame that has frames after it, or the journal deleted beside its schema-3
# checkpoint. Ignored, as a write that was never acknowledged: a torn last frame (the first
# bytes of one more record, as a crash in the middle of an append leaves), or a digit changed
# in the last record (its checksum fails, its JSON still parses: it looks torn, and the
# promise is that exactly this one write is dropped).
JOURNAL_DAMAGE = ("journal-bad-frame", "journal-missing")
JOURNAL_TAIL_DAMAGE = ("journal-torn-tail", "journal-flipped-tail")


def kill(process, history: HistoryWriter, why: str = "random moment") -> None:
    """SIGKILL ``process`` (a multiprocess Process), record it, and wait until it is gone."""
    pid = process.pid
    # Recorded before the signal: until this moment the victim was certainly alive, so a
    # lock it held counts as held up to here and no later (the kernel frees it at death).
    history.record("kill", target_pid=pid, why=why)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it finished on its own just now
    process.join()


def damage_file(path: str, how: str, r: random.Random) -> None:
    """Damage ``path`` in one of :data:`DERIVED_DAMAGE`, :data:`LOG_DAMAGE` or
    :data:`LOG_DAMAGE_PARSEABLE` ways (the last two need a trade log that parses).

    ``forged`` leaves valid JSON with wrong content (a silently drifted file), the hardest
    damage to notice; ``torn`` keeps a random proper prefix (a crash mid-write in place).
    """
    if how == "delete":
        if os.path.exists(path):
            os.unlink(path)
        return
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        data = b""
    if how in LOG_DAMAGE_PARSEABLE:
        doc = json.loads(data)
        trades = doc["trades"]
        if how == "shrunk":
            doc["trades"] = trades[: max(1, len(trades) // 4)]
        else:
            doc["trades"] = trades[:-1]
            doc["next_id"] = int(str(trades[-1]["id"]).lstrip("T"))
        new = json.dumps(doc).encode()
    elif how in ("truncate", "torn"):
        new = data[: r.randrange(1, max(2, len(data) - 1))] if len(data) > 2 else b"{"
    elif how in ("empty", "emptied"):
        new = b""
    elif how == "garbage":
        new = bytes(r.randrange(256) for _ in range(max(16, len(data) // 2)))
    elif how == "forged":
        try:
            doc = json.loads(data)
        except ValueError:
            doc = {}
        doc = doc if isinstance(doc, dict) else {}
        doc["balance"] = 1e9
        doc["forged_by_chaos"] = r.randrange(1 << 30)
        new = json.dumps(doc).encode()
    else:
        raise ValueError(f"unknown damage {how!r}")
    # Written in place on purpose: this is the damage, not a write the store would make.
    with open(path, "wb") as handle:
        handle.write(new)


def damage_journal(path: str, how: str, r: random.Random) -> None:
    """Damage the journal ``path`` in one of :data:`JOURNAL_DAMAGE` or :data:`JOURNAL_TAIL_DAMAGE`
    ways (frames found by the harness's own reader; at least one record is needed)."""
    from tradestore_harness import journal_reader

    if how == "journal-missing":
        os.unlink(path)
        return
    with open(path, "rb") as handle:
        data = bytearray(handle.read())
    frames = journal_reader.scan(bytes(data)).frames
    if len(frames) < 2:
        raise ValueError(f"{path} holds no record to damage")
    if how == "journal-bad-frame":
        frame = r.choice(frames[:-1])
        at = r.randrange(frame.start, frame.end)
        data[at] ^= 1 << r.randrange(8)
    elif how == "journal-torn-tail":
        last = frames[-1].payload
        following = journal_reader.encode_frame({**last, "seq": last.get("seq", 0) + 1})
        data += following[:r.randrange(1, len(following))]
    elif how == "journal-flipped-tail":
        last = frames[-1]
        digits = [i for i in range(last.start + journal_reader.FRAME_HEADER, last.end) if chr(data[i]).isdigit()]
        at = r.choice(digits)
        data[at] = ord(r.choice([d for d in "0123456789" if d != chr(data[at])]))
    else:
        raise ValueError(f"unknown journal damage {how!r}")
    # Written in place on purpose: this is the damage, not a write the store would make.
    with open(path, "wb") as handle:
        handle.write(data)
