"""The outcome of one chaos scenario: counts for the verdict table and the violations found.

Every scenario, whatever machinery it uses, reports through :class:`ScenarioResult`, so the
``python -m chaos`` command can print one table and one verdict for all of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Violation:
    """A property that did not hold, with what was seen and the seed that reproduces it."""

    property: str  # short stable name, e.g. "no-duplicate-open-symbol", "ack-durable"
    detail: str  # what was observed, with ids and numbers
    seed: int


@dataclass
class ScenarioResult:
    """Counts and violations of one scenario run against one target."""

    scenario: str
    target: str
    seed: int
    invoked: int = 0
    ok: int = 0
    rejected: int = 0
    unknown: int = 0  # cut off by a kill or crash: may or may not be in the log
    kills: int = 0
    crash_points: int = 0
    corruptions_injected: int = 0
    corruptions_healed: int = 0
    states_checked: int = 0  # e.g. power-loss states materialised and checked
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.violations

    def violate(self, prop: str, detail: str) -> None:
        self.violations.append(Violation(prop, detail, self.seed))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["passed"] = self.passed
        return data
