"""Helpers for tests and benchmarks: fixture files in the benchmark layouts
(:mod:`decalign.testing.fixtures`)."""
