"""Baseline benchmark suite for Tidings: run with ``python -m bench`` (``--quick`` for CI)."""
