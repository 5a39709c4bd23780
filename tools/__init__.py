"""The tools floor: CLI, local cluster, benches, evaluation, training and model building.

Tools import the library (`deja`) and the runtime (`services`); nothing there imports a tool.
"""
