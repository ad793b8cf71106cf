"""One scoped patch: ``module.name = value`` for the length of a block, then restored.

How the harness changes one thing of the library for one call without copying its code: a
negative control's one bug, or the campaign's lower checkpoint floor. Not thread-safe: the
stores under test run one call at a time in each worker process.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator


@contextlib.contextmanager
def patched(target: Any, name: str, value: Any) -> Iterator[None]:
    """``target.name = value`` for the block (a module or a class attribute)."""
    original = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, original)
