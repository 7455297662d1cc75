"""Benchmarks: each measures the controller against a baseline in the same run."""
