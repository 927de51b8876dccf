"""Experiments: suites (grids as data), the Optuna-backed run store, the grid runner, results."""

# the default store sits beside the run directories, so `runs/` holds a whole experiment
DEFAULT_STORE = "sqlite:///runs/mnistlab.db"
