"""A generated corpus of damaged trade logs, each run through reads, a write, recover and reconcile.

The corpus: every truncation and every single-bit flip of a small valid log the store wrote,
plus constructed damage the reader could misread (a repeated key at each level, nesting too
deep, numbers beyond the double range, invalid UTF-8 and encoded surrogates, lone surrogate
escapes, a byte-order mark, other encodings, NaN). For each damaged log:

- a read and a write either raise CorruptTradeLog and leave every file byte-identical (no temp
  file left), or, where the damage left a valid document, see exactly what the standard
  library's parser sees (nothing misread) and keep working;
- the reconciler aborts through its guard and writes nothing when the log is unreadable;
- recover() restores the backup (or, where no next_id is legible, refuses until told where ids
  continue), never reuses an id and keeps the damaged bytes.

The default run samples the truncations and bit flips (seeded, evenly spread); ``-m slow`` runs
all of them.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from collections import Counter
from datetime import datetime, timezone

import pytest

from tradestore import CorruptTradeLog, RecoveryRefused, StateReconciler, TradeStore, TradeStoreError
from tradestore.atomic import backup_path
from tradestore.document import MAX_DEPTH

from .test_hostile_inputs import snapshot

T0 = datetime(2026, 3, 2, 12, tzinfo=timezone.utc)
SEED = 20261202  # the sample of truncations and flips; printed in every failure's id


def _healthy() -> tuple[bytes, bytes]:
    """(log, backup) of a small account the store wrote: two trades, a partial exit, a close."""
    with tempfile.TemporaryDirectory() as directory:
        log = os.path.join(directory, "t.json")
        store = TradeStore(log, fsync=False, clock=lambda: T0)
        store.open_trade("BTC", "LONG", 100, 90, 120, 1, notes="é")
        store.open_trade("ETH", "SHORT", 50, 55, 40, 2)
        store.partial_close("T002", 0.5, 45)
        store.close_trade("T001", 110)
        with open(log, "rb") as f, open(backup_path(log), "rb") as b:
            return f.read(), b.read()


LOG, BACKUP = _healthy()
NOTE = b"\\u00e9"  # how the store wrote the note "é"; the text damage goes here
assert NOTE in LOG


def _strict_stdlib(data: bytes):
    """The standard library's reading of ``data``, or None where it would refuse or misread.

    An independent oracle: plain json.loads on strictly decoded UTF-8, with repeated keys
    detected by counting (not by the library's own reader).
    """
    repeated = []

    def pairs(items):
        counts = Counter(k for k, _ in items)
        repeated.extend(k for k, n in counts.items() if n > 1)
        return dict(items)

    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None
    return None if repeated else doc


def run_damaged(data: bytes) -> str:
    """Put ``data`` in place of a healthy log (its backup intact) and try everything on it.

    Returns "corrupt" or "readable" for the test's id; asserts the contract on the way.
    """
    directory = tempfile.mkdtemp()
    try:
        log = os.path.join(directory, "t.json")
        with open(log, "wb") as f:
            f.write(data)
        with open(backup_path(log), "wb") as f:
            f.write(BACKUP)
        before = snapshot(directory)
        store = TradeStore(log, fsync=False, clock=lambda: T0)
        try:
            trades = store.get_all_trades()
        except CorruptTradeLog as exc:
            str(exc)
            _assert_unreadable_everywhere(store, directory, before, data)
            return "corrupt"
        # Readable: it must be what a strict standard reader sees, nothing misread.
        reference = _strict_stdlib(data)
        assert reference is not None, "the library read a log the standard reader refuses or misreads"
        assert trades == reference["trades"]
        _assert_still_works(store, directory)
        return "readable"
    finally:
        shutil.rmtree(directory)


def _assert_unreadable_everywhere(store: TradeStore, directory: str, before: dict, data: bytes) -> None:
    for attempt in (store.get_open_trades, store.equity, store.verify_integrity,
                    lambda: store.can_open_position("SOL"),
                    lambda: store.open_trade("SOL", "LONG", 10, 9, 12, 1),
                    lambda: store.close_trade("T002", 45)):
        with pytest.raises(CorruptTradeLog):
            attempt()
    lockless = {k: v for k, v in snapshot(directory).items() if not k.endswith(".lock")}
    assert lockless == {k: v for k, v in before.items() if not k.endswith(".lock")}, "a refused write changed files"
    out = os.path.join(directory, "state")
    result = StateReconciler(store.trade_log, out, fsync=False, clock=lambda: T0).reconcile()
    assert result.aborted and "unreadable" in result.reason
    assert not os.path.exists(out) or not os.listdir(out), "an aborted reconcile wrote files"
    unrecovered = snapshot(directory)
    try:
        store.recover()
    except RecoveryRefused:
        # The damage left no legible next_id, so the ids the last write gave out are unknown:
        # recovery changes nothing until it is told where ids continue.
        assert snapshot(directory) == unrecovered, "a refused recover changed files"
        store.recover(next_id=json.loads(LOG)["next_id"])
    with open(store.trade_log, "rb") as f:
        restored = json.loads(f.read())
    assert restored["trades"] == json.loads(BACKUP)["trades"]
    assert restored["next_id"] >= json.loads(LOG)["next_id"], "recover() would reuse an acknowledged id"
    kept = [n for n, b in snapshot(directory).items() if b == data]
    assert kept, "recover() did not keep the damaged bytes"


def _assert_still_works(store: TradeStore, directory: str) -> None:
    for attempt in (store.equity, store.verify_integrity, lambda: store.can_open_position("SOL"),
                    lambda: store.open_trade("SOL", "LONG", 10, 9, 12, 1)):
        try:
            attempt()
        except TradeStoreError as exc:  # a flip may break a record: refused with a documented error
            assert not isinstance(exc, CorruptTradeLog), exc
    result = StateReconciler(store.trade_log, os.path.join(directory, "state"), fsync=False,
                             clock=lambda: T0).reconcile()
    assert result.ok or result.aborted  # a report, never an exception


# --------------------------------------------------------------------------- the corpus


def truncations() -> list[tuple[str, bytes]]:
    return [(f"truncated-{n}", LOG[:n]) for n in range(len(LOG))]


def bit_flips() -> list[tuple[str, bytes]]:
    out = []
    for position in range(len(LOG)):
        for bit in range(8):
            damaged = bytearray(LOG)
            damaged[position] ^= 1 << bit
            out.append((f"flip-{position}.{bit}", bytes(damaged)))
    return out


def _sample(cases: list, k: int) -> list:
    rng = random.Random(SEED)
    return sorted(rng.sample(cases, min(k, len(cases))))


def _with_trades(transform) -> bytes:
    """The healthy log's text with ``transform(text)`` applied."""
    return transform(LOG.decode("utf-8")).encode("utf-8")


def constructed() -> list[tuple[str, bytes]]:
    doc = json.loads(LOG)
    head = LOG[: LOG.index(b'"trades":')]
    first = json.dumps(doc["trades"][0], separators=(",", ":"))
    cases = [
        # a repeated key at every level: the second "trades" used to hide every trade
        ("repeated-trades", LOG[:-1] + b',"trades":[]}'),
        ("repeated-top-key", head + b'"next_id":1,' + LOG[len(head):]),
        ("repeated-record-key", _with_trades(lambda t: t.replace('"status":"CLOSED"', '"status":"CLOSED","status":"OPEN"', 1))),
        ("repeated-partial-key", _with_trades(lambda t: t.replace('"reason":"Partial TP"', '"reason":"a","reason":"b"', 1))),
        ("repeated-deep-key", head + b'"x":{"a":[{"k":1,"k":2}]},' + LOG[len(head):]),
        # nesting
        ("nesting-limit+1", head + b'"x":' + b"[" * (MAX_DEPTH) + b"]" * (MAX_DEPTH) + b"," + LOG[len(head):]),
        ("nesting-100000", head + b'"x":' + b"[" * 100_000 + b"]" * 100_000 + b"," + LOG[len(head):]),
        ("nesting-unclosed", head + b'"x":' + b"{\"a\":" * 50_000 + LOG[len(head):]),
        # numbers beyond the double range
        ("huge-float", _with_trades(lambda t: t.replace('"entry_price":100.0', '"entry_price":1e400', 1))),
        ("huge-negative", _with_trades(lambda t: t.replace('"pnl_usd":10.0', '"pnl_usd":-1.8e308', 1))),
        ("huge-int-next-id", _with_trades(lambda t: t.replace('"next_id":3', '"next_id":' + "9" * 400, 1))),
        ("huge-int-5000-digits", head + b'"x":' + b"7" * 5000 + b"," + LOG[len(head):]),
        ("id-beyond-15-digits", _with_trades(lambda t: t.replace('"T001"', '"T' + "0" * 13 + '001"', 1))),
        ("next-id-beyond-limit", _with_trades(lambda t: t.replace('"next_id":3', '"next_id":1000000000000001', 1))),
        ("nan", _with_trades(lambda t: t.replace('"size":1.0', '"size":NaN', 1))),
        ("infinity", _with_trades(lambda t: t.replace('"size":1.0', '"size":-Infinity', 1))),
        # text that is not UTF-8, or strings that cannot be written back as UTF-8
        ("invalid-byte", LOG.replace(NOTE, b"\xff", 1)),
        ("overlong-encoding", LOG.replace(NOTE, b"\xc0\xaf", 1)),
        ("encoded-surrogate", LOG.replace(NOTE, b"\xed\xa0\x80", 1)),
        ("cut-multibyte", LOG.replace(NOTE, b"\xc3", 1)),
        ("lone-surrogate-escape", LOG.replace(NOTE, b"\\ud800", 1)),
        ("lone-low-surrogate-key", head + b'"\\udc00":1,' + LOG[len(head):]),
        ("reversed-surrogate-pair", LOG.replace(NOTE, b"\\ude00\\ud83d", 1)),
        ("byte-order-mark", b"\xef\xbb\xbf" + LOG),
        ("utf-16", LOG.decode().encode("utf-16")),
        ("utf-32", LOG.decode().encode("utf-32")),
        ("latin-1", LOG.replace(NOTE, "é".encode("latin-1"), 1)),
        # shape
        ("empty", b""), ("whitespace", b" \n\t"), ("list", b"[]"), ("null", b"null"),
        ("trades-object", b'{"trades":{}}'), ("schema-99", re.sub(rb'"schema":[0-9]+', b'"schema":99', LOG, count=1)),
        ("record-not-object", b'{"trades":[' + first.encode() + b',5]}'),
        ("two-documents", LOG + LOG),
    ]
    return cases


def _run(cases):
    return {name: run_damaged(data) for name, data in cases}


@pytest.mark.parametrize("name,data", constructed(), ids=[n for n, _ in constructed()])
def test_constructed_damage_is_an_unreadable_log(name, data):
    assert run_damaged(data) == "corrupt", name


def test_sampled_truncations():
    outcomes = _run(_sample(truncations(), 60))
    assert set(outcomes.values()) == {"corrupt"}, outcomes  # a prefix of a compact log is never JSON


def test_sampled_bit_flips():
    outcomes = _run(_sample(bit_flips(), 250))
    assert "corrupt" in outcomes.values()


@pytest.mark.slow
def test_every_truncation():
    assert set(_run(truncations()).values()) == {"corrupt"}


def test_every_bit_flip_of_the_schema_digit():
    """A flipped bit can turn the document's schema 2 into 3, a journal checkpoint's number:
    the result is still a damaged document (no journal marker), restored from its backup."""
    position = LOG.index(b'"schema":') + len(b'"schema":')
    flips = [case for case in bit_flips() if case[0].startswith(f"flip-{position}.")]
    assert any(data[position:position + 1] == b"3" for _, data in flips)
    assert set(_run(flips).values()) == {"corrupt"}


@pytest.mark.slow
def test_every_bit_flip():
    outcomes = _run(bit_flips())
    print({k: list(outcomes.values()).count(k) for k in ("corrupt", "readable")}, "of", len(outcomes))


def test_the_library_reads_the_healthy_log_and_its_backup():
    # The positive control: the same checks on undamaged bytes find a readable log.
    assert run_damaged(LOG) == "readable"
    assert run_damaged(BACKUP) == "readable"

