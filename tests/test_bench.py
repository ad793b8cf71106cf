"""The benchmark: its smoke size runs and reports every part, and its baselines are fair.

No timing is asserted here (timings belong to ``python -m bench``, not to tests); these
tests check the shape of the output and that every store in the comparison enforces the same
rules on the same data.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from bench import journal as journal_bench
from bench import stores
from bench import suite as bench
from bench.baselines import AppendFloorStore, RuleConfig, SeedPatternStore, SqliteStore
from bench.history import build_history, write_tradestore_log
from tradestore import TradeStore
from tradestore.ledger import Ledger
from tradestore.risk import RiskLimits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_run_reports_every_part(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-targets", "--json", str(out),
         "--dir", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| store | history | writers |" in proc.stdout
    assert "[1/" in proc.stderr  # progress is shown while it runs
    report = json.loads(out.read_text())
    cfg = report["config"]
    cells = {(r["impl"], r["history"], r["writers"]) for r in report["writes"]}
    # tradestore-pg needs a PostgreSQL server; where none can start, the report says why. The
    # journal store is measured wherever this tradestore has the journal format.
    left_out = report.get("left_out", {})
    assert set(left_out) <= {"tradestore-pg"} | ({stores.JOURNAL} if journal_bench.unavailable() else set())
    impls = [i for i in stores.IMPLS if i not in left_out]
    side_by_side = [i for i in stores.SIDE_BY_SIDE if i not in left_out]
    assert f"| history | writers | {' | '.join(side_by_side)} | journal / SQLite |" in proc.stdout
    reach = stores.DEFAULT_REACH
    assert cells == {(i, n, w) for i in impls for n in cfg["sizes"] for w in cfg["writers"]
                     if i not in reach or (n <= reach[i][0] and w <= reach[i][1])}
    assert {i for i, _n, _w in cells} >= (set(stores.SIDE_BY_SIDE) | {"seed-pattern"}) - set(left_out)
    for row in report["writes"]:
        assert len(row["runs"]) == cfg["repeat"]
        assert row["writes_per_s"] > 0 and row["ms_per_write"] > 0
        assert row["max_ms"] >= max(run["max_ms"] for run in row["runs"]) >= row["ms_per_write"]
        assert all(run["writes"] >= 2 for run in row["runs"])
        if row["impl"] == bench.REFERENCE:
            assert row["ratio_to_reference"] == pytest.approx(1.0)
        if row["impl"] == stores.JOURNAL:
            # the journal's worst write is its checkpoint run's, which did checkpoint
            check = row["checkpoint"]
            assert check["run"]["checkpointed"] and not any(run["checkpointed"] for run in row["runs"])
            assert row["max_ms"] >= check["worst_ms"] > 0 and check["writes_between"] > 1
            assert 300 < check["bytes_per_write"] < 2000  # one trade record and its frame
    modes = ["cold", "following document", "following journal"]
    assert [(r["history"], r["mode"]) for r in report["reconcile"]] == [
        (n, mode) for n in cfg["reconcile_sizes"] for mode in modes]
    assert all(len(r["seconds"]) == cfg["repeat"] and r["median_s"] > 0 for r in report["reconcile"])
    assert {r["lock"] for r in report["handoff"]} == {"FileLock", "flock"}
    assert all(r["rounds"] == cfg["handoff_rounds"] for r in report["handoff"])
    assert {r["impl"] for r in report["rss"]} == set(impls)
    assert all(r["rss_peak_kib"] > 0 for r in report["rss"])
    assert {"cpu", "cores", "python", "sqlite", "filesystem"} <= set(report["machine"])


def test_the_journal_store_is_measured_once_tradestore_has_the_journal_format():
    """Until TradeStore takes log_format, the journal store is left out with the reason, not a crash."""
    why = journal_bench.unavailable()
    assert (why is None) == (importlib.util.find_spec("tradestore.journal") is not None), why


def test_the_floor_appends_one_record_per_write_and_counts_each_id_once(tmp_path):
    path = str(tmp_path / "floor.log")
    AppendFloorStore.create(path, 500, 501)
    ours, theirs = AppendFloorStore(path), AppendFloorStore(path)
    first = ours.open_trade("W0", "LONG", 100.0, 99.0, 102.0, 1.0, "Bench", "B")
    second = theirs.open_trade("W1", "LONG", 100.0, 99.0, 102.0, 1.0)  # reads our line: the next id
    closed = ours.close_trade(first["id"], 101.5, "bench")
    assert (first["id"], second["id"], closed["status"]) == ("T501", "T502", "CLOSED")
    with pytest.raises(LookupError):
        theirs.close_trade(first["id"], 101.5)  # it only closes what it opened
    lines = open(path, encoding="utf-8").read().splitlines()
    assert len(lines) == 4  # the history's line, then one line per acknowledged write
    assert json.loads(lines[3]) == {"next_id": 503, "trades": [closed]}  # the whole record, as a journal writes it
    assert AppendFloorStore.count(path) == 502
    # Two opens that got one id (writers that did not hold the lock) are one trade: a lost write.
    with open(path, "a", encoding="utf-8") as f:
        f.write(lines[2] + "\n")
    assert AppendFloorStore.count(path) == 502
    ours.close()
    theirs.close()


def test_help_and_bad_arguments():
    ok = subprocess.run([sys.executable, "-m", "bench", "--help"], cwd=ROOT,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "--quick" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "bench", "--repeat", "0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0


def test_profile_reports_where_the_write_path_spends_time(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--profile", "--profile-history", "200",
         "--profile-cycles", "3", "--profile-top", "5", "--dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "6 writes in" in proc.stdout
    assert "top 5 by tottime" in proc.stdout and "top 5 by cumulative" in proc.stdout


def test_history_is_valid_for_tradestore(tmp_path):
    trades, next_id = build_history(600)
    path = tmp_path / "trades.json"
    write_tradestore_log(str(path), trades, next_id)
    store = TradeStore(str(path), correlation_groups=bench.RULES.correlation_groups)
    assert store.verify_integrity() == []
    assert len(store.get_all_trades()) == 600
    assert 0 < store.position_count() < bench.RULES.max_positions


def _outcomes(store, steps):
    """Run open/close steps; each gives the trade id, or the name of the rule that refused."""
    results = []
    for step in steps:
        try:
            if step[0] == "open":
                results.append(store.open_trade(*step[1:])["symbol"])
            else:
                opened = [t for t in store.get_open_trades() if t["symbol"] == step[1]]
                results.append(store.close_trade(opened[0]["id"], step[2])["status"])
        except Exception as exc:  # noqa: BLE001 - the rule name is what is compared
            results.append(getattr(exc, "check", type(exc).__name__))
    return results


RULE_SCENARIO = [
    ("open", "AAA", "LONG", 100.0, 99.0, 110.0, 1.0),
    ("open", "aaa ", "LONG", 100.0, 99.0, 110.0, 1.0),  # duplicate after normalising
    *[s for _ in range(3) for s in (("open", "LOS", "LONG", 100.0, 99.0, 110.0, 1.0), ("close", "LOS", 99.5))],
    ("open", "LOS", "LONG", 100.0, 99.0, 110.0, 1.0),  # three losses in a row: loss cap
    ("open", "G1", "LONG", 100.0, 90.0, 110.0, 12.0),  # risk 120 of a 200 group budget
    ("open", "G2", "SHORT", 50.0, 51.0, 40.0, 90.0),  # +90 > 200: correlation limit
    ("open", "G2", "SHORT", 50.0, 51.0, 40.0, 10.0),  # +10 fits
    ("open", "BBB", "LONG", 10.0, 9.0, 12.0, 1.0),
    ("open", "CCC", "LONG", 10.0, 9.0, 12.0, 1.0),  # fifth open position: position cap
    ("close", "BBB", 11.0),
    ("open", "CCC", "LONG", 10.0, 9.0, 12.0, 1.0),
    ("open", "DDD", "SHORT", 10.0, 9.0, 12.0, 1.0),  # bad input, refused before any rule
]


def test_baselines_enforce_the_same_rules_as_tradestore(tmp_path):
    rules = RuleConfig(max_positions=4, correlation_groups={"g": ["G1", "G2"]})
    limits = rules.limits()
    ours = TradeStore(str(tmp_path / "ts.json"), max_positions=limits.max_positions,
                      correlation_groups=rules.correlation_groups)
    seed = SeedPatternStore(str(tmp_path / "seed.json"), rules=rules)
    sqlite = SqliteStore(str(tmp_path / "db.sqlite"), rules=rules)
    expected = _outcomes(ours, RULE_SCENARIO)
    assert {"duplicate_symbol", "loss_cap", "correlation_limit", "position_cap", "InvalidTrade"} <= set(expected)
    assert _outcomes(seed, RULE_SCENARIO) == expected
    assert _outcomes(sqlite, RULE_SCENARIO) == expected
    # Same records too, apart from the clock.
    def comparable(trades):
        return [{k: v for k, v in t.items() if not k.endswith("_time") and k != "timestamp"}
                for t in trades]
    assert comparable(seed.get_all_trades()) == comparable(ours.get_all_trades())
    assert comparable(sqlite.get_all_trades()) == comparable(ours.get_all_trades())
    sqlite.close()


def test_sqlite_loads_history_with_the_same_equity(tmp_path):
    trades, _ = build_history(300)
    SqliteStore.create(str(tmp_path / "h.db"), trades)
    db = SqliteStore(str(tmp_path / "h.db"), rules=bench.RULES)
    assert db.get_all_trades() == trades
    db.close()


def test_cached_encoding_is_byte_identical_to_a_full_dump():
    """The write path reuses closed trades' JSON; the bytes must equal a fresh json.dumps."""
    trades, next_id = build_history(200)
    ledger = Ledger(trades, next_id, {"owner": "desk"})
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def full(led):
        return json.dumps(led.to_document(), separators=(",", ":"), allow_nan=False).encode()

    assert ledger.to_json() == full(ledger)
    for i in range(3):
        t = ledger.open_trade("W0", "LONG", 100.0, 99.0, 102.0, 1.0, now=now + timedelta(hours=i))
        assert ledger.to_json() == full(ledger)
        ledger.partial_close(t["id"], 0.5, 101.0, now=now + timedelta(hours=i, minutes=1))
        ledger.update_trade(t["id"], {"stop_price": 100.5})
        assert ledger.to_json() == full(ledger)
        ledger.close_trade(t["id"], 101.5, now=now + timedelta(hours=i, minutes=2))
        assert ledger.to_json() == full(ledger)
    # A damaged log with a repeated id: two records must not share one cached encoding.
    twin = Ledger([dict(trades[0]), dict(trades[0], notes="second")], next_id)
    assert twin.to_json() == full(twin) and twin.to_json() == full(twin)


def test_reloaded_log_reuses_only_unchanged_encodings(tmp_path):
    """After another writer's change, kept encodings are reused only for records still equal."""
    path = tmp_path / "trades.json"
    trades, next_id = build_history(120)
    write_tradestore_log(str(path), trades, next_id)
    ours = TradeStore(str(path), correlation_groups=bench.RULES.correlation_groups)
    theirs = TradeStore(str(path), correlation_groups=bench.RULES.correlation_groups)
    first = ours.open_trade("W0", "LONG", 100.0, 99.0, 102.0, 1.0)  # ours now keeps encodings
    theirs.close_trade(first["id"], 101.0, "theirs")
    # An out-of-band edit of a closed record: ours must write the edited record, not its copy.
    doc = json.loads(path.read_text())
    doc["trades"][5]["notes"] = "edited by hand"
    path.write_text(json.dumps(doc, separators=(",", ":")))
    ours.open_trade("W1", "LONG", 100.0, 99.0, 102.0, 1.0)
    written = path.read_bytes()
    reparsed = Ledger.from_json(written)
    assert written == json.dumps(reparsed.to_document(), separators=(",", ":")).encode()
    assert reparsed.get(doc["trades"][5]["id"])["notes"] == "edited by hand"
    assert reparsed.get(first["id"])["exit_reason"] == "theirs"


def test_a_journal_filled_to_its_checkpoint_keeps_its_trades_and_checkpoints_on_the_next_write(tmp_path):
    why = journal_bench.unavailable()
    if why:
        pytest.skip(why)
    path = str(tmp_path / "trades.json")
    trades, next_id = build_history(300)
    write_tradestore_log(path, trades, next_id)
    journal_bench.convert(path)
    store = bench.make_store(stores.JOURNAL, path)
    first = store.open_trade("W0", "LONG", 100.0, 99.0, 102.0, 1.0)
    size = journal_bench.journal_size(path)
    filled = journal_bench.fill_to_checkpoint(path)  # numbered after the record just written
    assert filled > 100 and size < journal_bench.journal_size(path) <= journal_bench.threshold(path)
    assert journal_bench.count_trades(path) == 301 and not journal_bench.checkpointed(path)
    store.close_trade(first["id"], 101.5)
    store.open_trade("W1", "LONG", 100.0, 99.0, 102.0, 1.0)
    assert journal_bench.checkpointed(path)  # one of those two writes outgrew the checkpoint
    fresh = bench.make_store(stores.JOURNAL, path)
    assert len(fresh.get_all_trades()) == journal_bench.count_trades(path) == 302
    assert fresh.get_all_trades()[:300] == trades  # the restated records changed nothing
    with open(path + ".journal", "ab") as f:
        f.write((4096).to_bytes(4, "big") + b"torn")  # a frame cut short: never acknowledged
    assert journal_bench.count_trades(path) == 302


def test_sqlite_history_is_created_in_wal_mode_so_writers_can_open_it_while_one_reads(tmp_path):
    """Switching to WAL needs the database's exclusive lock: a writer that had to do it while
    another connection read failed with "database is locked" (4 writers at 100,000 trades)."""
    path = str(tmp_path / "h.db")
    SqliteStore.create(path, build_history(50)[0])
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM trades").fetchone()  # holds a read lock
    SqliteStore(path, rules=bench.RULES, busy_timeout_ms=100).close()
    reader.execute("COMMIT")
    # The control: a database in the default rollback mode refuses that writer.
    legacy = str(tmp_path / "legacy.db")
    db = sqlite3.connect(legacy, isolation_level=None)
    db.execute("CREATE TABLE t (x)")
    db.close()
    reader = sqlite3.connect(legacy, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        SqliteStore(legacy, rules=bench.RULES, busy_timeout_ms=100)
    reader.execute("COMMIT")
