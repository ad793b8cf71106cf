"""The strict JSON reader: what bytes are a trade log (or any tradestore file), exactly.

A document is read only if it can be read one way. Everything a JSON reader might take
differently from another, or from the writer's intent, is refused instead of guessed:

- bytes that are not UTF-8 (UTF-8-encoded surrogates included), a byte-order mark;
- an object with a repeated key, at any depth (readers differ on which value wins);
- nesting deeper than :data:`MAX_DEPTH` containers (so no parse, copy or write ever recurses
  far enough for a RecursionError);
- a number outside the double range (ints included), ``NaN``, ``Infinity``, ``-Infinity``;
- a string (value or key) holding a lone surrogate escape such as ``"\\ud800"``, which
  cannot be written back as UTF-8.

:func:`loads_strict` raises :class:`DocumentError` (a ValueError); :func:`parse_document`
turns every refusal into :class:`CorruptTradeLog` and checks the trade log's shape. Neither
ever writes anything. The rules are listed in ``docs/FORMAT.md`` ("Reading a log").
"""

from __future__ import annotations

import gc
import json
import math
import re
from typing import Any

from .errors import CorruptTradeLog, describe
from .values import MAX_ID_NUMBER, id_number

# Schema 2: the seed's fields mean what the seed meant (pnl_usd is the final exit's on the
# remaining size). Schema 1, written by earlier versions, stored the net in pnl_usd; it is read
# and converted (tradestore.accounting.upgrade_schema_1). A log without "schema" was written by
# the seed's own code and already means what schema 2 means.
SCHEMA = 2
NET_IN_PNL_SCHEMA = 1
READABLE_SCHEMAS = (SCHEMA, NET_IN_PNL_SCHEMA)
# Schema 3: the checkpoint of a journal-format log (tradestore.journal): schema 2's records plus
# a "journal" marker. Only the journal reader takes it; every other reader (and every earlier
# version and the seed-era tools that check the schema) refuses it, so none writes over a
# checkpoint without the journal writes it does not see.
JOURNAL_SCHEMA = 3
OPEN, CLOSED = "OPEN", "CLOSED"
MAX_DEPTH = 32  # containers inside one another; the library's own records use 5

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_QUOTED = re.compile(rb'"[^"]*"')
_AS_PARENTHESES = bytes.maketrans(b"[]{}", b"()()")
# Everything but brackets and quotes, deleted to see the document's structure.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
# A number can leave the double range only with 20+ digits in a row or a 3-digit exponent.
# Such candidates are found in one copy of the bytes with every digit mapped to 0, E to e and
# each + deleted (so "1E+400" reads "0e000"), by two plain substring searches; only when one
# is present (rarely: it may be inside a string) are the numbers themselves checked.
_NUMBER_SHAPE = bytes.maketrans(b"0123456789E", b"0" * 10 + b"e")
_CANDIDATES = (b"0" * 20, b"e000")
_NUMBER_CHARS = frozenset("0123456789.eE+-")
_BIG_NUMBER = re.compile(r"[0-9]{20}|[eE][+-]?0*[1-9][0-9]{2}")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class DocumentError(ValueError):
    """The bytes are not a document tradestore reads; the message says what is wrong."""


def _reject_constant(name: str) -> None:
    raise DocumentError(f"{name} is not valid JSON")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        repeated = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise DocumentError(f"key {describe(repeated)} appears more than once in one object")
    return obj


def _structure(data: bytes) -> bytes:
    """The brackets of ``data`` outside string literals, in order, as ``(`` and ``)``.

    Exact for valid JSON. For invalid JSON it matches the parser's view up to the point where
    the parser stops, so the parser never nests deeper than this says.
    """
    if b"\\" in data:  # drop escapes first, so an escaped quote does not end a string
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = data.translate(None, _NOT_STRUCTURE)
    # Quotes alternate open/close: removing adjacent pairs drops empty strings or joins two
    # strings with nothing between them; what is left of strings holds only brackets.
    return _QUOTED.sub(b"", marks.replace(b'""', b"")).translate(_AS_PARENTHESES)


def _check_depth(brackets: bytes) -> None:
    # Each pass removes the innermost containers, so the number of passes is the depth.
    depth = 0
    while brackets:
        shorter = brackets.replace(b"()", b"")
        if shorter == brackets:
            raise DocumentError("brackets do not match")
        depth += 1
        if depth > MAX_DEPTH:
            raise DocumentError(f"containers are nested more than {MAX_DEPTH} deep")
        brackets = shorter


def _check_numbers(data: bytes, text: str) -> None:
    digits = data.translate(_NUMBER_SHAPE, b"+")
    if not any(candidate in digits for candidate in _CANDIDATES):
        return
    outside = "".join(text.split('"')[0::2]) if '\\"' not in text else _STRING.sub("", text)
    for match in _BIG_NUMBER.finditer(outside):
        start, end = match.start(), match.end()
        while start > 0 and outside[start - 1] in _NUMBER_CHARS:
            start -= 1
        while end < len(outside) and outside[end] in _NUMBER_CHARS:
            end += 1
        token = outside[start:end]
        try:
            value = float(token)
        except ValueError:
            raise DocumentError(f"{token[:40]!r} is not a valid number") from None
        if not math.isfinite(value):
            raise DocumentError(f"number {token[:40]}... is outside the range of a double")


def loads_strict(data: bytes | str) -> Any:
    """Parse one strict JSON document; DocumentError (a ValueError) for anything refused above.

    ``data`` is the file's bytes (decoded as UTF-8, strictly) or already decoded text.
    """
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DocumentError(f"text holds a character UTF-8 cannot encode at {exc.start}") from None
    data = bytes(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"bytes {exc.start}-{exc.end} are not valid UTF-8 ({exc.reason})") from None
    if text.startswith("\ufeff"):
        raise DocumentError("it starts with a byte-order mark; write UTF-8 without one")
    _check_depth(_structure(data))
    _check_numbers(data, text)
    # json.loads builds one container per trade and field; with the cyclic collector running
    # it rescans them over and over (3x the parse time at 100k trades). They hold no cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        doc = json.loads(text, object_pairs_hook=_object, parse_constant=_reject_constant)
    except DocumentError:
        raise
    except ValueError as exc:  # json.JSONDecodeError, or an int too long to convert
        raise DocumentError(str(exc)) from None
    finally:
        if collecting:
            gc.enable()
    if _SURROGATE_ESCAPE.search(data):  # rare: only then is every string checked
        try:
            json.dumps(doc, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise DocumentError("a string holds a lone surrogate escape (\\ud800-\\udfff), "
                                "which UTF-8 cannot write back") from None
    return doc


def parse_document(data: bytes | str, source: str = "trade log", *,
                   schemas: tuple[int, ...] = READABLE_SCHEMAS) -> dict[str, Any]:
    """Parse a trade log strictly (:func:`loads_strict`) and check its shape.

    ``schemas``: the schema numbers taken (a log without one is a seed log, always taken).
    Raises :class:`CorruptTradeLog` naming ``source`` and what is wrong; never anything else.
    """
    if not data.strip():
        raise CorruptTradeLog(f"{source} is empty")
    try:
        doc = loads_strict(data)
    except DocumentError as exc:
        raise CorruptTradeLog(f"{source} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("trades"), list):
        raise CorruptTradeLog(f"{source} has the wrong shape: expected an object with a 'trades' list")
    schema = doc.get("schema", SCHEMA)
    if type(schema) is int and schema == JOURNAL_SCHEMA and schema not in schemas:
        raise CorruptTradeLog(f"{source} is the checkpoint of a journal-format log (schema 3): its "
                              "latest writes are in its journal; open it with TradeStore, or write "
                              "the single document with `tradestore export`")
    if type(schema) is not int or schema not in schemas:  # true == 1 in Python: refused
        raise CorruptTradeLog(f"{source} has schema {describe(schema)}; this version reads schemas "
                              f"{', '.join(map(str, READABLE_SCHEMAS + (JOURNAL_SCHEMA,)))} and seed "
                              "logs without one")
    check_records(doc["trades"], source)
    check_next_id(doc.get("next_id"), source, missing_ok=True)
    return doc


def check_records(trades: list[Any], source: str) -> None:
    """Raise CorruptTradeLog unless every item is a record with an id, a status and a symbol."""
    for position, trade in enumerate(trades):
        if not isinstance(trade, dict) or id_number(trade.get("id")) is None:
            raise CorruptTradeLog(f"{source}: trade #{position} is not a record with an id like 'T001'"
                                  " (T and 1 to 15 digits)")
        if trade.get("status") not in (OPEN, CLOSED) or not isinstance(trade.get("symbol"), str):
            raise CorruptTradeLog(f"{source}: trade {trade['id']} has no valid status or symbol")


def check_next_id(next_id: Any, source: str, *, missing_ok: bool = False) -> None:
    """Raise CorruptTradeLog unless ``next_id`` is an integer from 1 to MAX_ID_NUMBER + 1."""
    if next_id is None and missing_ok:
        return
    if not isinstance(next_id, int) or isinstance(next_id, bool) or not 1 <= next_id <= MAX_ID_NUMBER + 1:
        raise CorruptTradeLog(f"{source}: next_id {describe(next_id)} is not an integer from 1 to {MAX_ID_NUMBER + 1}")
