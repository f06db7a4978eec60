"""Benchmarks of issue 8: `python -m bench` measures and writes docs/performance.md."""
