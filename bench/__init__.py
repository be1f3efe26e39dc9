"""Benchmarks of the core loop (see BENCHMARKS.md). Run with `make bench` or `python -m bench.run`."""
