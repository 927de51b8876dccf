"""Which model code a process may run: a shared store must not be a way to run code everywhere.

A stored trial names its model. A registered model is the package's own code. A user's model is
run only when this process was given that code itself: a file named by the suite (or search
space) it was started with, or passed with `--trust FILE`, identified by its sha256 (so a
trial stored with another machine's path runs this machine's identical copy). A module
reference (`pkg.mod:fn`) is run only when it was given with the same source hash. Anything else
(`os:system`, a path this process was not given) is refused and left queued for others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnistlab.config import TrainConfig
from mnistlab.errors import ConfigError
from mnistlab.models.reference import file_sha256, parse_reference


@dataclass
class TrustedModels:
    """sha256 -> this machine's file path, and (reference, sha256) pairs of given modules."""

    files: dict[str, Path] = field(default_factory=dict)
    modules: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def of(cls, configs: Iterable[TrainConfig], files: Iterable[Path] = ()) -> TrustedModels:
        trusted = cls()
        for config in configs:
            trusted.add_config(config)
        for path in files:
            trusted.add_file(Path(path))
        return trusted

    def add_config(self, config: TrainConfig) -> None:
        if not config.model_sha256:
            return
        ref = parse_reference(config.model)
        if ref.kind == "file":
            self.files[config.model_sha256] = ref.path
        else:
            self.modules.add((ref.text, config.model_sha256))

    def add_file(self, path: Path) -> None:
        if not path.is_file():
            raise ConfigError(f"--trust {path}: no such file")
        self.files[file_sha256(path)] = path.resolve()

    def localize(self, config: dict[str, Any]) -> dict[str, Any] | None:
        """The stored config with its model pointing at code this process was given; None when
        the model is not such code (the caller leaves the trial for others)."""
        model, sha = str(config.get("model", "")), str(config.get("model_sha256", ""))
        if ":" not in model:
            return config  # a registered model
        target, _, attribute = model.rpartition(":")
        if sha in self.files and attribute.isidentifier():
            return {**config, "model": f"{self.files[sha]}:{attribute}"}
        if (model, sha) in self.modules:
            return config
        return None

    def refusal(self, config: dict[str, Any]) -> str:
        return (
            f"model {config.get('model')!r} (sha256 {str(config.get('model_sha256'))[:12] or '-'})"
            " is not code this process was given: start it with the suite file that names it "
            "or --trust FILE; left queued for others"
        )


def check_unchanged(stored: Iterable[dict[str, Any]], configs: Iterable[TrainConfig]) -> None:
    """Refuse to queue a grid whose user model file changed since its runs were queued: the
    old and new code would be mixed in one table under the same run names."""
    before: dict[str, tuple[str, str]] = {}
    for attrs in stored:
        config = attrs.get("config") or {}
        if config.get("model_sha256"):
            before.setdefault(str(attrs.get("name", "")), (config["model"], config["model_sha256"]))
    for config in configs:
        old = before.get(config.name)
        if old is None or not config.model_sha256 or old[1] == config.model_sha256:
            continue
        name = Path(config.model.rpartition(":")[0]).name
        raise ConfigError(
            f"model file {name} changed since run {config.name!r} was queued in this store "
            f"(sha256 {old[1][:12]} then, {config.model_sha256[:12]} now): restore the file, or "
            "start a new grid (another --store, or another suite name) for the new code"
        )
