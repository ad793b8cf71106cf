"""log-replaced and the three mutants the new faults exist for: each mutant is our real store
(or reconciler) with one plausible bug that no kill, crash point or I/O error exposes; each is
caught here or by io-errors' short writes; our store and a stranger's pass."""

from __future__ import annotations

import json
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.idioms.open_flock import Store
from tradestore_chaos.scenarios import io_errors, log_replaced
from tradestore_harness import checkers
from tradestore_harness import fsworkload as fw
from tradestore_harness.context import ScenarioContext
from tradestore_harness.targets import resolve_target

SEED = int(os.environ.get("CHAOS_TEST_SEED", "20261128"))


def _run(tmp_path, target):
    ctx = ScenarioContext(target=target, seed=SEED, quick=True, duration=None, writers=1, workdir=tmp_path)
    return log_replaced.run(ctx)


class KeysBackwards(Store):
    """Positive control: a correct store whose records list their keys backwards (the stop
    before the id) and whose whole numbers are written without a fraction (``19``)."""

    def save(self, doc: dict) -> None:
        def backwards(value):
            if isinstance(value, dict):
                return {k: backwards(v) for k, v in reversed(list(value.items()))}
            if isinstance(value, list):
                return [backwards(v) for v in value]
            return int(value) if isinstance(value, float) and value.is_integer() else value

        super().save(backwards(doc))


class StatCache(Store):
    """Negative control: keeps the log it read or wrote and reuses it while the log's device,
    inode, size and mtime are unchanged, without holding that version open, so a replacement that takes
    the freed inode number within one timestamp tick goes unseen."""

    _known: tuple | None = None

    def load(self) -> dict:
        try:
            st = os.stat(self.trade_log)
        except FileNotFoundError:
            return super().load()
        if self._known is None or self._known[0] != self._key(st):
            self._known = (self._key(st), json.dumps(super().load()))
        return json.loads(self._known[1])

    def save(self, doc: dict) -> None:
        super().save(doc)
        self._known = (self._key(os.stat(self.trade_log)), json.dumps(doc))  # what it just wrote

    @staticmethod
    def _key(st) -> tuple:
        return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _reuses_inode_numbers(folder) -> bool:
    """Whether replacing a file twice here gives the new file the first one's inode number."""
    path = os.path.join(folder, "probe")
    open(path, "w").close()
    first = os.stat(path).st_ino
    for k in range(2):
        with open(f"{path}.{k}", "w"):
            pass
        os.replace(f"{path}.{k}", path)
    reused = os.stat(path).st_ino == first
    os.unlink(path)
    return reused


def test_a_cache_that_knows_the_inode_but_does_not_hold_it_open_is_caught(tmp_path):
    if not _reuses_inode_numbers(tmp_path):
        pytest.skip("this file system does not reuse inode numbers at once, so no replacement can take one")
    result = _run(tmp_path, "tests.test_log_replaced:StatCache")
    props = {v.property: v.detail for v in result.violations}
    assert "ack-durable" in props, (SEED, result.violations, result.notes)
    assert "set T002 stop to 18.0" in props["ack-durable"]


@pytest.mark.parametrize("target", ["tradestore", "tests.ordinary_store:make_store",
                                    "tests.test_log_replaced:KeysBackwards"])
def test_a_correct_store_keeps_the_other_writer_s_change_and_derives_what_it_names(tmp_path, target):
    result = _run(tmp_path, target)
    assert result.verdict == "PASS", f"seed {SEED}: {result.violations}"
    assert result.crash_points >= len(log_replaced.SECOND_OPS)  # replacements made
    if target == "tradestore":
        assert result.crash_points > 10  # and one per open of the reconcile


def test_a_cache_that_ignores_the_inode_loses_the_same_size_change(tmp_path):
    result = _run(tmp_path, "unsafe-cache-ignores-inode")
    props = {v.property: v.detail for v in result.violations}
    assert list(props) == ["ack-durable"], result.violations
    assert f"{len(log_replaced.SECOND_OPS)} case(s)" in props["ack-durable"]
    assert "set T002 stop to 18.0" in props["ack-durable"] and "final log has 19.0" in props["ack-durable"]


def test_a_reconciler_that_hashes_one_read_and_derives_from_another_is_caught(tmp_path):
    result = _run(tmp_path, "unsafe-reconcile-two-reads")
    props = {v.property: v.detail for v in result.violations}
    assert list(props) == ["derived-consistent"], result.violations
    assert "differs from a fresh rebuild of log version" in props["derived-consistent"]


def test_the_other_writer_s_file_has_the_same_size_and_mtime_but_a_new_inode(tmp_path):
    fw.setup_baseline(resolve_target("tradestore"), str(tmp_path), with_reconcile=False)
    log, lock, _ = fw.paths(str(tmp_path))
    before = os.stat(log)
    data = open(log, "rb").read()
    moved, stop = log_replaced.moved_stop(data, "T002")
    assert moved != data and len(moved) == len(data) and stop == 18.0
    log_replaced.replace_with(log, lock, moved, keep_mtime=True)
    after = os.stat(log)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert after.st_ino != before.st_ino and open(log, "rb").read() == moved


def test_a_store_whose_log_has_no_stop_to_move_is_a_harness_error(tmp_path):
    class Odd:
        """Keeps every trade's stop as text: there is no number to move."""

        def __init__(self, log, lock=None, **limits):
            self.inner = resolve_target("tests.ordinary_store:make_store")(log, lock, **limits)
            self.log = log

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def open_trade(self, *args):
            value = self.inner.open_trade(*args)
            with open(self.log, "rb") as f:
                data = f.read()
            with open(self.log, "wb") as f:
                f.write(re.sub(rb'("stop_price"\s*:\s*)([0-9.]+)', rb'\1"\2"', data))
            return value

    out = {"invoked": 0, "ok": 0, "rejected": 0, "crash_points": 0, "states_checked": 0}
    found = log_replaced.same_size_round(Odd, str(tmp_path / "d"), ("open", "XRP"), out)
    assert [p for p, _ in found] == ["harness-error"] and out["crash_points"] == 0


_POSITIVE = st.floats(0.001, 1e6, allow_nan=False, allow_infinity=False)
_NUMBER_TEXT = st.one_of(  # a stop as stores write it: int, repr, fixed decimals, exponent
    st.integers(1, 10**6).map(str), _POSITIVE.map(repr),
    st.tuples(_POSITIVE, st.integers(0, 6)).map(lambda fp: f"{fp[0]:.{fp[1]}f}"), _POSITIVE.map(lambda f: f"{f:e}"))


def _layout(value, pad: str, colon: str, depth: int = 0) -> str:
    """``value`` (dicts as lists of pairs, numbers as their text) as JSON in a store's layout."""
    inner, outer = ("\n" + pad * (depth + 1), "\n" + pad * depth) if pad else ("", "")
    if isinstance(value, list) and value and isinstance(value[0], tuple):
        body = ("," + inner).join(f'"{k}"{colon}{_layout(v, pad, colon, depth + 1)}' for k, v in value)
        return "{" + inner + body + outer + "}"
    if isinstance(value, list):
        return "[" + inner + ("," + inner).join(_layout(v, pad, colon, depth + 1) for v in value) + outer + "]"
    return value if isinstance(value, str) and not value.startswith("@") else json.dumps(value[1:])


@settings(max_examples=300, deadline=None)
@given(stops=st.lists(_NUMBER_TEXT.filter(lambda t: float(t) >= 0.01), min_size=2, max_size=4),
       order=st.randoms(use_true_random=False), pad=st.sampled_from(["", " ", "  ", "\t"]),
       colon=st.sampled_from([":", ": ", " : "]), nested=st.booleans())
def test_the_stop_is_moved_whatever_the_store_s_layout(stops, order, pad, colon, nested):
    # Any key order, indentation, spacing and number format, and other "stop_price" keys nested
    # in the records: the moved bytes are as long and change exactly T002's stop, downwards.
    def record(k, stop):
        fields = [("id", f"@T{k:03d}"), ("symbol", f"@S{k}"), ("status", "@OPEN"), ("stop_price", stop)]
        if nested:
            fields.append(("history", [[("stop_price", stop), ("at", "@x")]]))
        order.shuffle(fields)
        return fields

    data = _layout([("trades", [record(k, stop) for k, stop in enumerate(stops, 1)]),
                    ("next_id", str(len(stops) + 1))], pad, colon).encode()
    before, why = checkers.parse_log(data)
    assert why is None, data
    moved = log_replaced.moved_stop(data, "T002")
    assert moved is not None, data
    new, stop = moved
    after, _ = checkers.parse_log(new)
    t002 = next(t for t in before["trades"] if t["id"] == "T002")
    assert len(new) == len(data) and 0 <= stop < t002["stop_price"], (data, new)
    t002["stop_price"] = stop
    assert after == before, (data, new)


def test_a_write_loop_that_ignores_short_writes_is_caught_by_io_errors(tmp_path):
    workloads = [[("open", "XRP")]]
    report = fw.in_worker(io_errors.io_worker, ("unsafe-ignores-short-writes", str(tmp_path), workloads),
                          lambda _m: None)
    props = dict(report["violations"])
    assert "log-parses" in props, report["violations"]
    assert "a short write at call" in props["log-parses"]


def test_the_mutants_work_as_stores_when_nothing_goes_wrong(tmp_path):
    for name in ("unsafe-ignores-short-writes", "unsafe-cache-ignores-inode", "unsafe-reconcile-two-reads"):
        store = resolve_target(name)(str(tmp_path / f"{name}.json"))
        trade = store.open_trade("ETH", "LONG", 100.0, 95.0, 110.0, 1.0)
        store.close_trade(trade["id"], 105.0, "TP")
        assert [t["status"] for t in store.get_all_trades()] == ["CLOSED"]
