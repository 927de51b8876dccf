"""mnistlab: reproducible, honest and fast experiments with tiny CNNs on MNIST.

The Python API (`mnistlab.train`, `summary`, `fit`, `grid`, `results`) lives in `mnistlab.api`
and is imported on first use, so `import mnistlab` stays light for the command line.
"""

from typing import Any

__version__ = "0.1.0"

_API = ("train", "summary", "fit", "grid", "results", "TrainResult", "Summary")


def __getattr__(name: str) -> Any:
    if name in _API:
        from mnistlab import api

        return getattr(api, name)
    raise AttributeError(f"module 'mnistlab' has no attribute {name!r}")


__all__ = ["__version__", *_API]
