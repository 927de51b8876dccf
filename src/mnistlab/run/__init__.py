"""What a run is, owned in one place: its spec (the one way config layers combine and a model
reference is resolved). Every command and the Python API build a run's config through here.

The spec's names are imported on first use: `run.directory` and `run.options` (which the
command line needs before it knows whether the command trains anything) stay free of torch.
"""

from typing import Any

_SPEC = (
    "MODEL_SHORTCUTS",
    "fit_tail",
    "layer_config",
    "merge_layers",
    "merge_tables",
    "override",
    "resolve_model",
)


def __getattr__(name: str) -> Any:
    if name in _SPEC:
        from mnistlab.run import spec

        return getattr(spec, name)
    raise AttributeError(f"module 'mnistlab.run' has no attribute {name!r}")


__all__ = list(_SPEC)
