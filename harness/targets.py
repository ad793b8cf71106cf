"""Targets: the stores a chaos campaign can test, by name.

A target is a *factory* ``factory(trade_log, lock_file, **limits)`` returning a store object
with ``open_trade``, ``close_trade`` and ``get_all_trades`` (optionally ``partial_close`` and
``update_trade``), called like :class:`tradestore.TradeStore`'s methods. ``limits`` are
``TradeStore`` keyword names (``max_positions``, ``starting_capital``, ``correlation_groups``,
``max_corr_group_risk_pct``, ``asset_consecutive_loss_cap``, ``fsync``, ...). A store rejects a
call by raising any exception or by returning a dict with an ``"error"`` key (the seed's style).

Names: ``tradestore`` (ours, the default), ``tradestore-journal`` (ours in the journal format,
see :mod:`tradestore_harness.journal_target`), the negative controls of :mod:`tradestore_harness.unsafe` and,
when present, :mod:`tradestore_harness.unsafe_durability`, or ``"package.module:factory"`` for any store
importable in the worker processes.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

Factory = Callable[..., Any]
DEFAULT = "tradestore"
JOURNAL = "tradestore-journal"  # ours, in the journal format


class TargetError(ValueError):
    """The target name does not resolve to a factory (a usage error)."""


def _tradestore(trade_log, lock_file, **limits):
    from tradestore import TradeStore

    return TradeStore(trade_log, lock_file, **limits)


def registry() -> dict[str, Factory]:
    """Every named target: ours first, then the negative controls."""
    from tradestore_harness import unsafe
    from tradestore_harness.journal_target import tradestore_journal

    targets: dict[str, Factory] = {DEFAULT: _tradestore, JOURNAL: tradestore_journal, **unsafe.TARGETS}
    try:
        from tradestore_harness import unsafe_durability
    except ImportError:
        pass  # the durability controls are optional
    else:
        targets.update(getattr(unsafe_durability, "TARGETS", {}))
    return targets


OURS = (DEFAULT, JOURNAL)


def controls() -> list[str]:
    """Names of the negative controls (every target but ours)."""
    return [name for name in registry() if name not in OURS]


def resolve_target(name: str) -> Factory:
    """The factory for a target name or ``module:factory``; raises :class:`TargetError`."""
    known = registry()
    if name in known:
        return known[name]
    if ":" not in name:
        raise TargetError(f"unknown target {name!r}; known: {', '.join(known)}, or module:factory")
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TargetError(f"target {name!r}: cannot import {module_name!r} ({exc})") from None
    factory = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise TargetError(f"target {name!r}: {module_name!r} has no attribute {attr!r}")
    if not callable(factory):
        raise TargetError(f"target {name!r}: {attr!r} is not callable")
    return factory


def call(store: Any, f: str, args: list) -> tuple[str, Any]:
    """Run operation ``f`` on ``store``: ``("ok", value)`` or ``("fail", "Type: message")``.

    ``f`` is ``open``, ``close``, ``partial``, ``update`` or ``read``. An exception or a dict
    with an ``"error"`` key is a rejection. A store without ``partial_close``/``update_trade``
    rejects those operations. An exception whose class sets ``outcome_unknown = True`` (a
    database COMMIT whose reply was lost) is ``("unknown", "Type: message")``: the call may
    have landed, so it is neither acknowledged nor rejected.
    """
    method = {
        "open": "open_trade", "close": "close_trade", "partial": "partial_close",
        "update": "update_trade", "read": "get_all_trades",
    }[f]
    fn = getattr(store, method, None)
    if fn is None:
        return "fail", f"Unsupported: the target has no {method}"
    try:
        value = fn(*args)
    except Exception as exc:  # any rejection or failure of the store is an outcome to record
        return ("unknown" if getattr(exc, "outcome_unknown", False) else "fail"), f"{type(exc).__name__}: {exc}"
    if isinstance(value, dict) and "error" in value:
        return "fail", f"Rejected: {value['error']}"
    return "ok", value
