"""Experiments: suites (grids as data), the Optuna-backed run store, the grid runner, results.

The queue, by job: `storage` opens an Optuna storage from a URL; `owner` names a holder and
tells a dead one on this machine; `heartbeat` keeps a holder's heartbeat and its timing;
`store` claims, takes back and records runs (exactly once); `runner` is the grid's event loop
over worker processes; `tune` drives an Optuna search on the same store."""

# the default store sits beside the run directories, so `runs/` holds a whole experiment
DEFAULT_STORE = "sqlite:///runs/mnistlab.db"

# `mnistlab compare`'s verdict on a published figure; here, beside the store's default, so the
# command line's help can state it without importing the store
BINOMIAL_N = 10_000  # images in the test set and in the validation split, the seeds' and ours
NOISE_RULE = (
    "noise = 2 × sqrt(seed_std² + binomial_std²), where seed_std is the std of our seed-protocol "
    "figure over the seeds in the store (0 with one seed) and binomial_std = sqrt(p(1 − p)/n) "
    f"is the sampling noise of one accuracy p (the published one) on n = {BINOMIAL_N:,} images; "
    "the verdict is 'within noise' when |ours − published| ≤ noise, else 'above' or 'below' "
    "(ours minus published, in points). Epochs to 99%: noise = 2 × seed_std, and 'above' means "
    "more epochs."
)
