"""The trade log's bytes, kept between writes, so that a write encodes only what it changed.

:class:`DocumentEncoding` turns a document head and its list of trade records into buffers
whose concatenation is byte for byte ``json.dumps(document, separators=(",", ":"),
allow_nan=False)``, where ``document`` is the head's keys followed by ``"trades"``. It keeps:

- the JSON of every CLOSED record it encoded (no operation changes a CLOSED record: each one
  needs an OPEN trade), keyed by the record object, not its id, so that a damaged log with a
  repeated id cannot mix two records up;
- *sealed blocks*: the joined JSON of :data:`BLOCK_RECORDS` consecutive list positions whose
  records are all CLOSED. A write reuses a sealed block as one buffer and walks only the
  records of blocks that are not sealed (the ones holding an OPEN trade, and the last, still
  filling), so its Python work is a loop over blocks plus the open and newest records, and no
  buffer holding the whole document is built unless the caller joins the parts.

What it relies on, and how each assumption is guarded: records change only through an owner
that calls :meth:`forget` for a record before the next encoding (the :class:`Ledger`
operations and its merge do, through ``Ledger._touch``); the list changes only by appending.
A sealed block whose first or last position no longer holds the record it sealed (the list
was edited some other way) is dropped and re-encoded. Every record is encoded with
``allow_nan=False`` before it is kept, so NaN and Infinity raise ValueError as ``json.dumps``
would.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from .document import CLOSED

# Records per sealed block: a block holding an OPEN trade costs one dict look-up per record
# per write, and a sealed one a single buffer; 256 keeps both small up to millions of trades
# (100,000 trades: 391 buffers, fewer than writev's IOV_MAX of 1024).
BLOCK_RECORDS = 256

_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def encode(value: object) -> bytes:
    """Compact strict JSON of one value: ``json.dumps(value, separators=(",", ":"), allow_nan=False)``."""
    return _ENCODER.encode(value).encode()


class _Block:
    __slots__ = ("records", "data")

    def __init__(self, records: tuple[dict, ...], data: bytes) -> None:
        self.records = records  # the records sealed, in list order (kept alive: ids stay unique)
        self.data = data  # b"," + their JSON joined by b","


class DocumentEncoding:
    """The encoding of one ledger's document, updated between writes (see the module doc)."""

    def __init__(self, block_records: int | None = None) -> None:
        self.block_records = block_records or BLOCK_RECORDS
        self._records: dict[int, tuple[dict, bytes]] = {}  # id(record) -> (record, its JSON)
        self._blocks: dict[int, _Block] = {}  # first list position -> sealed block
        self._block_of: dict[int, int] = {}  # id(record) -> first position of its sealed block

    def forget(self, record: dict) -> None:
        """``record`` is about to change (or just did): drop everything encoded from it."""
        self._records.pop(id(record), None)
        start = self._block_of.get(id(record))
        if start is not None:
            self._unseal(start)

    def parts(self, head: Mapping[str, object], trades: Sequence[dict]) -> list[bytes | memoryview]:
        """Buffers whose concatenation is the document's compact JSON (see the module doc).

        ``head`` holds the document's keys before ``"trades"``, in order. Raises ValueError
        (nothing kept from the failing record) if a value is NaN or infinite, TypeError if one
        is not JSON.
        """
        opening = encode(dict(head))
        out: list[bytes | memoryview] = [opening[:-1] + (b',"trades":[' if head else b'"trades":[')]
        size, count = self.block_records, len(trades)
        records, blocks = self._records, self._blocks
        for start in range(0, count, size):
            end = min(start + size, count)
            block = blocks.get(start)
            if block is not None:
                if end - start == size and block.records[0] is trades[start] and block.records[-1] is trades[end - 1]:
                    out.append(block.data)
                    continue
                self._unseal(start)
            chunk = trades[start:end]
            sealable = end - start == size
            if sealable and id(chunk[0]) not in records and all(t.get("status") == CLOSED for t in chunk):
                # A whole block of CLOSED records not encoded yet (a log just read): one encoder
                # call for the list, whose items are encoded as each on its own, joined by ",".
                data = b"," + encode(chunk)[1:-1]
                self._seal(start, tuple(chunk), data)
                out.append(data)
                continue
            texts = [b""]  # joined with b",": the block's text starts with its separator
            for trade in chunk:
                kept = records.get(id(trade))
                if kept is not None and kept[0] is trade:
                    texts.append(kept[1])
                    continue
                text = encode(trade)
                if trade.get("status") == CLOSED:
                    records[id(trade)] = (trade, text)
                else:
                    sealable = False
                texts.append(text)
            data = b",".join(texts)
            if sealable:
                self._seal(start, tuple(chunk), data)
            out.append(data)
        if count:
            out[1] = memoryview(out[1])[1:]  # the first record has no separator before it
        out.append(b"]}")
        return out

    def _seal(self, start: int, chunk: tuple[dict, ...], data: bytes) -> None:
        self._blocks[start] = _Block(chunk, data)
        for trade in chunk:
            # The block's bytes hold the record's JSON: one copy is enough.
            self._records.pop(id(trade), None)
            self._block_of[id(trade)] = start

    def _unseal(self, start: int) -> None:
        block = self._blocks.pop(start, None)
        if block is None:
            return
        for trade in block.records:
            if self._block_of.get(id(trade)) == start:
                del self._block_of[id(trade)]
