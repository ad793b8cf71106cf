"""What a chaos scenario is given to run: the target, the seed, the size and a scratch directory.

Every scenario's ``run(ctx)`` receives one :class:`ScenarioContext`. A scenario must take every
random choice from ``ctx.seed`` (so ``--seed`` reproduces it), keep all files under
``ctx.workdir`` (a fresh, empty directory owned by this scenario alone), and report progress
through ``ctx.progress`` rather than printing.
"""

from __future__ import annotations

import pathlib
import random
from dataclasses import dataclass, field
from typing import Callable


def _silent(_message: str) -> None:
    """Default progress sink: drop the message."""


@dataclass
class ScenarioContext:
    """Inputs of one scenario run.

    ``target`` is a registered target name (see :mod:`tradestore_harness.targets`) or ``"module:factory"``;
    workers run in spawned processes, so they receive this *name* and resolve it themselves.
    ``duration`` (seconds) bounds time-driven scenarios when given; ``None`` means the
    scenario's own default for ``quick`` or full size. ``writers`` is the number of competing
    writer processes a scenario should start. ``start_method`` is how scenarios that restart
    workers after kills start them (``spawn``, or ``forkserver`` for long storms; see
    :func:`tradestore_harness.processes.context`).
    """

    target: str
    seed: int
    quick: bool
    duration: float | None
    writers: int
    workdir: pathlib.Path
    progress: Callable[[str], None] = field(default=_silent)
    start_method: str = "spawn"

    def rng(self, salt: str = "") -> random.Random:
        """A random generator derived only from the seed and ``salt`` (stable across runs)."""
        return random.Random(f"{self.seed}:{salt}")

    def subdir(self, name: str) -> pathlib.Path:
        """A fresh directory ``workdir/name`` (created; must not exist yet)."""
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=False)
        return path
