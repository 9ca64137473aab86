"""A training run and what it leaves behind, framework-free.

``files`` (the run directory: its file names, config, vocabulary, checkpoints), ``resume`` (what a
resumed run must share with the one it continues), ``report`` (metrics.json and curves),
``recipe`` (optimizer, schedules, early stopping, sweep objective, MLflow) and ``threads`` (the
share of the machine's cores a run takes).
"""
