"""Chaos campaigns against trade stores: ``python -m chaos --help``."""
