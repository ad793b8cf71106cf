"""The kept encoding of the trade log (tradestore/encoding.py) and the gathered atomic write.

- After any sequence of ledger operations (accepted or refused), merges of another writer's
  records (new ones, changed ones, CLOSED ones changed in place), appends to the list from
  outside, reloads from the bytes written and encodings taken at any points in between, ``Ledger.to_json`` and the joined
  ``to_json_parts`` are byte for byte ``json.dumps(document, separators=(",", ":"),
  allow_nan=False)``, for block sizes small enough that blocks seal and unseal all the time.
- A write after the first encodes only the records it touched (and the head); no part holds
  the whole document.
- ``write_atomic`` of a sequence of buffers writes their concatenation, through short writes
  and through more buffers than one writev takes.
"""

from __future__ import annotations

import copy
import json
import math
import os
from datetime import timedelta
from unittest import mock

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from tradestore import InvalidTrade, Ledger, RiskRejected, TradeNotFound, TradeNotOpen, atomic, encoding
from tradestore.encoding import DocumentEncoding
from tests.test_properties import NOW, apply, limits, operation

REFUSALS = (InvalidTrade, RiskRejected, TradeNotFound, TradeNotOpen)


def full_dump(ledger: Ledger) -> bytes:
    return json.dumps(ledger.to_document(), separators=(",", ":"), allow_nan=False).encode()


def check_bytes(ledger: Ledger) -> bytes:
    written = ledger.to_json()
    assert written == full_dump(ledger)
    assert b"".join(ledger.to_json_parts()) == written
    return written


def other_writer(ledger: Ledger, data, now, lim) -> None:
    """Another process changes the log; ``ledger`` merges the records it changed."""
    other = Ledger.from_json(ledger.to_json())
    other.mark_clean()
    for _ in range(data.draw(st.integers(0, 4), label="other's steps")):
        ids = sorted(t["id"] for t in other.trades) or ["T001"]
        op = data.draw(operation(ids), label="other's op")
        try:
            if op[0] != "advance":
                apply(other, op, now, lim)
        except REFUSALS:
            pass
    closed = [t for t in other.trades if t["status"] == "CLOSED"]
    if closed and data.draw(st.booleans(), label="edit a CLOSED record"):
        # A CLOSED record changed by another writer (for example a schema upgrade): the only
        # way one changes, and so the case where a sealed block must be dropped.
        record = data.draw(st.sampled_from(closed), label="edited")
        record["lessons"] = data.draw(st.text(max_size=4), label="lessons")
        other.changed.add(record["id"])
    changed = [t for t in other.trades if t["id"] in other.changed]
    ledger.merge(copy.deepcopy(changed), other.next_id)


@given(lim=limits(), data=st.data(), block=st.integers(1, 4))
def test_kept_encoding_is_json_dumps_after_any_history(lim, data, block):
    with mock.patch.object(encoding, "BLOCK_RECORDS", block):
        ledger = Ledger(extra=data.draw(st.dictionaries(st.sampled_from(["owner", "desk"]), st.text(max_size=3),
                                                        max_size=2), label="extra"))
        now = NOW
        for _ in range(data.draw(st.integers(1, 40), label="steps")):
            ids = sorted(t["id"] for t in ledger.trades) or ["T001"]
            kind = data.draw(st.sampled_from(["op", "op", "op", "merge", "append", "encode", "reload"]), label="kind")
            if kind == "reload":  # another process's view: every block encoded afresh
                ledger = Ledger.from_json(check_bytes(ledger))
            elif kind == "merge":
                other_writer(ledger, data, now, lim)
            elif kind == "append":
                # What some tools do: append a record to the list, then rebuild the ledger on it.
                scratch = Ledger(next_id=ledger.next_id)
                apply(scratch, ("open", ("XRP", "LONG", 100.0, 95.0, 120.0, 1.0)), now, lim)
                if data.draw(st.booleans(), label="appended closed"):
                    scratch.close_trade(scratch.trades[0]["id"], 110.0, now=now)
                ledger.trades.extend(scratch.trades)
                ledger.next_id = scratch.next_id
            elif kind == "encode":
                check_bytes(ledger)
            else:
                op = data.draw(operation(ids), label="op")
                if op[0] == "advance":
                    now += timedelta(hours=op[1])
                    continue
                before = full_dump(ledger)
                try:
                    apply(ledger, op, now, lim)
                except REFUSALS as exc:
                    note(f"refused {op}: {exc}")
                    assert check_bytes(ledger) == before, "a refused operation changed the bytes"
            if data.draw(st.booleans(), label="encode now"):
                check_bytes(ledger)
        check_bytes(ledger)


def _history(n: int) -> Ledger:
    ledger = Ledger()
    for i in range(n):
        trade = ledger.open_trade(f"S{i % 5}", "LONG", 100.0, 95.0, 120.0, 1.0, now=NOW + timedelta(hours=i))
        ledger.close_trade(trade["id"], 110.0, now=NOW + timedelta(hours=i, minutes=30))
    return ledger


def test_a_write_encodes_only_what_it_touched():
    ledger = _history(1000)
    ledger.open_trade("OPEN", "LONG", 100.0, 95.0, 120.0, 1.0, now=NOW)  # one OPEN trade in a block
    later = ledger.open_trade("Z", "LONG", 100.0, 95.0, 120.0, 1.0, now=NOW)
    ledger.close_trade(later["id"], 110.0, now=NOW + timedelta(hours=1))
    check_bytes(ledger)
    calls = []
    real = encoding.encode
    with mock.patch.object(encoding, "encode", lambda value: calls.append(value) or real(value)):
        trade = ledger.open_trade("W0", "LONG", 100.0, 95.0, 120.0, 1.0, now=NOW + timedelta(days=90))
        parts = ledger.to_json_parts()
        assert len(calls) == 3, "head, the OPEN trade of the history, the new trade"
        calls.clear()
        ledger.close_trade(trade["id"], 110.0, now=NOW + timedelta(days=91))
        parts = ledger.to_json_parts()
        assert len(calls) == 3, "head, the OPEN trade of the history, the closed trade"
    whole = sum(memoryview(p).nbytes for p in parts)
    assert max(memoryview(p).nbytes for p in parts) < whole / 3  # no part is the whole document
    assert b"".join(parts) == full_dump(ledger)


def test_a_list_edited_under_a_sealed_block_is_re_encoded():
    ledger = _history(10)
    ledger._encoding = DocumentEncoding(block_records=4)
    check_bytes(ledger)
    ledger.trades[4] = dict(ledger.trades[4], notes="replaced")  # first position of a sealed block
    check_bytes(ledger)
    ledger.trades.insert(0, ledger.trades.pop())  # every block's first and last moved
    check_bytes(ledger)


def test_an_open_trade_is_encoded_on_every_write():
    """OPEN trades are never kept, not even in a full block, so a NaN poked into one raises."""
    ledger = _history(5)
    ledger._encoding = DocumentEncoding(block_records=2)
    trade = ledger.open_trade("N", "LONG", 100.0, 95.0, 120.0, 1.0, now=NOW)  # fills block [4, 6)
    check_bytes(ledger)
    trade["notes"] = math.nan  # only possible by poking the internals
    with pytest.raises(ValueError):
        ledger.to_json()
    trade["notes"] = ""
    check_bytes(ledger)


# -- the gathered write ---------------------------------------------------------------------

BUFFERS = st.lists(st.binary(max_size=40), max_size=60)


@given(buffers=BUFFERS, limit=st.integers(1, 50), iov_max=st.integers(1, 5), data=st.data())
def test_write_all_of_buffers_survives_short_writes(tmp_path_factory, buffers, limit, iov_max, data):
    path = str(tmp_path_factory.mktemp("w") / "f")
    real = os.writev
    seen = []

    def short_writev(fd, views):
        seen.append(len(views))
        room = data.draw(st.integers(1, limit), label="written")
        joined = b"".join(bytes(v) for v in views)
        return real(fd, [joined[:room]]) if joined else 0

    as_views = [memoryview(b) if i % 2 else b for i, b in enumerate(buffers)]
    with mock.patch.object(atomic, "_IOV_MAX", iov_max), mock.patch.object(atomic.os, "writev", short_writev):
        atomic.write_atomic(path, as_views, fsync=False)
    with open(path, "rb") as f:
        assert f.read() == b"".join(buffers)
    assert all(n <= iov_max for n in seen)


def test_write_atomic_of_a_ledger_s_parts_writes_its_document(tmp_path):
    ledger = _history(700)
    path = str(tmp_path / "trades.json")
    atomic.write_atomic(path, ledger.to_json_parts())
    with open(path, "rb") as f:
        assert f.read() == full_dump(ledger)
