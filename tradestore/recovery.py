"""What recovery may take from a damaged log, and how it keeps every version it replaces.

:meth:`tradestore.TradeStore.recover` restores a log from its backup, which is one write older
than the log: the last write may have opened trades whose ids were acknowledged. To never give
such an id to another trade, the restored ``next_id`` is raised past every id the damaged log
still shows (:func:`salvage`); when the damaged bytes show no ``next_id`` at all (the log is
gone, or destroyed from its first bytes), the ids given out are unknown and recovery refuses
unless the caller says where ids may safely continue.

Every version recovery replaces is kept under a new, unique name (:func:`keep_copy`): a hard
link, so no temp file and no copy of the bytes are needed and no earlier kept copy is ever
overwritten.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

from .values import MAX_ID_NUMBER, format_id

# Bounded digit runs (a bit flip may make a number absurd, never the scan slow); a number the
# reader would refuse (above MAX_ID_NUMBER + 1) was never a real next_id or id: ignored.
_NEXT_ID = re.compile(rb'"next_id"\s*:\s*(\d{1,16})(?!\d)')
_ID = re.compile(rb'"id"\s*:\s*"T(\d{1,15})"')
COPY_INFIX = ".corrupt-"


@dataclass(frozen=True)
class Salvage:
    """What the bytes of a damaged log still say about ids.

    ``next_id``: the largest ``"next_id": N`` found, None if none survived. ``ids``: the trade
    id numbers found, sorted.
    """

    next_id: int | None
    ids: tuple[int, ...]

    def floor(self) -> int:
        """The lowest next_id that reuses no id seen here (1 if nothing was seen)."""
        return max([self.next_id or 1, *(i + 1 for i in self.ids)])


def salvage(data: bytes | None) -> Salvage:
    """Ids and next_id still legible in ``data`` (None: the log is missing)."""
    if not data:
        return Salvage(None, ())
    seen = [n for n in map(int, _NEXT_ID.findall(data)) if 1 <= n <= MAX_ID_NUMBER + 1]
    ids = sorted({n for n in map(int, _ID.findall(data)) if 1 <= n <= MAX_ID_NUMBER})
    return Salvage(max(seen) if seen else None, tuple(ids))


def keep_copy(path: str) -> str:
    """Give the file at ``path`` one more, unique name beside it; return that name.

    ``<path>.corrupt-<UTC time>-<n>``: the time orders the copies, ``n`` makes the name unique
    (``os.link`` never replaces an existing name). The caller fsyncs the directory (the write
    that follows does).
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    n = 1
    while True:
        name = f"{path}{COPY_INFIX}{stamp}-{n}"
        try:
            os.link(path, name, follow_symlinks=False)
        except FileExistsError:
            n += 1
            continue
        return name


def describe_range(first: int, stop: int) -> str:
    """The ids ``first`` .. ``stop - 1`` in words ("none", "T003", "T003 to T007")."""
    if stop <= first:
        return "none"
    if stop - first == 1:
        return format_id(first)
    return f"{format_id(first)} to {format_id(stop - 1)}"
