"""Hyper-parameter search: an Optuna study over a search space declared in TOML, with pruning.

    name = "mine"
    description = "..."
    [base]                          # TrainConfig keys fixed for every trial
    epochs = 15
    max_params = 8000
    [params]                        # what the sampler chooses, one entry per parameter
    lr = { low = 0.002, high = 0.2, log = true }       # a range: float or int after the key
    batch_size = { choices = [64, 128, 256] }          # a categorical choice
    aug_strength = { low = 0.0, high = 1.5 }           # multiplies [base] augmentation

A parameter is any TrainConfig key, a model option every seed model takes (`width`,
`dropout_p`, `use_bn`, `activation`) or `aug_strength`. A range's type is the parameter's type,
so `label_smoothing = { low = 0, high = 0.1 }` is a float range.

The objective is the run's best validation accuracy; the test accuracy each run computes once
on its val-chosen weights is stored and shown for the best trial, never used to choose. Every
epoch's val accuracy is reported to the trial, so the pruner can stop a weak trial early
(`StopRun` ends the run; the trial is PRUNED). A diverging run is a FAIL marked `diverged`.

Trials live in the same store as grids (one study per search), with the same user attributes
as grid runs (cell_id, name, seed, config, summary, epochs, run_dir, state), so `mnistlab
results --suite STUDY` reads them too. Any number of processes on any machines may run the same
study against one PostgreSQL store: each claims a trial slot under the store's lock before
training, so the study stops at exactly its total, and takes back trials whose holder died
(see `store.py`).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from mnistlab.config import TrainConfig, coerce, read_toml
from mnistlab.errors import ConfigError, MnistlabError, choices_error
from mnistlab.experiments.heartbeat import Holder, WaitLine
from mnistlab.experiments.store import trial_attrs
from mnistlab.records import RunStatus
from mnistlab.run import MODEL_SHORTCUTS, merge_layers

if TYPE_CHECKING:
    from mnistlab.data import Splits
    from mnistlab.experiments.store import RunStore
    from mnistlab.experiments.tracking import Tracker

SPACE_KEYS = ("name", "description", "base", "params")
PARAM_KEYS = ("low", "high", "log", "step", "choices")
# the model-option shortcuts (run.spec) a space may search, with the type of their values
MODEL_OPTIONS: dict[str, type] = dict(zip(MODEL_SHORTCUTS, (bool, float, str, float), strict=True))
AUGMENT_KEYS = ("rotate_deg", "translate", "scale", "erase_p")
VIRTUAL: dict[str, type] = {"aug_strength": float}
MODEL_KEYS = ("model", "max_params", *MODEL_OPTIONS)
PRUNERS = ("median", "hyperband", "none")
# keys a search never varies: they name or place the run rather than define it
NOT_SEARCHABLE = ("name", "desc", "device", "model_options", "seed", "split_seed", "val_size")
# trial states a study's total counts (see _count_toward_total)
RESULT_STATES = (RunStatus.DIVERGED, "error")


def builtin_space_dir() -> Path:
    return Path(str(resources.files("mnistlab.experiments") / "spaces"))


def builtin_spaces() -> dict[str, Path]:
    return {path.stem: path for path in sorted(builtin_space_dir().glob("*.toml"))}


# ---------------------------------------------------------------------------------------------
# search spaces


@dataclass(frozen=True)
class Param:
    """One searched parameter: a float/int range (optionally log or stepped) or a choice."""

    name: str
    kind: str  # "float", "int" or "categorical"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "categorical":
            value = trial.suggest_categorical(self.name, list(self.choices))
            if value not in self.choices:
                # a trial queued in a shared store with a value outside this process's space
                # (e.g. a model reference it was not given): never built, let alone run
                raise ConfigError(f"{self.name} = {value!r} is not one of this space's choices")
            return value
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(
            self.name, float(self.low), float(self.high), step=self.step, log=self.log
        )

    def extremes(self) -> list[Any]:
        """The values that bound what this parameter can produce (checked against the config)."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]


@dataclass(frozen=True)
class Space:
    name: str
    description: str
    base: dict[str, Any]
    params: tuple[Param, ...]
    source: str = ""

    def config(self, values: dict[str, Any], **overrides: Any) -> TrainConfig:
        """The run config for sampled `values`, with forced `overrides` (budget caps etc.)."""
        return _build_config(self.base, values, overrides, self.source)


def load_space(name_or_path: str | Path) -> Space:
    """A built-in space by name, or a user's space file by path."""
    text = str(name_or_path)
    builtins = builtin_spaces()
    path = builtins.get(text, Path(text))
    if text not in builtins and path.suffix != ".toml" and not path.exists():
        raise choices_error("search space", text, [*builtins, "PATH.toml"])
    return parse_space(read_toml(path), source=str(path))


def parse_space(data: dict[str, Any], *, source: str) -> Space:
    for key in data:
        if key not in SPACE_KEYS:
            raise ConfigError(f"{source}: unknown key {key!r}; valid keys: {', '.join(SPACE_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: 'name' must be a non-empty string")
    base = data.get("base", {})
    params_table = data.get("params")
    if not isinstance(base, dict):
        raise ConfigError(f"{source}: [base] must be a table")
    if not isinstance(params_table, dict) or not params_table:
        raise ConfigError(f"{source}: needs a [params] table with at least one parameter")
    params = tuple(_parse_param(key, spec, source) for key, spec in params_table.items())
    space = Space(name, str(data.get("description", "")), dict(base), params, source)
    _check_space(space)
    return space


def _param_type(name: str, source: str) -> type:
    types = {**get_type_hints(TrainConfig), **MODEL_OPTIONS, **VIRTUAL}
    if name not in types or name in NOT_SEARCHABLE:
        valid = sorted(k for k in types if k not in NOT_SEARCHABLE)
        raise ConfigError(
            f"{source}: unknown parameter {name!r}; valid parameters: {', '.join(valid)}"
        )
    kind = types[name]
    if kind not in (int, float, bool, str):
        raise ConfigError(f"{source}: parameter {name!r} is a list and cannot be searched")
    return kind


def _parse_param(name: str, spec: Any, source: str) -> Param:
    kind = _param_type(name, source)
    where = f"{source}: parameter {name!r}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a table such as {{ low = 1, high = 2 }}")
    for key in spec:
        if key not in PARAM_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}; valid keys: {', '.join(PARAM_KEYS)}")
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"}:
            raise ConfigError(f"{where}: give either choices or low/high, not both")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list")
        return Param(name, "categorical", choices=tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where}: needs low and high, or choices")
    if kind not in (int, float):
        raise ConfigError(f"{where}: a {kind.__name__} parameter takes choices, not a range")
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    numbers = [v for v in (low, high, step) if v is not None]
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in numbers):
        raise ConfigError(f"{where}: low, high and step must be numbers")
    if kind is int and any(not isinstance(v, int) for v in numbers):
        raise ConfigError(f"{where}: an integer parameter needs integer low, high and step")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false")
    if not all(math.isfinite(v) for v in numbers):
        raise ConfigError(f"{where}: low, high and step must be finite")
    if low >= high:
        raise ConfigError(
            f"{where}: empty range: low {low} must be < high {high} "
            "(a single value belongs in [base])"
        )
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low}")
    if step is not None and (step <= 0 or log):
        raise ConfigError(f"{where}: step must be > 0 and cannot be combined with log")
    return Param(name, "int" if kind is int else "float", low, high, log, step)


def _check_space(space: Space) -> None:
    """Build the base config and the config at every parameter's bounds, so a value that can
    never run (lr -1, an unknown model, a model that cannot fit the budget) fails now, naming
    the parameter, instead of one trial at a time."""
    from mnistlab.run.build import build_model

    try:
        base = space.config({})
        build_model(base)
    except ConfigError as error:
        raise ConfigError(_prefixed(space.source, f"[base]: {error}")) from None
    for param in space.params:
        # building a model under a budget bisects its width: only where the model can change
        check = build_model if param.name in MODEL_KEYS else (lambda config: config)
        for value in param.extremes():
            try:
                check(space.config({param.name: value}))
            except ConfigError as error:
                message = f"parameter {param.name!r} = {value!r}: {error}"
                raise ConfigError(_prefixed(space.source, message)) from None


def _prefixed(source: str, message: str) -> str:
    return message if message.startswith(source) else f"{source}: {message}"


def _build_config(
    base: dict[str, Any], values: dict[str, Any], overrides: dict[str, Any], source: str
) -> TrainConfig:
    sampled = {key: value for key, value in values.items() if key not in VIRTUAL}
    strength = float(values.get("aug_strength", 1.0))
    # [base] then the sampled values, layered as every run is (recipe, model-option shortcuts)
    merged = merge_layers(base, sampled)
    data = {**TrainConfig().to_dict(), **coerce(merged, source=f"{source} [base]")}
    if strength != 1.0:
        for key in AUGMENT_KEYS:
            data[key] = data[key] * strength
        data["rotate_deg"] = min(data["rotate_deg"], 180.0)
        for key in ("translate", "scale", "erase_p"):
            data[key] = min(data[key], 1.0)
    cap_epochs = overrides.pop("max_epochs", None)
    cap_params = overrides.pop("max_params", None)
    data.update(overrides)
    if cap_epochs:
        data["epochs"] = min(data["epochs"], cap_epochs)
    if cap_params:
        data["max_params"] = min(data["max_params"] or cap_params, cap_params)
    from mnistlab.run import fit_tail, resolve_model

    # --max-epochs and the overrides come after [base] and the sampled values: the one rule
    # of `run.spec` (a shortened run keeps its clean tail and SWA inside it)
    data = fit_tail(data)

    # a model file named in a space is relative to the space file, its content pinned (sha256)
    base_dir = Path(source).parent if source.endswith(".toml") else None
    return TrainConfig.from_dict(resolve_model(data, base_dir))


# ---------------------------------------------------------------------------------------------
# the study


@dataclass
class TuneOutcome:
    study: str
    trials: int  # the study's target total (--trials), all processes together
    finished: int = 0
    pruned: int = 0
    diverged: int = 0
    failed: int = 0
    ran_here: int = 0
    seconds: float = 0.0
    epochs_run: int = 0  # over every counted trial
    epochs_saved: int = 0  # epochs pruned trials did not run
    seconds_saved: float = 0.0  # those epochs x the pruned trial's own s/epoch
    best: FrozenTrial | None = None
    held: list[Holder] = field(default_factory=list)  # wait=False: trials others still hold


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """median: prune a trial whose val accuracy is below the median of earlier trials at the
    same epoch, after 5 trials and not in the first fifth of training (OneCycle's warm-up makes
    early epochs noisy); hyperband: successive halving brackets from 1 epoch to `epochs`."""
    if name == "median":
        # Optuna prunes from step n_warmup_steps on; our steps are 1-based epochs, so this
        # spares epochs 1 .. epochs // 5 (none for runs under 5 epochs)
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=epochs // 5 + 1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max(epochs, 1), reduction_factor=3
        )
    if name == "none":
        return optuna.pruners.NopPruner()
    raise choices_error("pruner", name, PRUNERS)


def run_tune(
    store: RunStore,
    space: Space,
    trials: int,
    *,
    study_name: str | None = None,
    max_params: int | None = None,
    max_epochs: int | None = None,
    pruner: str | optuna.pruners.BasePruner = "median",
    train_subset: int | None = None,
    device: str | None = None,
    data_dir: Path | None = None,
    runs_root: Path = Path("runs"),
    tracker: Tracker | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
    log: Callable[[str], None] | None = print,
    wait: bool = True,
) -> TuneOutcome:
    """Run trials of `space` until the study holds `trials` results (from any process).

    A trial slot is claimed before training (`_claim_slot`), so any number of processes stop
    at exactly `trials`. With every slot taken, wait for the trials other processes hold and
    take them back if their holder dies or goes silent; `wait=False` returns instead
    (`outcome.held`)."""
    if trials <= 0:
        raise ConfigError(f"--trials must be > 0, got {trials}")
    name = study_name or space.name
    overrides: dict[str, Any] = {}
    if max_params:
        overrides["max_params"] = max_params
    if max_epochs:
        overrides["max_epochs"] = max_epochs
    if train_subset is not None:
        overrides["train_subset"] = train_subset
    if device is not None:
        overrides["device"] = device
    base = space.config({}, **dict(overrides))
    if isinstance(pruner, str):
        pruner = make_pruner(pruner, base.epochs)
    study = _open_study(store, name, space, base, overrides, pruner, sampler)

    trainer = _TrialTrainer(space, name, overrides, data_dir, runs_root, tracker, log)
    outcome = TuneOutcome(study=name, trials=trials)
    started = time.perf_counter()
    with store.lock():
        store.take_back(study)  # a dead process's trials count until taken back
        remaining = trials - _counted(study)
    if remaining > 0:
        _log(
            log,
            f"study {name}: {remaining} more trial(s) to reach {trials}; each trains up to "
            f"{base.epochs} epochs on {base.train_subset or 'all'} training images",
        )
    waiting = WaitLine(lambda line: _log(log, line), f"study {name}: ", "trial(s)")
    verbosity = optuna.logging.get_verbosity()
    # our own line per trial replaces Optuna's (which would print a diverged run as a warning)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    timing = store.timing(study)
    try:
        with store.heartbeats(study) as beats:
            while True:
                trial = _claim_slot(store, study, trials)
                if trial is None:
                    held = store.holders(study)
                    if not held or not wait:
                        outcome.held = held
                        break
                    waiting.show(held)
                    time.sleep(timing.poll_seconds)
                    continue
                outcome.ran_here += 1
                beats.add(trial._trial_id)
                try:
                    state, value = trainer.run(trial)
                except UpdateFinishedTrialError:
                    # silent too long (a stalled process): another process took it back
                    _log(log, f"trial {trial.number}: taken back meanwhile; this result not stored")
                    continue
                except BaseException:
                    # Ctrl-C or a store error: give the slot back, its point is queued again
                    with contextlib.suppress(Exception):
                        store.release(study, trial._trial_id, "interrupted")
                    raise
                finally:
                    beats.discard(trial._trial_id)
                study.tell(trial, value, state=state, skip_if_finished=True)
    finally:
        optuna.logging.set_verbosity(verbosity)
    outcome.seconds = time.perf_counter() - started
    _summarise(study, outcome)
    return outcome


def _claim_slot(store: RunStore, study: optuna.Study, total: int) -> optuna.Trial | None:
    """A RUNNING trial held by this process, or None when the study already counts `total`.

    Counting and creating happen under the store's lock, so two processes never both take
    the last slot. A re-queued trial (its point retried) is taken before a new one."""
    with store.lock():
        store.take_back(study)
        if _counted(study) >= total:
            return None
        trial = study.ask()
        store.own(trial._trial_id)
        # anything else after a crash; counted toward the total only once a result
        trial.set_user_attr("state", str(RunStatus.RUNNING))
        return trial


@dataclass
class _TrialTrainer:
    """Trains one claimed trial: config from the sampled point, run, user attributes."""

    space: Space
    study: str
    overrides: dict[str, Any]
    data_dir: Path | None
    runs_root: Path
    tracker: Tracker | None
    log: Callable[[str], None] | None
    splits_cache: dict[Any, Any] = field(default_factory=dict)

    def run(self, trial: optuna.Trial) -> tuple[TrialState, float | None]:
        """The state and value to tell Optuna; a run that fails is a FAIL, not an exception."""
        from mnistlab.engine.trainer import StopRun, train_run

        values = {param.name: param.suggest(trial) for param in self.space.params}
        label = f"trial {trial.number}"
        try:
            config = self.space.config(values, **dict(self.overrides))
        except ConfigError as error:
            # a combination the bounds check could not foresee: a result, the study goes on
            trial.set_user_attr("state", "error")
            trial.set_user_attr("error", str(error))
            _log(self.log, f"{label}: invalid config: {error}  {_format_params(values)}")
            return TrialState.FAIL, None
        config = config.replace(name=f"{self.study}-t{trial.number}")
        run_dir = self.runs_root / self.study / f"t{trial.number:04d}"
        attrs = {**trial_attrs(config.name, config, self.study), "run_dir": str(run_dir)}
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        tracker = self.tracker
        if tracker is not None:
            tags = {"study": self.study, "trial": trial.number}
            tracker.start(trial.number, config.name, config.to_dict(), tags, run_dir=run_dir)

        def on_epoch(record: Any) -> None:
            trial.report(record.val_acc, record.epoch)
            if tracker is not None:
                tracker.epoch(trial.number, record.as_row())
            if trial.should_prune():
                raise StopRun

        splits = _splits(self.data_dir, config, self.splits_cache)
        try:
            result = train_run(config, splits, run_dir, progress=False, on_epoch=on_epoch, log=None)
        except UpdateFinishedTrialError:
            raise  # taken back (trial.report): not a failure of the run
        except Exception as error:
            # recorded on the trial (FAIL); the study goes on with the next trial
            trial.set_user_attr("state", "error")
            trial.set_user_attr("error", f"{type(error).__name__}: {error}")
            if tracker is not None:
                tracker.fail(trial.number, f"{type(error).__name__}: {error}")
            _log(self.log, f"{label}: failed: {type(error).__name__}: {error}")
            return TrialState.FAIL, None
        summary = json.loads(json.dumps(result.summary, default=str))
        trial.set_user_attr("summary", summary)
        trial.set_user_attr("epochs", [r.as_row() for r in result.epochs])
        trial.set_user_attr("state", summary["state"])
        if tracker is not None:
            tracker.finish(trial.number, summary)
        _log(self.log, f"{label}: {_describe(summary)}  {_format_params(values)}")
        if summary["state"] == RunStatus.DIVERGED:
            return TrialState.FAIL, None  # marked diverged: a result, the study goes on
        if summary["state"] == RunStatus.PRUNED:
            return TrialState.PRUNED, None
        return TrialState.COMPLETE, float(summary["val_acc"])


def _open_study(
    store: RunStore,
    name: str,
    space: Space,
    base: TrainConfig,
    overrides: dict[str, Any],
    pruner: optuna.pruners.BasePruner,
    sampler: optuna.samplers.BaseSampler | None,
) -> optuna.Study:
    from mnistlab.experiments.storage import retry_locked

    # constant_liar: trials running in other processes count as bad guesses, so parallel
    # workers spread out instead of all sampling the same promising point
    sampler = sampler or optuna.samplers.TPESampler(constant_liar=True)
    with store.lock():
        study = retry_locked(
            lambda: optuna.create_study(
                study_name=name,
                storage=store.storage,
                direction="maximize",
                load_if_exists=True,
                pruner=pruner,
                sampler=sampler,
            )
        )
        # what the trials compute: joining a study with other settings would mix two problems
        signature = {
            "kind": "tune",
            "space": space.name,
            "params": [p.name for p in space.params],
            "epochs": base.epochs,
            "max_params": base.max_params,
            "train_subset": base.train_subset,
        }
        stored = study.user_attrs.get("tune")
        if stored is None:
            if any("cell_id" in t.user_attrs for t in study.get_trials(deepcopy=False)):
                raise MnistlabError(
                    f"study {name!r} in {store.url} is a grid, not a search; choose another --study"
                )
            study.set_user_attr("tune", signature)
        elif stored != signature:
            differences = ", ".join(
                f"{key} {stored.get(key)!r} (asked {value!r})"
                for key, value in signature.items()
                if stored.get(key) != value
            )
            raise MnistlabError(
                f"study {name!r} was created with other settings: {differences}; "
                "use another --study"
            )
    return study


def _splits(data_dir: Path | None, config: TrainConfig, cache: dict[Any, Any]) -> Splits:
    """The config's splits; MNIST is loaded on the first trial this process runs, not before
    (a call that finds the study complete loads nothing)."""
    from mnistlab.data import load_mnist
    from mnistlab.run.build import splits_for

    if "data" not in cache:
        cache["data"] = load_mnist(data_dir, download=False)
    key = (config.val_size, config.split_seed, config.train_subset)
    if key not in cache:
        cache[key] = splits_for(config, cache["data"])
    return cache[key]


def _count_toward_total(trial: FrozenTrial) -> bool:
    """A trial counts toward --trials when it is a result (finished, pruned, diverged, a run
    error) or under way. A FAIL left by a dead or interrupted process does not, so one more
    trial is run in its place: its re-queued copy (WAITING trials are run before new ones)."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
        return True
    return trial.state == TrialState.FAIL and trial.user_attrs.get("state") in RESULT_STATES


def _counted(study: optuna.Study) -> int:
    return sum(_count_toward_total(t) for t in study.get_trials(deepcopy=False))


def _summarise(study: optuna.Study, outcome: TuneOutcome) -> None:
    counted = [t for t in study.get_trials(deepcopy=False) if _count_toward_total(t)]
    for trial in counted:
        summary = trial.user_attrs.get("summary", {})
        outcome.epochs_run += int(summary.get("epochs_run", 0))
        if trial.state == TrialState.COMPLETE:
            outcome.finished += 1
        elif trial.state == TrialState.PRUNED:
            outcome.pruned += 1
            unrun = int(summary.get("epochs", 0)) - int(summary.get("epochs_run", 0))
            outcome.epochs_saved += unrun
            outcome.seconds_saved += unrun * float(summary.get("seconds_per_epoch") or 0.0)
        elif trial.user_attrs.get("state") == RunStatus.DIVERGED:
            outcome.diverged += 1
        elif trial.state == TrialState.FAIL:
            outcome.failed += 1
    complete = [t for t in counted if t.state == TrialState.COMPLETE]
    # chosen on val accuracy alone (the trial's value); test accuracy is only displayed
    outcome.best = max(complete, key=lambda t: t.value) if complete else None


def format_outcome(outcome: TuneOutcome) -> list[str]:
    """The closing lines of `mnistlab tune`: counts, time pruning saved, the best trial."""
    lines = [
        f"study {outcome.study}: {outcome.finished} finished, {outcome.pruned} pruned, "
        f"{outcome.diverged} diverged, {outcome.failed} failed "
        f"({outcome.ran_here} run by this process in {outcome.seconds:.0f}s)",
    ]
    if outcome.pruned:
        lines.append(
            f"pruning: {outcome.pruned} trial(s) stopped early; {outcome.epochs_saved} epochs "
            f"not run, about {outcome.seconds_saved:.0f}s of training saved "
            f"(their unrun epochs x their own s/epoch); {outcome.epochs_run} epochs run in all"
        )
    best = outcome.best
    if best is None:
        lines.append("no finished trial yet")
        return lines
    summary = best.user_attrs.get("summary", {})
    test = summary.get("test_acc")
    lines.append(
        f"best trial {best.number} (chosen on val): val_acc {best.value:.2f}%, "
        f"test_acc {test:.2f}% (evaluated once, on its val-chosen weights), "
        f"{summary.get('params', 0):,} params, best epoch {summary.get('best_epoch')}"
        if test is not None
        else f"best trial {best.number}: val_acc {best.value:.2f}%"
    )
    lines.append(f"  params: {_format_params(best.params)}")
    lines.append(f"  run directory: {best.user_attrs.get('run_dir', '?')}")
    return lines


def _describe(summary: dict[str, Any]) -> str:
    state = summary["state"]
    time_text = f"{summary['epochs_run']}/{summary['epochs']} epochs, {summary['seconds']:.0f}s"
    if state == RunStatus.DIVERGED:
        return f"diverged at epoch {summary['diverged_epoch']} ({time_text})"
    val = summary.get("val_acc")
    val_text = f"val_acc {val:.2f}%" if val is not None else "no val_acc"
    if state == RunStatus.PRUNED:
        return f"pruned after epoch {summary['epochs_run']}, {val_text} ({time_text})"
    return f"finished, {val_text}, {summary['params']:,} params ({time_text})"


def _format_params(values: dict[str, Any]) -> str:
    return " ".join(
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in values.items()
    )


def _log(log: Callable[[str], None] | None, message: str) -> None:
    if log is not None:
        log(message)
