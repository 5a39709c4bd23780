"""Benchmarks: whole-gateway tables (`deja bench`) and one per service (`python -m tools.bench.NAME`)."""
