"""The benchmark: write and reconcile cost as the trade log grows (``python -m bench``).

Lives beside the library and the harness, in the repository only: it is not installed with
tradestore. Run it from the repository's root (``python -m bench --help``); see
``docs/PERFORMANCE.md`` for what it measures and the figures. :mod:`bench.suite` runs the
measurements, :mod:`bench.baselines` holds the stores it compares against, :mod:`bench.history`
builds the trade histories it starts from, :mod:`bench.pg` runs the PostgreSQL store's cells.
"""
