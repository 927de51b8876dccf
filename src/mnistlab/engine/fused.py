"""Fused training: K configs of one architecture trained together, one batched forward/backward.

On a GPU a 16k-parameter model leaves the device nearly idle; K models stacked along a new
leading dimension (`torch.func.stack_module_state` + `vmap(functional_call)`) turn K small
kernels into one K-times larger one. Everything else stays per run, in the same `RunState` code
`train_run` uses: each run has its own optimizer (kind, lr, momentum, weight decay), schedule,
label smoothing, grad clipping, EMA/SWA, validation, selection, checkpoints and summary. The
models' parameters and BN buffers are views into the stacked tensors, so each run's optimizer
updates its slice in place and its model can be evaluated and saved like any other.

Fused runs share what defines the data stream and the weight shapes (`FUSE_SHARED`): the same
batches, in the same order, with the same augmentation draws, and the same initial weights as
each would get alone (each model is built after seeding with its own seed). Only dropout masks
come from one shared stream, so a fused run matches its sequential twin statistically, not
bit for bit (tests/test_fused.py checks it).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from mnistlab.config import TrainConfig
from mnistlab.data import AugmentConfig, Splits, augment_batch, iterate_batches, normalize
from mnistlab.engine.device import reproducible_kernels, resolve_device
from mnistlab.engine.loop import EpochStats
from mnistlab.engine.trainer import EpochCallback, RunResult, RunState
from mnistlab.errors import ConfigError
from mnistlab.run.build import build_model

#: config fields fused runs must share: data order, augmentation, epochs and weight shapes
FUSE_SHARED = (
    "model",
    "model_options",
    "max_params",
    "batch_size",
    "epochs",
    "rotate_deg",
    "translate",
    "scale",
    "erase_p",
    "no_aug_last",
    "seed",
    "split_seed",
    "val_size",
    "train_subset",
    "device",
)


def fuse_key(config: TrainConfig) -> str:
    """Configs with equal keys can be trained fused."""
    values = config.to_dict()
    return json.dumps({name: values[name] for name in FUSE_SHARED}, sort_keys=True)


class FusedModels:
    """K models of one architecture as stacked tensors; each model keeps views of its slice.

    `backward(inputs, labels)` runs one batched forward/backward of all K models on the same
    batch and leaves each model's gradients in its parameters' `.grad`, so each model's own
    optimizer can step it as usual."""

    def __init__(self, models: Sequence[nn.Module], label_smoothing: Sequence[float]) -> None:
        self.models = list(models)
        self.skeleton = copy.deepcopy(models[0])
        self.params = _stack([dict(m.named_parameters()) for m in models])
        self.buffers = _stack([dict(m.named_buffers()) for m in models])
        for index, model in enumerate(models):
            # `.data =` makes the model's tensor alias the slice: in-place optimizer steps and
            # BN running-stat updates through either name are seen by both
            for name, tensor in model.named_parameters():
                tensor.data = self.params[name][index]
            for name, tensor in model.named_buffers():
                tensor.data = self.buffers[name][index]
        device = next(iter(self.params.values())).device
        self.smoothing = torch.tensor(list(label_smoothing), device=device)
        self._step = vmap(
            grad(lambda *args: _loss(self.skeleton, *args), has_aux=True),
            in_dims=(0, 0, None, None, 0),
            randomness="different",  # each model its own dropout masks
        )

    def train(self) -> None:
        self.skeleton.train()
        for model in self.models:
            model.train()

    def backward(
        self, inputs: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-model gradients into `.grad`; returns the K losses and the K×B×10 logits."""
        grads, (losses, logits) = self._step(
            self.params, self.buffers, inputs, labels, self.smoothing
        )
        for index, model in enumerate(self.models):
            for name, parameter in model.named_parameters():
                parameter.grad = grads[name][index]
        return losses, logits


def _stack(tensors: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {name: torch.stack([t[name].detach() for t in tensors]) for name in tensors[0]}


def _loss(
    skeleton: nn.Module,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    inputs: torch.Tensor,
    labels: torch.Tensor,
    smoothing: torch.Tensor,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    logits = functional_call(skeleton, (params, buffers), (inputs,))
    log_probs = F.log_softmax(logits, dim=1)
    # F.cross_entropy with label smoothing, written out so smoothing can differ per model
    nll = -log_probs.gather(1, labels[:, None]).mean()
    loss = (1.0 - smoothing) * nll - smoothing * log_probs.mean()
    return loss, (loss.detach(), logits.detach())


def train_fused(
    configs: Sequence[TrainConfig],
    splits: Splits,
    out_dirs: Sequence[Path | None] | None = None,
    *,
    on_epoch: Sequence[EpochCallback | None] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[RunResult]:
    """Train `configs` (equal `fuse_key`) together; one RunResult per config, in order."""
    if not configs:
        return []
    keys = {fuse_key(config) for config in configs}
    if len(keys) > 1:
        raise ConfigError(f"fused configs must share {', '.join(FUSE_SHARED)}")
    first = configs[0]
    out_dirs = list(out_dirs) if out_dirs is not None else [None] * len(configs)
    callbacks = list(on_epoch) if on_epoch is not None else [None] * len(configs)
    device = resolve_device(first.device)
    splits = splits.to(device)
    generator = torch.Generator().manual_seed(first.seed)
    with torch.random.fork_rng(devices=[]), reproducible_kernels(device):
        runs = []
        for config, out_dir, callback in zip(configs, out_dirs, callbacks, strict=True):
            torch.manual_seed(config.seed)  # the initial weights it would get alone
            model = build_model(config).to(device)
            prefix = f"[{config.name}] "
            runs.append(
                RunState(
                    config,
                    model,
                    splits,
                    device,
                    out_dir,
                    callback,
                    (lambda message, prefix=prefix: log(prefix + message)) if log else None,
                )
            )
        fused = FusedModels([run.model for run in runs], [c.label_smoothing for c in configs])
        torch.manual_seed(first.seed)
        for epoch in range(1, first.epochs + 1):
            if not any(run.active for run in runs):
                break
            epoch_started = time.perf_counter()
            augments = [run.augment_for(epoch) for run in runs]
            stats = _fused_epoch(fused, runs, augments[0], generator)
            for run, run_stats in zip(runs, stats, strict=True):
                if run.active:
                    run.end_epoch(epoch, run_stats, epoch_started)
        return [run.finish() for run in runs]


def _fused_epoch(
    fused: FusedModels,
    runs: list[RunState],
    augment: AugmentConfig,
    generator: torch.Generator,
) -> list[EpochStats]:
    splits = runs[0].splits
    fused.train()
    count = len(runs)
    loss_sum = torch.zeros(count, device=splits.train_images.device)
    correct = torch.zeros(count, device=splits.train_images.device, dtype=torch.long)
    seen = 0
    for batch_images, batch_labels in iterate_batches(
        splits.train_images,
        splits.train_labels,
        runs[0].config.batch_size,
        shuffle=True,
        generator=generator,
    ):
        inputs = normalize(batch_images)
        if augment.enabled:
            inputs = augment_batch(inputs, augment, generator)
        losses, logits = fused.backward(inputs, batch_labels)
        for run in runs:
            if not run.active:
                continue  # a diverged or pruned run is carried along, never stepped again
            if run.config.grad_clip > 0:
                nn.utils.clip_grad_norm_(run.model.parameters(), run.config.grad_clip)
            run.optimizer.step()
            run.schedule.after_batch()
            run.after_step()
        batch = batch_labels.shape[0]
        loss_sum += losses * batch
        correct += (logits.argmax(-1) == batch_labels).sum(1)
        seen += batch
    return [
        EpochStats(loss=float(loss_sum[i]) / seen, acc=100.0 * int(correct[i]) / seen)
        for i in range(count)
    ]
