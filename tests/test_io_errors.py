"""io-errors: our store raises, keeps the log and recovers; stores that hide an error are caught."""

from __future__ import annotations

import json
import os
import re
import tempfile

import pytest

from tests.idioms import rules
from tests.idioms.base import sync_directory
from tests.idioms.open_flock import Store
from tradestore_chaos.scenarios import io_errors
from tradestore_harness import fsworkload as fw
from tradestore_harness.context import ScenarioContext
from tradestore import TradeStore


class SwallowingStore(TradeStore):
    """Negative control: persistence is "best effort": a failed write is logged and ignored."""

    def _commit(self, ledger, open_symbols_before) -> None:
        try:
            super()._commit(ledger, open_symbols_before)
        except OSError:
            self._cache = None


class RetryingStore(TradeStore):
    """Positive control: retries a failed write once, from the start. The retry writes the
    document into a new temp file and syncs that, so its ok answer is true even after a failed
    fsync: the data reaches the disk through a file whose sync did not fail."""

    def _commit(self, ledger, open_symbols_before) -> None:
        try:
            super()._commit(ledger, open_symbols_before)
        except OSError:
            super()._commit(ledger, open_symbols_before)


class FsyncRetryingStore(Store):
    """Negative control: retries a failed fsync on the same file. The kernel may have dropped
    the pages the failure was about and marked them clean, so the retry "succeeds" without
    writing them, and the store acknowledges a log that a power cut can take back."""

    def save(self, doc: dict) -> None:
        folder = os.path.dirname(self.trade_log)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".trades-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, allow_nan=False)
            f.flush()
            try:
                os.fsync(f.fileno())
            except OSError:
                os.fsync(f.fileno())  # the flaw
        os.replace(tmp, self.trade_log)
        sync_directory(folder)


class StartsItsLog(Store):
    """Positive control: the constructor creates the folder, the lock file and an empty log,
    so a fault can hit the store before any operation; it must then refuse to start, and
    start once the fault clears."""

    def __init__(self, trade_log, lock_file=None, **options) -> None:
        super().__init__(trade_log, lock_file, **options)
        os.makedirs(os.path.dirname(self.trade_log), exist_ok=True)
        open(self.lock_file, "a").close()
        with self.locked():
            if not os.path.exists(self.trade_log):
                self.save(rules.empty())


def swallowing(trade_log, lock_file=None, **limits):
    return SwallowingStore(trade_log, lock_file, **limits)


def retrying(trade_log, lock_file=None, **limits):
    return RetryingStore(trade_log, lock_file, **limits)


def retrying_fsync(trade_log, lock_file=None, **limits):
    return FsyncRetryingStore(trade_log, lock_file, **limits)


def starting_its_log(trade_log, lock_file=None, **limits):
    return StartsItsLog(trade_log, lock_file, **limits)


def test_io_errors_pass_on_our_store(tmp_path):
    ctx = ScenarioContext(target="tradestore", seed=5, quick=True, duration=None, writers=1, workdir=tmp_path)
    result = io_errors.run(ctx)
    assert result.violations == [], f"seed {result.seed}: {result.violations}"
    assert result.crash_points >= 40  # fault points that were actually hit


def _run_control(tmp_path, target):
    workloads = [[("open", "XRP"), ("update", "base")]]
    report = fw.in_worker(io_errors.io_worker, (target, str(tmp_path), workloads), lambda _m: None)
    return dict(report["violations"])


def test_a_store_that_swallows_write_errors_is_caught(tmp_path):
    props = _run_control(tmp_path, "tests.test_io_errors:swallowing")
    assert "fault-surfaced" in props and "ack-durable" in props, props
    assert "T003" in props["ack-durable"]  # the acknowledged trade that is not in the log


def test_a_store_that_retries_a_failed_fsync_on_the_same_file_is_caught(tmp_path):
    props = _run_control(tmp_path, "tests.test_io_errors:retrying_fsync")
    assert "fault-surfaced" in props and "ack-durable" in props, props
    # Only a failed sync must reach the caller; the finding quotes its first three cases.
    assert re.search(r"returned ok although \['fsync'\] failed", props["fault-surfaced"])


@pytest.mark.parametrize("target", ["retrying", "starting_its_log"])
def test_a_store_that_writes_again_from_the_start_or_starts_its_log_passes(tmp_path, target):
    # A retry into a new temp file is a true success after a failed fsync; a fault in the
    # constructor is a refusal to start, not a harness error.
    assert _run_control(tmp_path, f"tests.test_io_errors:{target}") == {}


def test_an_error_writing_the_lock_pid_hint_does_not_leave_the_lock_held(tmp_path):
    # Found by io-errors: the pid write after flock raised out of acquire(), and the process
    # then held the lock with nobody to release it, so every later write failed.
    import errno

    from tradestore_harness.fsfaults import Fault, FsShim
    from tradestore import FileLock

    lock = FileLock(str(tmp_path / "x.lock"), timeout=1.0)
    with FsShim(tmp_path) as shim:
        with lock:
            pass  # creates the lock file: calls 0 (open) and 1 (pwrite)
        shim.reset(fault=Fault(0, "error", errno.EIO))  # the next pid write fails
        with lock:
            assert shim.calls and shim.calls[0].kind == "pwrite" and shim.calls[0].error == errno.EIO
    assert not lock.held_by_current_thread()


def test_a_failing_close_of_the_cached_version_leaves_no_failed_operation_in_memory(tmp_path):
    # Found by io-errors once file objects became visible: closing the cached version's
    # read-only descriptor raised inside the clean-up of a failed write, before the cache was
    # dropped, so the next call started from the failed call's half-applied ledger.
    import errno

    from tradestore_harness.fsfaults import Fault, FsShim

    with FsShim(tmp_path) as shim:
        store = TradeStore(tmp_path / "trades.json")
        store.open_trade("ETH", "LONG", 100.0, 95.0, 110.0, 1.0)  # caches the version it wrote
        shim.faults = [Fault(None, "error", errno.EIO, kind="close")]  # every close fails
        try:
            store.open_trade("XRP", "LONG", 100.0, 95.0, 110.0, 1.0)
        except OSError:
            pass
        shim.clear_fault()
        store.open_trade("LTC", "LONG", 100.0, 95.0, 110.0, 1.0)
    assert [t["symbol"] for t in TradeStore(tmp_path / "trades.json").get_all_trades()] == ["ETH", "LTC"]
