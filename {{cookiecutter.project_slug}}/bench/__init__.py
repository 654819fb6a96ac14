"""Benchmarks that print numbers (`make bench`); not tests: this machine may be busy."""
