"""A run's spec: config layers (defaults, recipe, file, suite group, flags) merged one way.

Every caller (the `train` flags, a suite's cells, a search space's trials, the Python API)
builds its `TrainConfig` with `layer_config`, so the order of precedence, the model-option
shortcuts and the resolution of a model reference are written once:

- later layers override earlier ones; `model_options` merge one level deep;
- a layer's `recipe = "r8k"` expands to that recipe first, the layer's own keys on top;
- `use_bn`, `dropout_p`, `activation` and `width` may be written at top level (shortcuts);
- a file reference (`nets.py:Net`) is made absolute against the layer's folder (a suite's or a
  config file's) and its content pinned: `model_sha256` is the sha256 of the file (of the
  module's source for `pkg.mod:fn`), so a changed file is a different run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mnistlab.config import TrainConfig, coerce
from mnistlab.errors import ConfigError
from mnistlab.models.reference import parse_reference, source_of
from mnistlab.recipes import recipe_values

MODEL_SHORTCUTS = ("use_bn", "dropout_p", "activation", "width")


#: Epoch counts that must fit inside the run: the clean tail and the epoch SWA starts at.
TAIL_KEYS = ("no_aug_last", "swa_start")


def merge_layers(*layers: dict[str, Any]) -> dict[str, Any]:
    """Merge raw config mappings, each over the ones before it; a layer's recipe expands under
    its own keys, shortcuts go into model_options.

    The one rule for a shortened run: when a layer sets `epochs` after the layer that set
    `no_aug_last` or `swa_start` (a recipe or suite, then `--epochs 1`), the run keeps its
    shape and those move inside it (`fit_tail`). Set in the same layer as `epochs` or later,
    a value that does not fit is the user's and is refused when the config is checked."""
    merged: dict[str, Any] = {}
    set_at: dict[str, int] = {}  # key -> index of the (expanded) layer that set it last
    expanded: list[dict[str, Any]] = []
    for layer in layers:
        layer = dict(layer)
        if "recipe" in layer:
            expanded.append(recipe_values(layer.pop("recipe")))
        options = dict(layer.pop("model_options", {}) or {})
        for key in MODEL_SHORTCUTS:
            if key in layer:
                options[key] = layer.pop(key)
        if options:
            layer["model_options"] = options
        expanded.append(layer)
    for index, layer in enumerate(expanded):
        merged = merge_tables(merged, layer)
        set_at.update(dict.fromkeys(layer, index))
    if "epochs" in set_at and all(set_at.get(key, -1) < set_at["epochs"] for key in TAIL_KEYS):
        merged = fit_tail(merged)
    return merged


def fit_tail(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with `no_aug_last` and `swa_start` capped at `epochs` (those absent untouched)."""
    epochs = values.get("epochs")
    if not isinstance(epochs, int) or isinstance(epochs, bool):
        return values  # not checked yet: the config's own check names the bad value
    fitted = dict(values)
    for key in TAIL_KEYS:
        value = fitted.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > epochs:
            fitted[key] = epochs
    return fitted


def override(config: TrainConfig, **overrides: Any) -> TrainConfig:
    """`config` with `overrides` layered on top, by the same rule as every other layer (a
    grid's `--epochs 1` on a suite whose configs switch augmentation off for 3 epochs)."""
    if not overrides:
        return config
    return TrainConfig.from_dict(merge_layers(config.to_dict(), overrides))


def merge_tables(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """`second` over `first`, `model_options` merged one level deep."""
    merged = dict(first)
    for key, value in second.items():
        if key == "model_options" and isinstance(value, dict):
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
    return merged


def resolve_model(values: dict[str, Any], base_dir: Path | None = None) -> dict[str, Any]:
    """`values` with a file reference made absolute and `model_sha256` set to what it runs now."""
    model = values.get("model")
    if not isinstance(model, str) or ":" not in model:
        return {**values, "model_sha256": ""}  # a registered model: its code is the package's
    ref = parse_reference(model, base_dir)
    _, sha256 = source_of(ref)
    return {**values, "model": ref.text, "model_sha256": sha256}


def layer_config(
    *layers: dict[str, Any],
    base_dir: Path | None = None,
    source: str = "config",
) -> TrainConfig:
    """The `TrainConfig` of `layers` merged over the defaults, its model reference resolved."""
    try:
        values = merge_layers(*layers)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    values = resolve_model(values, base_dir)
    return TrainConfig.from_dict(coerce(values, source=source))
