"""What a run is, owned in one place: its spec (the one way config layers combine and a model
reference is resolved). Every command and the Python API build a run's config through here."""

from mnistlab.run.spec import (
    MODEL_SHORTCUTS,
    layer_config,
    merge_layers,
    merge_tables,
    resolve_model,
)

__all__ = ["MODEL_SHORTCUTS", "layer_config", "merge_layers", "merge_tables", "resolve_model"]
