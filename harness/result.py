"""The outcome of one chaos scenario: counts for the verdict table and the violations found.

Every scenario, whatever machinery it uses, reports through :class:`ScenarioResult`, so the
``python -m chaos`` command can print one table and one verdict for all of them.

A scenario has one of four verdicts (:attr:`ScenarioResult.verdict`):

- ``FAIL``: a property was violated (:meth:`ScenarioResult.violate`);
- ``NOT PROVEN``: nothing was violated, but the race or fault the scenario exists for did not
  actually happen (:meth:`ScenarioResult.not_proven`: no rival was seen waiting, no crash point
  was hit, too few kills cut a write...). It is never a pass;
- ``NOT APPLICABLE``: the scenario cannot observe this target (the reason is kept); it neither
  passes nor fails the target;
- ``PASS``: the fault happened and every property held.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

PASS, FAIL, NOT_PROVEN, NOT_APPLICABLE = "PASS", "FAIL", "NOT PROVEN", "NOT APPLICABLE"


class ScenarioStopped(Exception):
    """Raised by a scenario that cannot go on because the target broke ``prop`` (e.g. it
    refused a valid setup operation); the campaign records it as that violation, not as a
    harness error."""

    def __init__(self, prop: str, detail: str) -> None:
        super().__init__(detail)
        self.prop = prop


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
    writes_cut: int = 0  # kills that landed between a write's lock and its acknowledgement
    crash_points: int = 0
    corruptions_injected: int = 0
    corruptions_healed: int = 0
    states_checked: int = 0  # e.g. power-loss states materialised and checked
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unproven: list[str] = field(default_factory=list)  # why the fault was not exercised
    not_applicable: str | None = None  # why the scenario cannot observe this target
    elapsed_s: float = 0.0

    @property
    def verdict(self) -> str:
        """``FAIL``, ``NOT APPLICABLE``, ``NOT PROVEN`` or ``PASS``, in that precedence."""
        if self.violations:
            return FAIL
        if self.not_applicable is not None:
            return NOT_APPLICABLE
        return NOT_PROVEN if self.unproven else PASS

    @property
    def passed(self) -> bool:
        """True unless the scenario stands in the way of a green run: PASS or not applicable.

        A NOT PROVEN scenario has not passed: a proof that did not happen is not a proof.
        """
        return self.verdict in (PASS, NOT_APPLICABLE)

    def mark_not_applicable(self, reason: str) -> None:
        """The scenario cannot observe this target (e.g. its writes bypass the file-system layer)."""
        self.not_applicable = reason
        self.notes.append(f"NOT APPLICABLE: {reason}")

    def violate(self, prop: str, detail: str) -> None:
        self.violations.append(Violation(prop, detail, self.seed))

    def not_proven(self, why: str) -> None:
        """Record that the scenario's race or fault was not exercised (``why`` says which)."""
        self.unproven.append(why)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["passed"] = self.passed
        data["verdict"] = self.verdict
        return data
