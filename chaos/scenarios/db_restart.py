"""db-restart: the database server crashes mid-write (pg_ctl stop -m immediate) and restarts.

An immediate stop is the server's crash: no checkpoint, every session cut, recovery from the
write-ahead log on the next start. Writers keep calling through the outage (their calls fail
or are unknown); afterwards every acknowledged operation must be in the recovered state.
"""

from __future__ import annotations

from tradestore_chaos.scenarios._db_storm import database, storm
from tradestore_harness.context import ScenarioContext
from tradestore_harness.hooks import DATABASE
from tradestore_harness.result import ScenarioResult

NAME = "db-restart"
DESCRIPTION = "the database server is stopped -m immediate mid-write and restarted; no ack lost"
REQUIRES = (DATABASE,)


def run(ctx: ScenarioContext) -> ScenarioResult:
    db = database(ctx)
    why = db.can_restart()
    if why is not None:
        return ScenarioResult(NAME, ctx.target, ctx.seed, not_applicable=why)
    result = ScenarioResult(NAME, ctx.target, ctx.seed)

    def restart(history) -> int:
        history.record("server-crash", why="pg_ctl stop -m immediate, then start")
        db.restart()
        return 1

    result.kills += storm(ctx, result, 2 if ctx.quick else 5, (0.3, 1.0), restart, "restart")
    acked = result.ok
    if not acked:
        result.not_proven("no operation was acknowledged, so no acknowledged write could be lost")
    return result
