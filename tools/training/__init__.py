"""Training pipeline of the same-intent verifier (`make train-verifier`).

Torch-free modules (data, hard_cases, templates, calibration) run in the runtime venv and are unit
tested there; `train.py` and `export.py` need torch and run only in `.venv-export`.
"""
