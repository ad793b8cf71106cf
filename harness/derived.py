"""Fresh rebuilds of derived files, to compare what a reconciler wrote against.

The reference is our reconciler's own ``build`` run on an exact copy of one committed log
version in a scratch directory; derived files are a function of (log, clock date, config)
alone, so a correct set written at any time equals the rebuild of the version it names.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any, Iterable, Mapping

from tradestore.derive import FILES


def read_derived(state_dir: str) -> dict[str, Any]:
    """Derived file name -> parsed document, or None if missing or unreadable."""
    files: dict[str, Any] = {}
    for name in FILES:
        try:
            with open(os.path.join(state_dir, name), "rb") as handle:
                files[name] = json.loads(handle.read())
        except (OSError, ValueError):
            files[name] = None
    return files


def named_versions(snapshots: Iterable[Mapping[str, Any]]) -> set[str]:
    """Every log sha256 the derived files of ``snapshots`` claim to be built from."""
    shas = set()
    for files in snapshots:
        for doc in files.values():
            if isinstance(doc, dict):
                sha = ((doc.get("_meta") or {}).get("source") or {}).get("sha256")
                if isinstance(sha, str):
                    shas.add(sha)
    return shas


def rebuild(versions: Mapping[str, bytes], shas: Iterable[str], now: datetime, scratch: str,
            starting_capital: float = 5000) -> dict[str, dict[str, Any]]:
    """sha -> {file name -> fresh document} for each wanted sha we hold the bytes of."""
    from tradestore import StateReconciler

    os.makedirs(scratch, exist_ok=True)
    out = {}
    for sha in shas:
        data = versions.get(sha)
        if data is None:
            continue
        log = os.path.join(scratch, f"{sha}.json")
        with open(log, "wb") as handle:
            handle.write(data)
        reconciler = StateReconciler(log, os.path.join(scratch, "unused-state"), starting_capital=starting_capital)
        _, docs = reconciler.build(now)
        out[sha] = json.loads(json.dumps(docs))  # the same types a reader of the files gets
    return out
