"""The chaos campaign against PostgreSQL: our store passes the lock and database-fault
scenarios; the unlocked control (checks, then insert, no lock) is caught by each race."""

from __future__ import annotations

import pytest

from tests.test_chaos import campaign, describe

pytest.importorskip("psycopg", reason="PostgreSQL chaos needs psycopg 3 (pip install 'tradestore[postgres]')")

OURS = "tradestore_harness.pg_target:tradestore_pg"
CONTROL = "tradestore_harness.pg_target:pg_unlocked"


@pytest.fixture
def pg_env(pg_dsn, monkeypatch):
    monkeypatch.setenv("TRADESTORE_PG_DSN", pg_dsn)  # the spawned workers inherit it
    # The session's server is shared by other tests: never restarted from here (ci/test runs
    # db-restart against its own server after the suite).
    monkeypatch.delenv("TRADESTORE_PG_SERVER_DIR", raising=False)


def test_our_postgres_store_passes_the_lock_and_session_fault_scenarios(pg_env):
    # The races and db-restart run in ci/test's database chaos subset; here the two scenarios
    # that lean on the store's own reports of its lock (the observer) the most.
    run = campaign(OURS, "mutex", "db-terminate", "db-restart", duration=1.5)
    verdicts = {r.scenario: r.verdict for r in run.results}
    assert verdicts == {"mutex": "PASS", "db-terminate": "PASS", "db-restart": "NOT APPLICABLE"}, describe(run)
    by_name = {r.scenario: r for r in run.results}
    assert by_name["db-terminate"].kills > 0 and by_name["db-terminate"].ok > 0
    assert "TRADESTORE_PG_SERVER_DIR" in by_name["db-restart"].not_applicable


@pytest.mark.parametrize("scenario,prop", [
    ("race-duplicate", "duplicate-open-symbol"),
    ("toctou-waitpoint", "duplicate-open-symbol"),
    ("mutex", "mutual-exclusion"),
])
def test_the_unlocked_postgres_control_is_caught_every_run(pg_env, scenario, prop):
    run = campaign(CONTROL, scenario, duration=1.5)
    assert prop in run.violated(), describe(run)


def test_file_targets_say_the_database_faults_do_not_apply():
    run = campaign("tradestore", "db-terminate", "db-restart")
    assert {r.verdict for r in run.results} == {"NOT APPLICABLE"}
    assert all("chaos_database" in r.not_applicable for r in run.results)


def test_a_hold_ends_when_the_nemesis_ends_the_session_and_only_then():
    from tradestore_harness.checkers import check_mutual_exclusion
    from tradestore_harness.history import lock_intervals

    def ev(t, kind, pid, **extra):
        return {"ev": kind, "w": f"w{pid}", "pid": pid, "t": t, **extra}

    ended = [ev(1, "lock", 1), ev(2, "session-ending", 9, target_pid=1), ev(2.5, "lock", 1),
             ev(3, "session-ended", 9, target_pid=1), ev(4, "lock", 2), ev(5, "unlock", 1), ev(6, "unlock", 2)]
    assert check_mutual_exclusion(lock_intervals(ended), ended) == []
    # Without the nemesis's record, the same holds overlap; and a hold taken after the session
    # ended is an ordinary one again.
    plain = [e for e in ended if not e["ev"].startswith("session")]
    assert [p for p, _ in check_mutual_exclusion(lock_intervals(plain), plain)] == ["mutual-exclusion"]
    later = ended + [ev(7, "lock", 1), ev(8, "lock", 2), ev(9, "unlock", 1), ev(10, "unlock", 2)]
    assert [p for p, _ in check_mutual_exclusion(lock_intervals(later), later)] == ["mutual-exclusion"]
