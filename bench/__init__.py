"""Tagbase benchmarks (``python -m bench``): figures and their ratio to a baseline measured in
the same run. Benchmarks are not tests; see bench/README.md."""
