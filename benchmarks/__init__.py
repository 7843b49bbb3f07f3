"""Reproducible quality and speed benchmarks behind the README tables (``benchmarks/run_all.sh``)."""
