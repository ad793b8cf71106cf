"""pytest fixtures for a bot's own test suite: temporary stores and chaos campaigns.

Installed with the package as the ``pytest11`` entry point ``tradestore``, so the fixtures are
available in every test session of an environment where tradestore is installed (disable with
``-p no:tradestore``). Without the installed entry point, enable it with
``pytest_plugins = ["tradestore_harness.pytest_plugin"]`` in the top-level ``conftest.py``.

Fixtures:

- ``tradestore_factory(trade_log=None, **options) -> TradeStore``: a new store; without
  ``trade_log`` each call gets its own empty directory under the test's ``tmp_path``. Pass an
  existing store's ``trade_log`` to get a second store on the same log (as a second bot
  process would have). ``options`` are :class:`tradestore.TradeStore` keyword options.
- ``tradestore_store``: one store with the default limits in an empty temporary directory.
- ``chaos_runner(target, scenarios=None, *, quick=True, seed=None, writers=3, duration=None,
  check=True) -> ChaosOutcome``: runs chaos scenarios against a store factory given as
  ``"package.module:factory"`` (or a module-level function, or a registered target name) and,
  with ``check``, fails the test with :class:`ChaosFailure` naming every violated property (or
  NOT PROVEN scenario) and the command that reproduces it.

Importing this module imports neither the library nor the chaos harness: the plugin is loaded
into every test session of the environment, and most of them never use it.
"""

from __future__ import annotations

import itertools
import pathlib
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

DEFAULT_SEED = 1  # a fixed default, so a failing CI run reproduces with the same command


class ChaosFailure(AssertionError):
    """A chaos campaign violated at least one property. ``outcome`` has the full results."""

    def __init__(self, outcome: ChaosOutcome) -> None:
        self.outcome = outcome
        super().__init__(outcome.describe())


@dataclass
class ChaosOutcome:
    """What a campaign run by ``chaos_runner`` found.

    ``results`` are the :class:`tradestore_harness.result.ScenarioResult` of every scenario that ran;
    ``violated`` the violated property names, each once; ``report`` the ``report.json`` written
    beside the kept working files (histories, logs) under the test's ``tmp_path``.
    """

    target: str
    seed: int
    quick: bool
    scenarios: list[str]
    results: list[Any] = field(default_factory=list)
    violated: list[str] = field(default_factory=list)
    report: pathlib.Path | None = None
    writers: int = 3
    duration: float | None = None

    @property
    def unproven(self) -> list[str]:
        """Scenarios whose race or fault was not exercised (NOT PROVEN): not a pass."""
        return [r.scenario for r in self.results if r.verdict == "NOT PROVEN"]

    @property
    def passed(self) -> bool:
        return not self.violated and not self.unproven

    def reproduce(self) -> str:
        """The ``python -m chaos`` command that reruns exactly this campaign."""
        from tradestore_chaos.campaign import reproduce_command

        return reproduce_command(self.target, self.seed, self.scenarios, quick=self.quick,
                                 writers=self.writers, duration=self.duration)

    def describe(self) -> str:
        """One line per violation (at most three per scenario) and the reproducing command."""
        if self.passed:
            return f"chaos: every property held against {self.target} ({', '.join(self.scenarios)})"
        if self.violated:
            lines = [f"chaos: {', '.join(self.violated)} violated by {self.target} (seed {self.seed})"]
        else:
            lines = [f"chaos: NOT PROVEN against {self.target} (seed {self.seed}): no property violated, "
                     "but a scenario's race or fault did not happen"]
        for result in self.results:
            if result.verdict == "NOT PROVEN":
                lines.append(f"  {result.scenario}: NOT PROVEN: {'; '.join(result.unproven)}")
        for result in self.results:
            for violation in result.violations[:3]:
                lines.append(f"  {result.scenario}: {violation.property}: {violation.detail}")
            if len(result.violations) > 3:
                lines.append(f"  {result.scenario}: ... and {len(result.violations) - 3} more")
        lines.append(f"reproduce with: {self.reproduce()}")
        if self.report is not None:
            lines.append(f"report and working files: {self.report.parent}")
        return "\n".join(lines)


def target_name(target: str | Callable[..., Any]) -> str:
    """The ``module:factory`` name workers resolve. Chaos workers are separate processes, so a
    factory must be importable by name: a lambda or a function defined inside a test is not."""
    if isinstance(target, str):
        return target
    module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", "")
    if not module or not qualname or "<" in qualname or module == "__main__":
        raise ValueError(
            f"chaos target {target!r} cannot be imported by the worker processes; define the "
            "factory at module level and pass it or its 'package.module:factory' name"
        )
    return f"{module}:{qualname}"


def run_chaos(target: str | Callable[..., Any], scenarios: list[str] | tuple[str, ...] | None = None, *,
              workdir: pathlib.Path, quick: bool = True, seed: int | None = None, writers: int = 3,
              duration: float | None = None, check: bool = True,
              progress: Callable[[str], None] = print) -> ChaosOutcome:
    """Run ``scenarios`` (default: every available one) against ``target``; see the module doc.

    Raises ``ValueError`` for an unknown scenario, ``tradestore_harness.targets.TargetError`` for a target
    that does not resolve, and with ``check`` :class:`ChaosFailure` if any property failed or any
    scenario is NOT PROVEN (its race or fault did not happen).
    """
    from tradestore_chaos import report
    from tradestore_chaos import scenarios as registry
    from tradestore_chaos.campaign import Campaign
    from tradestore_harness.targets import resolve_target

    name = target_name(target)
    resolve_target(name)  # a typo fails here, in the test process, with the known names
    available = registry.available()
    chosen = list(available) if scenarios is None else list(scenarios)
    unknown = [s for s in chosen if s not in available]
    if unknown or not chosen:
        raise ValueError(f"unknown chaos scenario(s) {unknown or chosen}; available: {', '.join(available)}")
    if writers < 2:
        raise ValueError("writers must be at least 2: races need competitors")
    seed = DEFAULT_SEED if seed is None else seed
    keep = pathlib.Path(workdir)
    campaign = Campaign({s: available[s] for s in chosen}, name, seed, quick=quick, duration=duration,
                        writers=writers, progress=progress, keep=keep / "work")
    results = campaign.run()
    outcome = ChaosOutcome(name, seed, quick, chosen, list(results), campaign.violated(),
                           keep / "report.json", writers, duration)
    summary = {"target": name, "seed": seed, "quick": quick, "verdict": outcome.describe(),
               "passed": outcome.passed, "violated": outcome.violated, "elapsed_s": campaign.elapsed_s}
    report.write_json(outcome.report, summary, campaign.results, campaign.timelines)
    if check and not outcome.passed:
        raise ChaosFailure(outcome)
    return outcome


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tradestore", "tradestore chaos fixtures")
    group.addoption("--chaos-seed", type=int, default=None, metavar="N",
                    help=f"seed of chaos_runner campaigns that do not pass one (default {DEFAULT_SEED})")


@pytest.fixture
def tradestore_factory(tmp_path: pathlib.Path) -> Callable[..., Any]:
    """Make :class:`tradestore.TradeStore` objects in fresh temporary directories."""
    from tradestore import TradeStore

    counter = itertools.count(1)

    def make(trade_log: str | pathlib.Path | None = None, **options: Any) -> TradeStore:
        if trade_log is None:
            directory = tmp_path / f"tradestore-{next(counter)}"
            directory.mkdir()
            trade_log = directory / "trades.json"
        return TradeStore(trade_log, **options)

    return make


@pytest.fixture
def tradestore_store(tradestore_factory: Callable[..., Any]) -> Any:
    """A :class:`tradestore.TradeStore` with default limits on an empty log in ``tmp_path``."""
    return tradestore_factory()


@pytest.fixture
def chaos_runner(tmp_path: pathlib.Path, request: pytest.FixtureRequest) -> Callable[..., ChaosOutcome]:
    """Run chaos scenarios against a store factory; fails the test on any violated property.

    ``chaos_runner("mypkg.store:make_store", scenarios=["race-duplicate"], quick=True)``. Each
    call keeps its working files and ``report.json`` under the test's ``tmp_path``.
    """
    counter = itertools.count(1)
    option_seed = request.config.getoption("--chaos-seed", default=None)

    def run(target: str | Callable[..., Any], scenarios: list[str] | tuple[str, ...] | None = None, *,
            quick: bool = True, seed: int | None = None, writers: int = 3,
            duration: float | None = None, check: bool = True) -> ChaosOutcome:
        workdir = tmp_path / f"chaos-{next(counter)}"
        return run_chaos(target, scenarios, workdir=workdir, quick=quick,
                         seed=option_seed if seed is None else seed, writers=writers,
                         duration=duration, check=check)

    return run
