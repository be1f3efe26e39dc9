"""Tests of the benchmarks and trial harnesses under bench/."""
