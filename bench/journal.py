"""The journal format in the benchmark (``tradestore-journal``): availability, seeding, checkpoints.

A ``tradestore-journal`` cell runs ``TradeStore(path, log_format="journal")`` on a history
built as a document (:mod:`bench.history`) and converted with the library's own conversion,
so seeding 100,000 trades costs one conversion and not 100,000 writes.

The journal's worst write is the one that pays for a checkpoint (the journal outgrew the
checkpoint: the whole document is written again). A cell starting right after a conversion
never reaches one, so each journal cell also runs once on a copy whose journal has been filled
(:func:`fill_to_checkpoint`) to just under that threshold: its first or second write
checkpoints, and :func:`checkpointed` tells the run whether one happened.

Every function here uses only the library's public contract of the format (``docs/FORMAT.md``
and ``tradestore.journal``'s frame encoder); none changes what the library writes.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile

__all__ = ["unavailable", "convert", "fill_to_checkpoint", "checkpointed", "journal_size", "threshold",
           "count_trades"]


@functools.lru_cache(maxsize=None)
def unavailable() -> str | None:
    """Why the journal format cannot be measured with this tradestore, or None if it can."""
    try:
        from tradestore import journal
    except ImportError as exc:
        return f"tradestore has no journal module ({exc})"
    missing = [name for name in ("encode_frame", "journal_path", "CHECKPOINT_MIN_BYTES", "MARKER")
               if not hasattr(journal, name)]
    if missing:
        return f"tradestore.journal has no {', '.join(missing)}"
    from tradestore import TradeStore

    if not hasattr(TradeStore, "convert"):
        return "TradeStore has no convert()"

    with tempfile.TemporaryDirectory(prefix="tradestore-bench-probe-") as d:
        try:
            TradeStore(os.path.join(d, "trades.json"), log_format="journal")
        except TypeError as exc:
            return f"TradeStore does not accept log_format ({exc})"
    return None


def convert(path: str) -> None:
    """Convert the document-format log at ``path`` to the journal format, in place."""
    from tradestore import TradeStore

    TradeStore(path).convert("journal")


def journal_size(path: str) -> int:
    """Bytes of the journal of the journal-format log ``path``."""
    from tradestore import journal

    return os.path.getsize(journal.journal_path(path))


def threshold(path: str) -> int:
    """The journal size past which the next write checkpoints (``docs/FORMAT.md``)."""
    from tradestore import journal

    return max(journal.CHECKPOINT_MIN_BYTES, os.path.getsize(path))


def fill_to_checkpoint(path: str) -> int:
    """Append records to the journal of the converted log ``path`` (no writer running) until it
    is one record short of its checkpoint threshold; returns the number of records appended.

    Each record restates one of the checkpoint's own trades unchanged (a record replaces the
    trade with its id), so the log's state does not change, and a run on the copy must still
    find exactly the history plus its own opens. The records are built with the library's frame
    encoder and numbered after the journal's last one.
    """
    from tradestore import journal

    with open(path, "rb") as f:
        doc = json.loads(f.read())
    trades = doc["trades"]
    limit = threshold(path)
    jpath = journal.journal_path(path)
    with open(jpath, "rb") as f:
        records = list(_records(f.read()))
    next_id = records[-1]["next_id"] if records else doc["next_id"]
    end = os.path.getsize(jpath)
    frames, seq = [], len(records)
    while True:
        frame = journal.encode_frame({"seq": seq + 1, "next_id": next_id,
                                      "trades": [trades[len(frames) % len(trades)]]})
        if end + len(frame) > limit:
            break  # one more record of this size and the journal outgrows the checkpoint
        frames.append(frame)
        end += len(frame)
        seq += 1
    with open(jpath, "ab") as f:
        f.write(b"".join(frames))
        f.flush()
        os.fsync(f.fileno())
    return len(frames)


def checkpointed(path: str) -> bool:
    """True if the checkpoint of ``path`` folds in a journal: a checkpoint was written since
    the conversion (which leaves ``"journal": {"folds": null, ...}``)."""
    from tradestore import journal

    with open(path, "rb") as f:
        marker = json.loads(f.read()).get(journal.MARKER) or {}
    return marker.get("folds") is not None


def _records(data: bytes):
    """The record payloads of journal bytes ``data``, read directly by the framing of
    ``docs/FORMAT.md`` (a u32 length, two u32 checksums, the payload; frame 0 is the header),
    up to the last whole frame. Checksums are not verified: the benchmark reads back journals
    its own run wrote and only counts what they hold."""
    pos, frame = 0, 0
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        if pos + 12 + length > len(data):
            break  # a torn last frame: not acknowledged
        if frame:
            yield json.loads(data[pos + 12:pos + 12 + length])
        pos, frame = pos + 12 + length, frame + 1


def count_trades(path: str) -> int:
    """Trades in the journal-format log ``path``, read directly (not through a store): the
    distinct ids of the checkpoint and of the journal's records (a record restates a trade
    whole, so a trade written twice counts once)."""
    from tradestore import journal

    with open(path, "rb") as f:
        ids = {t["id"] for t in json.loads(f.read())["trades"]}
    with open(journal.journal_path(path), "rb") as f:
        for record in _records(f.read()):
            ids.update(t["id"] for t in record["trades"])
    return len(ids)
