"""Named wait-points: where the negative controls announce their flaw's window.

A deliberately broken store (``tradestore_harness.unsafe``) calls :func:`hit` at the moment its flaw can
bite (e.g. after deciding to accept a trade but before writing it). A scenario running in the
same worker process may :func:`arm` that point with an action (wait on a barrier shared with
the other workers, or kill the process), which turns a race that would be caught by luck into
one that is caught every time. Unarmed points do nothing. Our library has no wait-points and
never imports this module: for it, arming is a no-op.
"""

from __future__ import annotations

from typing import Callable

_armed: dict[str, Callable[[int], None]] = {}
_hits: dict[str, int] = {}


def arm(name: str, action: Callable[[int], None]) -> None:
    """Run ``action(n)`` on the n-th (1-based) hit of wait-point ``name`` in this process."""
    _armed[name] = action


def hit(name: str) -> None:
    """Mark that execution reached wait-point ``name``."""
    _hits[name] = _hits.get(name, 0) + 1
    action = _armed.get(name)
    if action is not None:
        action(_hits[name])


def hits(name: str) -> int:
    """How many times ``name`` was reached in this process."""
    return _hits.get(name, 0)


def reset() -> None:
    """Disarm every point and forget the hit counts (a worker starts from here)."""
    _armed.clear()
    _hits.clear()
