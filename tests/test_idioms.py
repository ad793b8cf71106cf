"""The idiom control stores (tests/idioms/) and what the chaos harness makes of them.

First the stores themselves: the correct ones enforce the seed's rules exactly as specified
(checked against tradestore, an independent implementation of the same specification, over
generated operation sequences), every store works on its own, and an unreadable log is refused.
Then the harness on them: the correct builtin-open store passes the quick campaign, a
blocking-flock store that checks outside its lock is caught by toctou-waitpoint in every
round, and each negative control is caught by the scenario its flaw fails, with the property
it breaks. Scenario runs use the seed ``CHAOS_TEST_SEED`` (default 20261128), printed on failure.
"""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.idioms import STORES, Idiom, by_name, matrix, rules
from tradestore import RiskRejected, TradeStore, TradeStoreError
from tradestore_harness.targets import call, resolve_target

SEED = int(os.environ.get("CHAOS_TEST_SEED", "20261128"))
FILE_STORES = [s for s in STORES if not s.name.startswith("sqlite")]


def _store(idiom: Idiom, directory, **limits):
    return resolve_target(idiom.target)(str(directory / "trades.json"), str(directory / "trades.lock"), **limits)


# -- the rules: the same decisions and numbers as tradestore, an independent implementation ------

SYMBOLS = ("BTC", "ETH", "SOL", "AVAX", "XRP", "DOGE")
_move = st.sampled_from([0.9, 0.97, 1.0, 1.0, 1.013, 1.06])  # exits relative to entry: losses, breakevens, wins
OPS = st.one_of(
    st.tuples(st.just("open"), st.sampled_from(SYMBOLS), st.sampled_from(["LONG", "SHORT"]),
              st.sampled_from([50.0, 99.5, 101.25, 150.0]), st.sampled_from([0.01, 0.03, 0.08]),
              st.sampled_from([0.5, 0.123, 1.0, 3.0])),
    st.tuples(st.just("close"), st.integers(0, 9), _move),
    st.tuples(st.just("partial"), st.integers(0, 9), st.sampled_from([0.25, 0.5, 0.37]), _move),
    st.tuples(st.just("update"), st.integers(0, 9), st.sampled_from([0.97, 1.0, 1.02])),
)
LIMITS = st.fixed_dictionaries({
    "max_positions": st.integers(1, 4), "asset_consecutive_loss_cap": st.integers(1, 3),
    "max_corr_group_risk_pct": st.sampled_from([1.0, 4.0, 20.0]), "starting_capital": st.sampled_from([500.0, 5000.0]),
})


def _args(op, ids: list[str], trades: dict) -> tuple[str, list] | None:
    """The store call for a generated op, or None when it names no trade yet."""
    if op[0] == "open":
        _, symbol, side, entry, frac, size = op
        sign = 1 if side == "LONG" else -1
        return "open", [symbol, side, entry, round(entry * (1 - sign * frac), 2),
                        round(entry * (1 + sign * 2 * frac), 2), size, "setup", "B", f"n{len(ids)}"]
    if not ids:
        return None
    trade_id = ids[op[1] % len(ids)]
    trade = trades[trade_id]
    if op[0] == "close":
        return "close", [trade_id, round(trade["entry_price"] * op[2], 2), "exit"]
    if op[0] == "partial":
        return "partial", [trade_id, op[2], round(trade["entry_price"] * op[3], 2), "part"]
    return "update", [trade_id, {"stop_price": round(trade["stop_price"] * op[2], 2)}]


def _outcome(store, f: str, args: list) -> tuple:
    try:
        value = getattr(store, {"open": "open_trade", "close": "close_trade", "partial": "partial_close",
                                "update": "update_trade"}[f])(*args)
    except (RiskRejected, rules.Rejected) as exc:
        return "rejected", exc.check
    except (TradeStoreError, rules.BotError, ValueError, LookupError):
        return "refused", None
    return "ok", value["id"]


def _comparable(trades: list) -> list:
    times = {"entry_time", "exit_time", "timestamp"}
    return [{k: ([{a: b for a, b in p.items() if a not in times} for p in v] if k == "partial_exits" else v)
             for k, v in t.items() if k not in times} for t in trades]


@settings(max_examples=150)
@given(limits=LIMITS, ops=st.lists(OPS, min_size=1, max_size=25))
@example(limits={"max_positions": 3, "asset_consecutive_loss_cap": 1, "max_corr_group_risk_pct": 4.0,
                 "starting_capital": 5000.0},
         ops=[("open", "XRP", "LONG", 99.5, 0.03, 1.0), ("close", 0, 1.0), ("open", "XRP", "SHORT", 99.5, 0.03, 1.0)])
def test_the_bot_rules_decide_and_compute_as_specified(tmp_path_factory, limits, ops):
    """Every decision (and the check that refused), id and stored number equals tradestore's."""
    directory = tmp_path_factory.mktemp("rules")
    reference = TradeStore(str(directory / "ref.json"), fsync=False, **limits)
    mine = by_name("open-flock")
    bot = resolve_target(mine.target)(str(directory / "bot.json"), **limits)
    ids: list[str] = []
    for op in ops:
        bound = _args(op, ids, {t["id"]: t for t in bot.get_all_trades()})
        if bound is None:
            continue
        want, got = _outcome(reference, *bound), _outcome(bot, *bound)
        assert got == want, f"{bound}: the bot store answered {got}, the specification {want}"
        if got[0] == "ok" and bound[0] == "open":
            ids.append(got[1])
    assert _comparable(bot.get_all_trades()) == _comparable(reference.get_all_trades())


# -- each store on its own ------------------------------------------------------------------------

@pytest.mark.parametrize("idiom", STORES, ids=lambda s: s.name)
def test_each_store_works_alone(tmp_path, idiom):
    """Opens, refuses by the rules, partially closes, trails, closes; reads what it wrote."""
    store = _store(idiom, tmp_path, max_positions=2, asset_consecutive_loss_cap=1)
    first = store.open_trade("BTC", "LONG", 100.0, 95.0, 110.0, 1.0, "setup", "A", "token-1")
    assert first["id"] == "T001" and first["notes"] == "token-1"
    assert call(store, "open", [" btc ", "LONG", 100.0, 95.0, 110.0, 1.0])[0] == "fail"  # duplicate symbol
    store.open_trade("XRP", "SHORT", 100.0, 105.0, 90.0, 1.0)
    assert call(store, "open", ["ADA", "LONG", 100.0, 95.0, 110.0, 1.0])[0] == "fail"  # position cap
    store.partial_close("T001", 0.5, 104.0, "half")
    store.update_trade("T001", {"stop_price": 99.0})
    closed = store.close_trade("T001", 94.0, "stopped")
    assert closed["pnl_usd"] == -3.0 and closed["net_pnl_usd"] == 2.0 - 3.0 and closed["status"] == "CLOSED"
    assert call(store, "close", ["T001", 100.0, "again"])[0] == "fail"  # not open
    assert call(store, "open", ["BTC", "LONG", 100.0, 95.0, 110.0, 1.0])[0] == "fail"  # loss cap 1
    again = _store(idiom, tmp_path).get_all_trades()
    assert [t["id"] for t in again] == ["T001", "T002"] and again[0] == closed


@pytest.mark.parametrize("idiom", FILE_STORES, ids=lambda s: s.name)
@pytest.mark.parametrize("damage", [b"", b'{"trades": [{"id": "T001"', b'["not", "a", "log"]', b"\xff\xfe garbage"])
def test_an_unreadable_log_is_refused_and_left_alone(tmp_path, idiom, damage):
    (tmp_path / "trades.json").write_bytes(damage)
    store = _store(idiom, tmp_path)
    for f, args in (("read", []), ("open", ["ETH", "LONG", 100.0, 95.0, 110.0, 1.0]),
                    ("close", ["T001", 100.0, "x"])):
        assert call(store, f, args)[0] == "fail", f"{f} accepted an unreadable log"
    assert (tmp_path / "trades.json").read_bytes() == damage


# -- the matrix's judging, on hand-made results ---------------------------------------------------

class _Result:
    def __init__(self, violations=(), **extra):
        self.violations = [type("V", (), {"property": p, "detail": "d"})() for p in violations]
        self.__dict__.update(extra)


def test_verdicts_are_read_from_the_result():
    assert matrix.verdict_of(_Result()) == "PASS"
    assert matrix.verdict_of(_Result(["log-parses"])) == "FAIL"
    assert matrix.verdict_of(_Result(not_applicable="writes through mmap")) == "NOT APPLICABLE"
    assert matrix.verdict_of(_Result(verdict="NOT_PROVEN")) == "NOT PROVEN"
    assert matrix.verdict_of(_Result(verdict="not applicable")) == "NOT APPLICABLE"
    assert matrix.verdict_of(_Result(["x"], verdict="FAIL")) == "FAIL"


def test_cells_and_rows_name_catches_escapes_and_false_alarms():
    broken, correct = by_name("open-flock/check-outside-lock"), by_name("open-flock")
    caught = matrix.Cell("FAIL", ("duplicate-open-symbol",))
    unrelated = matrix.Cell("FAIL", ("harness-error",))
    passed = matrix.Cell("PASS")
    assert matrix.cell_text(broken, [caught] * 3) == "caught: duplicate-open-symbol"
    assert matrix.cell_text(broken, [caught, caught, passed]) == "caught 2/3: duplicate-open-symbol; PASS 1/3"
    assert matrix.cell_text(broken, [unrelated]) == "FAIL: harness-error"
    assert matrix.cell_text(correct, [matrix.Cell("NOT APPLICABLE")]) == "n/a"
    assert matrix.row_summary(broken, {"toctou-waitpoint": [caught] * 3}) == "caught"
    assert matrix.row_summary(broken, {"toctou-waitpoint": [caught, passed]}) == "ESCAPED toctou-waitpoint"
    assert matrix.row_summary(broken, {"mutex": [unrelated]}) == "ESCAPED"
    assert matrix.row_summary(correct, {"mutex": [passed], "power-loss": [matrix.Cell("NOT APPLICABLE")]}) == "ok"
    assert matrix.row_summary(correct, {"mutex": [caught]}) == "FALSE ALARM"
    assert matrix.row_summary(correct, {"mutex": [passed, matrix.Cell("NOT PROVEN")]}) == "NOT PROVEN"


def test_the_matrix_command_refuses_bad_usage(capsys):
    assert matrix.main(["--store", "no-such-store"]) == 2
    assert matrix.main(["--scenario", "no-such-scenario"]) == 2
    assert matrix.main(["--seeds", "0"]) == 2
    assert "no-such-scenario" in capsys.readouterr().err


def test_the_matrix_command_prints_the_table(tmp_path, capsys):
    out = tmp_path / "matrix.md"
    status = matrix.main(["--store", "open-flock", "--store", "open-flock/check-outside-lock",
                          "--scenario", "race-duplicate", "--seeds", "1", "--first-seed", str(SEED),
                          "--quick", "--out", str(out), "--json", str(tmp_path / "cells.json")])
    printed = capsys.readouterr().out
    assert f"Seeds {SEED}." in printed
    assert "| `open-flock` |" in printed and out.read_text() in printed
    row = next(line for line in printed.splitlines() if line.startswith("| `open-flock/check-outside-lock`"))
    assert status == 0 if "caught" in row.split("|")[-2] else status == 1
    # the saved cells render the same table without running anything
    assert matrix.main(["--render", str(tmp_path / "cells.json"), "--scenario", "race-duplicate"]) == status
    rendered = capsys.readouterr().out
    assert rendered.splitlines()[:4] == printed.splitlines()[:4]
    assert matrix.main(["--render", str(tmp_path / "missing.json")]) == 2


# -- the harness on the stores --------------------------------------------------------------------

def _campaign(idiom: Idiom, scenarios: list[str]):
    from tradestore_chaos.campaign import Campaign
    from tradestore_chaos.scenarios import available

    chosen = {name: module for name, module in available().items() if name in scenarios}
    return Campaign(chosen, idiom.target, SEED, quick=True, progress=lambda _m: None).run()


def _explain(results) -> str:
    return f"seed {SEED}: " + "; ".join(f"{r.scenario}: {[(v.property, v.detail[:200]) for v in r.violations]}"
                                         for r in results if r.violations)


def test_a_blocking_flock_store_checking_outside_its_lock_is_caught_in_every_toctou_round():
    idiom = by_name("open-flock/check-outside-lock")
    (result,) = _campaign(idiom, ["toctou-waitpoint"])
    rounds = 3  # the quick plan: the two fixed races and one fuzzed
    caught = {int(m.group(1)) for v in result.violations if v.property in ("duplicate-open-symbol", "position-cap")
              for m in [re.match(r"round(\d+)", v.detail)] if m}
    assert caught == set(range(1, rounds + 1)), _explain([result])


CATCHES = [pytest.param(s, name, id=f"{s.name}-{name}")
           for s in STORES if not s.correct for name in s.caught_by
           if (s.name, name) != ("open-flock/check-outside-lock", "toctou-waitpoint")]  # its own test below


@pytest.mark.parametrize(("idiom", "scenario"), CATCHES)
def test_each_negative_control_is_caught_with_the_property_it_breaks(idiom, scenario):
    (result,) = _campaign(idiom, [scenario])
    found = {v.property for v in result.violations}
    assert found & set(idiom.breaks), f"{idiom.name} escaped {scenario} ({sorted(found) or 'no violation'}); {_explain([result])}"
    assert matrix.verdict_of(result) == "FAIL"


# The scenarios whose observation of a store depends on its idiom: how it locks (the lock
# wrappers, blocked-waiter detection) and how it writes (the file-system layer).
OBSERVING = ["toctou-waitpoint", "mutex", "crash-points", "io-errors", "power-loss", "log-replaced"]


def test_the_correct_builtin_open_store_passes_the_scenarios_that_observe_it():
    results = _campaign(by_name("open-flock"), OBSERVING)
    assert {r.scenario: matrix.verdict_of(r) for r in results} == dict.fromkeys(OBSERVING, "PASS"), _explain(results)


def test_a_store_working_relative_to_a_directory_descriptor_is_seen_and_passes():
    # os.open(name, dir_fd=...), os.replace(..., src_dir_fd=, dst_dir_fd=): the harness resolves
    # each name against its directory, so it sees the commits and models the disk.
    results = _campaign(by_name("dir-fd"), OBSERVING)
    assert {r.scenario: matrix.verdict_of(r) for r in results} == dict.fromkeys(OBSERVING, "PASS"), _explain(results)


@pytest.mark.parametrize("name", ["record-lock", "record-lock/posix", "open-flock/shared-reads"])
def test_stores_locking_with_record_locks_their_own_lock_file_or_shared_reads_pass(name):
    # Their lock calls are fcntl.fcntl, one locks a file the harness never named, one reads
    # under a shared lock: the harness must still see each critical section and each rival
    # waiting for it, and no shared lock counts as one.
    scenarios = ["toctou-waitpoint", "mutex", "race-duplicate"]
    results = _campaign(by_name(name), scenarios)
    assert {r.scenario: matrix.verdict_of(r) for r in results} == dict.fromkeys(scenarios, "PASS"), _explain(results)


@pytest.mark.slow
def test_the_correct_builtin_open_store_passes_the_quick_campaign():
    results = _campaign(by_name("open-flock"), list(_all_scenarios()))
    verdicts = {r.scenario: matrix.verdict_of(r) for r in results}
    assert set(verdicts.values()) == {"PASS"}, f"{verdicts}; {_explain(results)}"


def _all_scenarios():
    from tradestore_chaos.scenarios import available

    return available()


@pytest.mark.slow
@pytest.mark.parametrize("idiom", STORES, ids=lambda s: s.name)
def test_matrix_row(idiom):
    """Every scenario on one store: a correct one never fails, a negative control is caught."""
    from tradestore_chaos.scenarios import available

    row = {name: [matrix.run_cell(idiom, name, SEED, quick=True)] for name in available()}
    summary = matrix.row_summary(idiom, row)
    assert summary == ("ok" if idiom.correct else "caught"), \
        f"seed {SEED}: {summary}: " + "; ".join(f"{n}: {c[0].verdict} {c[0].detail[:150]}" for n, c in row.items())
