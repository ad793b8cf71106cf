"""Generator: what each worker does and when, as a pure function of the seed.

Everything random in a campaign comes from here or from ``ScenarioContext.rng``, seeded by the
campaign seed and a stable salt, so ``--seed N`` replays the same schedule: the same operations
with the same arguments in each worker, the same kill moments, the same corruptions.
:func:`digest` fingerprints a schedule so a report can show that two runs followed the same one.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any, Iterator

SYMBOLS = ("BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "AVAX", "LINK", "DOT", "ATOM")


def rng(seed: int, *salt: Any) -> random.Random:
    """A generator depending only on ``seed`` and ``salt`` (stable across runs and machines)."""
    return random.Random(":".join(str(part) for part in (seed, *salt)))


def open_args(r: random.Random, symbol: str, token: str) -> list:
    """Arguments of a valid ``open_trade`` for ``symbol``; ``token`` goes into the notes so the
    checker can find the trade this very call created."""
    direction = r.choice(("LONG", "SHORT"))
    entry = round(r.uniform(50, 150), 2)
    risk = round(entry * r.uniform(0.01, 0.05), 2)
    sign = 1 if direction == "LONG" else -1
    stop, target = round(entry - sign * risk, 2), round(entry + sign * 2 * risk, 2)
    size = round(r.uniform(0.1, 2.0), 3)
    return [symbol, direction, entry, stop, target, size, "chaos", "B", token]


def writer_ops(seed: int, worker: str, life: int, symbols: tuple[str, ...] = SYMBOLS) -> Iterator[dict]:
    """An endless, seeded stream of operation *intents* for one life of one writer.

    Each intent is ``{"f": "open"|"partial"|"update"|"close", "n": index, "r": float, ...}``;
    the worker binds ``partial``/``update``/``close`` to one of its own open trades, chosen
    with ``r``, when it runs them (the trade ids exist only at run time).
    """
    r = rng(seed, "writer", worker, life)
    n = 0
    while True:
        f = r.choices(("open", "partial", "update", "close"), weights=(4, 1, 2, 3))[0]
        intent: dict[str, Any] = {"f": f, "n": n, "r": r.random()}
        if f == "open":
            intent["args"] = open_args(r, r.choice(symbols), "")
        elif f == "partial":
            intent["pct"] = round(r.uniform(0.2, 0.6), 2)
            intent["price_move"] = round(r.uniform(-0.03, 0.05), 4)
        elif f == "update":
            intent["stop_move"] = round(r.uniform(-0.01, 0.01), 4)
        else:
            intent["price_move"] = round(r.uniform(-0.05, 0.05), 4)
        yield intent
        n += 1


def lifecycle_ops(seed: int, worker: str, life: int) -> Iterator[dict]:
    """An endless, seeded stream of intents that stays productive under the store's rules.

    Trade after trade: ``open``, then 0-2 stop moves and 0-1 partial closes in a seeded
    order, then ``close``. The worker binds each intent when it runs it (see
    :func:`tradestore_harness.workers.writer_loop`): it opens the next symbol of its own
    rotation, applies the others to the one trade it has open (skipping what does not fit),
    and closes at a loss only when that symbol's last close was a win, so no symbol ever
    reaches a consecutive-loss cap of two or more. Every operation is valid: a refusal is a
    finding (``valid-ops-succeed``), not noise.

    Intent keys: ``f``, ``n`` (index), ``move`` (fraction of entry for exit prices), ``pct``
    (partial close), ``stop_move`` (fraction of the stop), ``args`` (an open's prices).
    """
    r = rng(seed, "lifecycle", worker, life)
    n = 0
    while True:
        steps = ["update"] * r.randint(0, 2) + ["partial"] * r.randint(0, 1)
        r.shuffle(steps)
        for f in ("open", *steps, "close"):
            intent: dict[str, Any] = {"f": f, "n": n, "move": round(r.uniform(0.002, 0.04), 4),
                                      "pct": round(r.uniform(0.2, 0.6), 2),
                                      "stop_move": round(r.uniform(-0.01, 0.01), 4)}
            if f == "open":
                intent["args"] = open_args(r, "", "")
            yield intent
            n += 1


def own_symbols(worker_index: int, writers: int, symbols: tuple[str, ...] = SYMBOLS) -> tuple[str, ...]:
    """The symbols writer ``worker_index`` of ``writers`` rotates through: disjoint from the
    other writers' while there are enough symbols, so no open is refused as a duplicate."""
    mine = symbols[worker_index::writers]
    return mine or symbols


def digest(schedule: Any) -> str:
    """A short fingerprint of a JSON-able schedule."""
    text = json.dumps(schedule, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
