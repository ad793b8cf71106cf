"""Where harness worker processes come from: the ``spawn`` start method, always.

Spawn gives every worker a fresh interpreter, so no lock, descriptor or cache is inherited
from the parent (fork would share them and prove nothing). The ``multiprocess`` package is
used when installed (the test extra brings it); a machine with nothing but Python falls back to
the standard library's ``multiprocessing``, whose spawn context behaves the same for the
picklable, module-level entry points the harness uses.
"""

from __future__ import annotations

try:
    import multiprocess as _mp
    from multiprocess.connection import wait
except ImportError:  # pragma: no cover - only on a machine without the test extra
    import multiprocessing as _mp  # type: ignore[no-redef]
    from multiprocessing.connection import wait  # type: ignore[no-redef]

__all__ = ["context", "wait"]


def context():
    """The spawn multiprocessing context every scenario and benchmark worker uses."""
    return _mp.get_context("spawn")
