"""Benchmarks of the core against its peers (pytest-benchmark; see README.md)."""
