"""The registry of chaos scenarios, in the order the default campaign runs them.

A scenario is a module here defining ``NAME`` (kebab-case), ``DESCRIPTION`` (one line) and
``run(ctx: tradestore_harness.context.ScenarioContext) -> tradestore_harness.result.ScenarioResult``. To add one,
write the module and add its name to :data:`MODULES`. Modules that are not present (or fail
to import) are skipped by :func:`available` and reported by :func:`missing`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

MODULES = (
    "race_duplicate",
    "race_cap",
    "race_correlation",
    "race_loss_cap",
    "toctou_waitpoint",
    "mutex",
    "kill_storm",
    "crash_points",
    "io_errors",
    "power_loss",
    "log_replaced",
    "corrupt_derived",
    "corrupt_log",
    "reconcile_under_writes",
    "db_terminate",
    "db_restart",
)

def _scan() -> tuple[dict[str, ModuleType], dict[str, str]]:
    """Import every module of :data:`MODULES` now: (name -> module, module -> why it failed).

    Nothing is remembered between calls, so a test that changes :data:`MODULES` leaves no
    trace for the next caller.
    """
    found: dict[str, ModuleType] = {}
    failed: dict[str, str] = {}
    for module_name in MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ImportError as exc:
            failed[module_name] = str(exc)
            continue
        found[module.NAME] = module
    return found, failed


def available() -> dict[str, ModuleType]:
    """Scenario name -> module, for every module of :data:`MODULES` that imports."""
    return _scan()[0]


def missing() -> dict[str, str]:
    """Modules of :data:`MODULES` that could not be imported, with the reason."""
    return _scan()[1]
