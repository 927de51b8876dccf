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
