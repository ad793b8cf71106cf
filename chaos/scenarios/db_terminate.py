"""db-terminate: the server ends a writer's session inside its transaction (pg_terminate_backend).

The nemesis ends every session of the run's writers that is inside a transaction (holding the
account, waiting for it, or about to COMMIT) at seeded moments. The server rolls such a
transaction back and releases its lock; the writer sees an error, and a COMMIT whose reply
was lost is reported as unknown, never as refused. Nothing acknowledged may be lost, nothing
refused may be in the state, and the critical sections of the survivors never overlap.
"""

from __future__ import annotations

import threading

from tradestore_chaos.scenarios._db_storm import database, storm
from tradestore_harness.context import ScenarioContext
from tradestore_harness.hooks import DATABASE
from tradestore_harness.result import ScenarioResult

NAME = "db-terminate"
DESCRIPTION = "pg_terminate_backend of writers inside their transactions; acks kept, nothing refused written"
REQUIRES = (DATABASE,)
POLLS = 100  # tries per fault slot, 5 ms apart, to find a writer inside its transaction


def run(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult(NAME, ctx.target, ctx.seed)
    db = database(ctx)
    pause = threading.Event()  # never set: a timed wait between polls

    def terminate(history) -> int:
        def before(client_pid: int) -> None:
            # Recorded first: the victim's hold of the lock ends here at the latest.
            history.record("session-ending", target_pid=client_pid, why="pg_terminate_backend")

        def after(client_pid: int) -> None:
            history.record("session-ended", target_pid=client_pid)
        # A holder past its lock statement is there most of the time; poll briefly for one.
        for _ in range(POLLS):
            ended = db.terminate_writers(before, after)
            if ended:
                return ended
            pause.wait(0.005)
        return 0

    landed = storm(ctx, result, 6 if ctx.quick else 20, (0.05, 0.3), terminate, "termination")
    result.kills += landed
    if not landed:
        result.not_proven("no writer was inside a transaction when the sessions were ended")
    return result
