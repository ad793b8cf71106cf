"""The calls the chaos harness makes on a store, in terms of the few an idiom provides.

An idiom store subclasses :class:`BotStore` and supplies ``locked()`` (its exclusive lock, as
a context manager), ``load()`` (the log document, :func:`rules.empty` when there is none) and
``save(doc)`` (its way of writing the document); :meth:`BotStore.change` joins them into the one
transaction every write needs: lock, read, decide, write, unlock. A store that keeps its trades
elsewhere (a database) overrides ``change`` and ``load`` instead.
"""

from __future__ import annotations

import os

from tests.idioms import rules


def sync_directory(folder: str) -> None:
    """fsync a directory: a rename in it is durable only after this."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BotStore:
    """``open_trade``, ``close_trade``, ``partial_close``, ``update_trade``, ``get_all_trades``."""

    def __init__(self, trade_log, lock_file=None, **options) -> None:
        self.trade_log = os.path.abspath(os.fspath(trade_log))
        self.lock_file = os.path.abspath(os.fspath(lock_file)) if lock_file else self.trade_log + ".lock"
        self.limits = rules.limits_from(options)

    # -- what an idiom provides
    def locked(self):
        raise NotImplementedError

    def load(self) -> dict:
        raise NotImplementedError

    def save(self, doc: dict) -> None:
        raise NotImplementedError

    def change(self, edit):
        """Run ``edit(doc)`` on the log read under the lock, write the result, return ``edit``'s."""
        with self.locked():
            doc = self.load()
            result = edit(doc)
            self.save(doc)
            return result

    # -- the store's API
    def open_trade(self, symbol, direction, entry_price, stop_price, target_price, size,
                   setup_type="", grade="", notes=""):
        return self.change(lambda doc: rules.open_trade(doc, self.limits, symbol, direction, entry_price,
                                                        stop_price, target_price, size, setup_type, grade, notes))

    def close_trade(self, trade_id, exit_price, exit_reason="", lessons=""):
        return self.change(lambda doc: rules.close_trade(doc, trade_id, exit_price, exit_reason, lessons))

    def partial_close(self, trade_id, close_pct, exit_price, reason="Partial TP"):
        return self.change(lambda doc: rules.partial_close(doc, trade_id, close_pct, exit_price, reason))

    def update_trade(self, trade_id, updates):
        return self.change(lambda doc: rules.update_trade(doc, trade_id, updates))

    def get_all_trades(self) -> list:
        return self.load()["trades"]
