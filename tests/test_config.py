import json
import math

import pytest

from mnistlab.config import TrainConfig
from mnistlab.errors import ConfigError


def test_toml_round_trip(tmp_path):
    config = TrainConfig(
        name="x",
        milestones=(5, 12, 18),
        phase_lrs=(3e-3, 1e-3, 3e-4, 1e-4),
        scheduler="phases",
        tta_angles=(-3.0, 3.0),
        model_options={"dropout_p": 0.1, "activation": "silu"},
    )
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml())
    assert TrainConfig.from_toml(path) == config


def test_json_round_trip():
    config = TrainConfig(optimizer="adamw", lr=0.0025, scheduler="step")
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_fields_added_later_keep_the_hashes_of_existing_runs():
    """The default config's hash as computed before div_factor, final_div_factor,
    plateau_metric, rms_alpha and erase_scale existed: stores made then still match."""
    assert TrainConfig().config_hash() == "937626f7f7424cdd"
    for change in ({"div_factor": 5.0}, {"plateau_metric": "val_acc"}, {"rms_alpha": 0.9},
                   {"erase_scale": (0.02, 0.05)}, {"final_div_factor": 20.0}):  # fmt: skip
        assert TrainConfig().replace(**change).config_hash() != "937626f7f7424cdd", change


def test_hash_ignores_labels_but_not_values():
    base = TrainConfig()
    assert base.replace(name="other", desc="d").config_hash() == base.config_hash()
    assert base.replace(lr=0.01).config_hash() != base.config_hash()
    assert base.replace(seed=1).config_hash() != base.config_hash()


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"epochs": -1}, "epochs must be > 0"),
        ({"epochs": 0}, "epochs must be > 0"),
        ({"batch_size": 0}, "batch_size must be > 0"),
        ({"lr": math.nan}, "lr must be a finite number"),
        ({"lr": 0.0}, "lr must be a finite number"),
        ({"optimizer": "sgdd"}, "valid choices: adam, adamw, rmsprop, sgd"),
        ({"scheduler": "linear"}, "valid choices:"),
        ({"device": "tpu"}, "valid choices: auto, cpu, cuda, mps"),
        ({"epochs": "ten"}, "epochs must be an integer"),
        ({"nesterov": 1}, "nesterov must be true or false"),
        ({"colour": "red"}, "unknown key 'colour'; valid keys:"),
        ({"scheduler": "phases", "milestones": [5], "phase_lrs": [0.1]}, "phase_lrs"),
        ({"val_size": 60000}, "val_size must be in 1..59999"),
        (
            {"no_aug_last": 20, "epochs": 10},
            "no_aug_last (20) exceeds epochs (10): give --no-aug-last",
        ),
        ({"lr": 1e308}, "lr must be a finite number > 0.0 and <= 1000.0"),
        ({"seed": 99999999999999999999}, "seed must be in 0..9223372036854775807"),
        ({"split_seed": -1}, "split_seed must be in 0.."),
        ({"plateau_metric": "test_acc"}, "valid choices: val_acc, val_loss"),
        ({"erase_scale": [0.5, 0.1]}, "erase_scale must be two fractions"),
    ],
)
def test_bad_values_are_one_line_errors(changes, fragment):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({**TrainConfig().to_dict(), **changes})
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("epochs = = 3\n")
    with pytest.raises(ConfigError, match="broken.toml: invalid TOML"):
        TrainConfig.from_toml(path)


# -- one rule for a shortened run (run.spec.merge_layers) --------------------------------------


def test_grid_and_tune_shorten_a_run_by_the_same_rule():
    """`grid budgets --epochs 1` and `tune --space budget8k --max-epochs 1` both keep the
    clean tail inside the run; they once differed (the grid refused what tune clamped)."""
    from mnistlab.experiments.suites import load_suite
    from mnistlab.experiments.tune import load_space

    short = load_suite("budgets").with_overrides(epochs=1)
    assert {c.config.epochs for c in short.cells} == {1}
    assert {c.config.no_aug_last for c in short.cells} == {1}  # r8k's 3, r4k's 3 ... moved in
    space = load_space("budget8k")
    values = {p.name: p.extremes()[0] for p in space.params}
    trial = space.config(values, max_epochs=1)
    assert (trial.epochs, trial.no_aug_last) == (1, 1)


def test_train_flags_shorten_a_recipe_but_an_explicit_tail_is_the_users():
    from mnistlab.errors import ConfigError
    from mnistlab.run import layer_config

    shortened = layer_config({"recipe": "r8k"}, {"epochs": 2})
    assert (shortened.epochs, shortened.no_aug_last) == (2, 2)  # r8k has no_aug_last 3
    swa = layer_config({"epochs": 10, "swa_start": 8}, {"epochs": 4})
    assert swa.swa_start == 4
    # given together with epochs (or after), a tail that does not fit is refused, not changed
    with pytest.raises(ConfigError, match=r"no_aug_last \(3\) exceeds epochs \(2\)"):
        layer_config({"recipe": "r8k"}, {"epochs": 2, "no_aug_last": 3})
    with pytest.raises(ConfigError, match=r"no_aug_last \(5\) exceeds epochs \(2\)"):
        layer_config({"epochs": 2}, {"no_aug_last": 5})
    # a run that is not shortened is untouched
    assert layer_config({"recipe": "r8k"}).no_aug_last == 3
