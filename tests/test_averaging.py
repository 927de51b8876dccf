"""EMA, SWA and TTA against averages this file computes by hand; stable log-probabilities."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mnistlab.config import TrainConfig
from mnistlab.data import normalize
from mnistlab.engine import trainer as trainer_module
from mnistlab.engine.loop import evaluate, predict_logits, rotate
from mnistlab.engine.trainer import train_run

# constant lr, no augmentation (small_splits: 1,000 training images, 32 steps an epoch)
BASE = TrainConfig(
    model="tiny",
    model_options={"width": 0.5},
    epochs=1,
    batch_size=32,
    scheduler="none",
    lr=0.05,
    rotate_deg=0.0,
    translate=0.0,
    scale=0.0,
    erase_p=0.0,
    device="cpu",
)


def _float_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {
        k: v.detach().clone().double()
        for k, v in module.state_dict().items()
        if v.dtype.is_floating_point
    }


@pytest.mark.long
def test_ema_is_the_exponential_average_of_every_steps_weights(small_splits, monkeypatch):
    decay = 0.8
    steps: list[dict[str, torch.Tensor]] = []
    chosen: dict[str, torch.Tensor] = {}
    after_step, finish = trainer_module.RunState.after_step, trainer_module.RunState.finish

    def record(self):
        steps.append(_float_state(self.model))  # the weights this step produced
        after_step(self)

    def capture(self):
        # what the run validated and selected (what best.pt holds)
        chosen.update({k: v.double() for k, v in self.best["state"].items()})
        return finish(self)

    monkeypatch.setattr(trainer_module.RunState, "after_step", record)
    monkeypatch.setattr(trainer_module.RunState, "finish", capture)
    result = train_run(BASE.replace(ema_decay=decay), small_splits, progress=False, log=None)
    assert len(steps) == math.ceil(small_splits.train_images.shape[0] / 32)
    # by hand: the first update copies, each later one keeps `decay` of the average
    expected = dict(steps[0])
    for state in steps[1:]:
        expected = {k: decay * expected[k] + (1 - decay) * state[k] for k in expected}
    assert result.summary["best_epoch"] == 1  # one epoch: the EMA at its end was selected
    assert set(expected) <= set(chosen)
    for key, value in expected.items():
        torch.testing.assert_close(chosen[key], value, rtol=1e-5, atol=1e-6, msg=key)
    # and they are not simply the last step's weights
    assert any(not torch.allclose(expected[k], steps[-1][k]) for k in expected)


@pytest.mark.long
def test_swa_is_the_mean_of_the_epoch_end_weights_with_bn_recomputed(small_splits, monkeypatch):
    config = BASE.replace(epochs=3, swa_start=2)
    ends: list[dict[str, torch.Tensor]] = []
    swa: dict[str, nn.Module] = {}
    end_epoch, finish = trainer_module.RunState.end_epoch, trainer_module.RunState.finish

    def record_end(self, epoch, stats, started):
        ends.append({k: v.detach().clone().double() for k, v in self.model.named_parameters()})
        return end_epoch(self, epoch, stats, started)

    def keep_swa(self):
        result = finish(self)
        swa["model"] = self.swa.module  # after finish: BN statistics refreshed for SWA weights
        return result

    monkeypatch.setattr(trainer_module.RunState, "end_epoch", record_end)
    monkeypatch.setattr(trainer_module.RunState, "finish", keep_swa)
    train_run(config, small_splits, progress=False, log=None)
    # by hand: equal weights for the end of epochs 2 and 3
    averaged = dict(swa["model"].named_parameters())
    for key in ends[0]:
        expected = (ends[1][key] + ends[2][key]) / 2
        torch.testing.assert_close(averaged[key].detach().double(), expected, rtol=1e-5, atol=1e-6)
    # BN statistics recomputed for the averaged weights: the first BN layer's running mean and
    # variance are the mean and variance of its input over all training images (1,000: one
    # batch of refresh_bn's 1,024)
    model = swa["model"]
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    seen: list[torch.Tensor] = []
    handle = bn.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    model.eval()
    with torch.no_grad():
        model(normalize(small_splits.train_images))
    handle.remove()
    x = seen[0].double()
    torch.testing.assert_close(bn.running_mean.double(), x.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        bn.running_var.double(), x.var((0, 2, 3), unbiased=True), rtol=1e-4, atol=1e-5
    )


def test_tta_is_the_log_of_the_mean_probability_over_the_rotated_views(small_splits):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    images = small_splits.val_images[:64]
    angles = (-10.0, 10.0)
    got = predict_logits(model, images, tta_angles=angles).double()
    inputs = normalize(images)
    with torch.no_grad():
        views = [inputs] + [rotate(inputs, a) for a in angles]
        probs = [torch.softmax(model(v).double(), 1) for v in views]
    expected = torch.log(sum(probs) / 3)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # the rotation is real: the views disagree, so the average is not the plain prediction
    plain = predict_logits(model, images).double()
    assert (got - plain).abs().max() > 1e-3


class _Confident(nn.Module):
    """Logits `gap` apart: the true class (taken from the first pixel) first, others at 0."""

    def __init__(self, gap: float, labels: torch.Tensor, wrong: int):
        super().__init__()
        self.gap, self.labels, self.wrong = gap, labels, wrong

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], 10)
        target = self.labels[: x.shape[0]].clone()
        target[: self.wrong] = (target[: self.wrong] + 1) % 10  # confidently wrong on a few
        logits[torch.arange(x.shape[0]), target] = self.gap
        return logits


@pytest.mark.parametrize("gap", [50.0, 200.0, 1000.0])
def test_a_very_confident_model_has_a_finite_val_loss(gap):
    labels = torch.arange(100) % 10
    images = torch.zeros(100, 28, 28, dtype=torch.uint8)
    model = _Confident(gap, labels, wrong=2)
    stats = evaluate(model, images, labels)
    # exact: each right answer costs log(1 + 9 e^-gap), each wrong one gap + log(1 + 9 e^-gap)
    per_item = math.log1p(9 * math.exp(-gap))
    assert math.isfinite(stats.loss)
    assert stats.loss == pytest.approx(per_item + 2 * gap / 100, rel=1e-5)
    assert stats.acc == pytest.approx(98.0)
    log_probs = predict_logits(model, images)
    assert torch.isfinite(log_probs).all()
    assert log_probs[5, 5].item() == pytest.approx(-per_item, abs=1e-6)
    assert log_probs[5, 0].item() == pytest.approx(-gap - per_item, rel=1e-6)
    # with TTA too (a constant model: every view agrees, the mean is the same distribution)
    with_tta = predict_logits(model, images, tta_angles=(5.0,))
    torch.testing.assert_close(with_tta, log_probs, rtol=1e-5, atol=1e-5)


def test_a_confident_healthy_run_is_not_marked_diverged():
    from mnistlab.engine.loop import EpochStats

    # what the trainer decides from: a large but finite val loss is not divergence
    model = _Confident(500.0, torch.arange(10), wrong=1)
    val = evaluate(model, torch.zeros(10, 28, 28, dtype=torch.uint8), torch.arange(10))
    assert math.isfinite(val.loss)
    assert not trainer_module._diverged(EpochStats(loss=0.01, acc=99.0), val)
