"""Benchmarks of convolution implementations: `python -m bench`, or `pytest bench/ --benchmark-only`."""
