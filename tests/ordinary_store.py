"""A trade store written the ordinary way, sharing no code with the library: a stranger to test.

``fcntl.flock`` on a lock file opened with the builtin ``open()``; the log read with
``json.load``; every write a ``tempfile.mkstemp`` temp file written through
``os.fdopen(fd, "w")``, flushed, ``os.fsync``-ed, ``os.replace``-d over the log, then the
directory fsynced. This is correct, and the durability scenarios must pass it.
:class:`NoFsyncStore` and :class:`NoDirFsyncStore` are the same store with one of the two
fsyncs left out; power-loss must catch each.

Targets: ``tests.ordinary_store:make_store``, ``...:no_fsync``, ``...:no_dir_fsync``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from datetime import datetime, timezone


class OrdinaryStore:
    FSYNC = True
    DIR_FSYNC = True

    def __init__(self, trade_log, lock_file=None, **limits):
        self.path = os.fspath(trade_log)
        self.lock_path = os.fspath(lock_file) if lock_file else self.path + ".lock"
        self.max_positions = limits.get("max_positions", 5)

    @contextlib.contextmanager
    def _locked(self):
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict:
        try:
            with open(self.path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {"trades": [], "next_id": 1}

    def _write(self, doc: dict) -> None:
        directory = os.path.dirname(self.path) or "."
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".trades.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, indent=1)
                f.flush()
                if self.FSYNC:
                    os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if self.DIR_FSYNC:
            dfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def _change(self, trade_id, change) -> dict:
        with self._locked():
            doc = self._read()
            trade = next((t for t in doc["trades"] if t["id"] == trade_id), None)
            if trade is None or trade["status"] != "OPEN":
                return {"error": f"{trade_id} is not an open trade"}
            change(trade)
            self._write(doc)
            return dict(trade)

    @staticmethod
    def _now() -> str:
        return datetime.now(timezone.utc).isoformat()

    def open_trade(self, symbol, direction, entry_price, stop_price, target_price, size,
                   setup_type="", grade="", notes=""):
        with self._locked():
            doc = self._read()
            live = [t for t in doc["trades"] if t["status"] == "OPEN"]
            if any(t["symbol"] == symbol for t in live):
                return {"error": f"{symbol} is already open"}
            if len(live) >= self.max_positions:
                return {"error": "position cap reached"}
            trade = {"id": f"T{doc['next_id']:03d}", "symbol": symbol, "direction": direction,
                     "entry_price": entry_price, "stop_price": stop_price, "target_price": target_price,
                     "size": size, "setup_type": setup_type, "grade": grade, "notes": notes,
                     "status": "OPEN", "entry_time": self._now(), "partial_exits": []}
            doc["trades"].append(trade)
            doc["next_id"] += 1
            self._write(doc)
            return dict(trade)

    def close_trade(self, trade_id, exit_price, exit_reason=""):
        def close(t):
            t.update(status="CLOSED", exit_price=exit_price, exit_reason=exit_reason, exit_time=self._now())
        return self._change(trade_id, close)

    def partial_close(self, trade_id, close_pct, exit_price, reason=""):
        def partial(t):
            t["partial_exits"].append({"pct": close_pct, "price": exit_price, "reason": reason,
                                       "timestamp": self._now()})
            t["size"] = t["size"] * (1 - close_pct)
        return self._change(trade_id, partial)

    def update_trade(self, trade_id, updates):
        return self._change(trade_id, lambda t: t.update(updates))

    def get_all_trades(self):
        return self._read()["trades"]


class NoFsyncStore(OrdinaryStore):
    FSYNC = False


class NoDirFsyncStore(OrdinaryStore):
    DIR_FSYNC = False


def make_store(trade_log, lock_file=None, **limits):
    return OrdinaryStore(trade_log, lock_file, **limits)


def no_fsync(trade_log, lock_file=None, **limits):
    return NoFsyncStore(trade_log, lock_file, **limits)


def no_dir_fsync(trade_log, lock_file=None, **limits):
    return NoDirFsyncStore(trade_log, lock_file, **limits)
