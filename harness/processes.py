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


START_METHODS = ("spawn", "forkserver")


def context(method: str = "spawn", preload: tuple[str, ...] = ()):
    """The multiprocessing context workers are started with: ``spawn`` (the default, a fresh
    interpreter per worker) or ``forkserver``.

    ``forkserver`` forks each worker from a server process that was itself started fresh and
    has only imported ``preload`` (the harness's workers, the library, the target's module):
    like spawn, no lock, descriptor or store of the parent is inherited, but a worker starts
    in milliseconds instead of paying interpreter start-up and imports. Long kill storms,
    which restart a writer after every kill, use it.
    """
    if method not in START_METHODS:
        raise ValueError(f"start method {method!r}: choose one of {', '.join(START_METHODS)}")
    ctx = _mp.get_context(method)
    if method == "forkserver" and preload:
        ctx.set_forkserver_preload(list(preload))
    return ctx
