"""Evaluation: labeled pairs (`deja eval`) and cache workloads replayed through a real cluster."""
