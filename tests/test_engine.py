import csv
import json

import pytest
import torch

from mnistlab import config as config_module
from mnistlab.config import TrainConfig
from mnistlab.engine import optim as optim_module
from mnistlab.engine.loop import rotate
from mnistlab.engine.optim import Schedule, create_optimizer
from mnistlab.engine.trainer import train_run

# constant lr, small batches: ~70% val on 1,000 images in 2 epochs (chance is 10%)
QUICK = dict(
    scheduler="none",
    lr=0.05,
    epochs=2,
    batch_size=32,
    train_subset=0,
    rotate_deg=5.0,
    translate=0.05,
    no_aug_last=0,
    device="cpu",
    eval_batch_size=1000,
)


def lrs_per_epoch(
    config: TrainConfig, steps_per_epoch: int = 3, val_accs: list[float] | None = None
) -> list[float]:
    model = torch.nn.Linear(2, 2)
    optimizer = create_optimizer(model, config)
    schedule = Schedule(optimizer, config, steps_per_epoch)
    lrs = []
    for epoch in range(config.epochs):
        lrs.append(schedule.lr)
        for _ in range(steps_per_epoch):
            optimizer.step()
            schedule.after_batch()
        schedule.after_epoch(val_loss=1.0, val_acc=val_accs[epoch] if val_accs else 50.0)
    return lrs


def test_seed002s_multistep_schedule_gives_its_lr_per_epoch():
    """The seed's MultiStepLR(milestones [5, 12, 18], gamma 0.33) stepped per epoch trains
    epochs 1-5 at 0.003, 6-12 at 0.00099, 13-18 at 0.0003267, 19-20 at 0.0001078 (computed by
    hand: 0.003 x 0.33^k); mnistlab's milestones name the epoch where the decayed lr starts."""
    config = TrainConfig(
        optimizer="adam",
        lr=0.003,
        scheduler="multistep",
        epochs=20,
        milestones=(6, 13, 19),
        gamma=0.33,
    )
    want = [0.003] * 5 + [0.00099] * 7 + [0.0003267] * 6 + [0.00010781] * 2
    assert lrs_per_epoch(config) == pytest.approx(want, rel=1e-3)


def test_phases_schedule_gives_each_phase_its_lr():
    # 0.003 -> 0.001 -> 0.0003 -> 0.0001, new lr from epochs 5, 12 and 18
    config = TrainConfig(
        optimizer="adam",
        lr=0.003,
        scheduler="phases",
        epochs=20,
        milestones=(5, 12, 18),
        phase_lrs=(0.003, 0.001, 0.0003, 0.0001),
    )
    lrs = lrs_per_epoch(config)
    assert lrs[:4] == pytest.approx([0.003] * 4)
    assert lrs[4:11] == pytest.approx([0.001] * 7)
    assert lrs[11:17] == pytest.approx([0.0003] * 6)
    assert lrs[17:] == pytest.approx([0.0001] * 3)


def test_multistep_uses_one_based_milestones():
    config = TrainConfig(scheduler="multistep", lr=1.0, epochs=5, milestones=(3,), gamma=0.1)
    assert lrs_per_epoch(config) == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.1])


def test_step_and_plateau_decay():
    step = TrainConfig(scheduler="step", lr=1.0, epochs=4, step_size=2, gamma=0.5)
    assert lrs_per_epoch(step) == pytest.approx([1.0, 1.0, 0.5, 0.5])
    # a constant val loss is never an improvement after the first epoch
    plateau = TrainConfig(scheduler="plateau", lr=1.0, epochs=6, patience=1, gamma=0.1)
    assert lrs_per_epoch(plateau)[-1] < 1.0


def test_plateau_on_val_acc_waits_while_accuracy_rises():
    """Seed 000's ReduceLROnPlateau(mode='max') on accuracy, here on val accuracy."""
    config = TrainConfig(
        scheduler="plateau", plateau_metric="val_acc", lr=1.0, epochs=6, patience=1, gamma=0.5
    )
    assert lrs_per_epoch(config, val_accs=[90, 91, 92, 93, 94, 95]) == [1.0] * 6
    # best 91 at epoch 2; epochs 3 and 4 do not improve on it: more than patience 1 epoch,
    # so the lr is halved after epoch 4
    assert lrs_per_epoch(config, val_accs=[90, 91, 91, 91, 91, 91])[:5] == [1, 1, 1, 1, 0.5]


def test_onecycle_div_factors_set_its_first_and_last_lr():
    config = TrainConfig(
        scheduler="onecycle", lr=0.05, epochs=4, pct_start=0.2, div_factor=5, final_div_factor=20
    )
    model = torch.nn.Linear(2, 2)
    optimizer = create_optimizer(model, config)
    schedule = Schedule(optimizer, config, 10)
    first = schedule.lr
    for _ in range(39):  # 40 steps: the last one runs at the final lr
        optimizer.step()
        schedule.after_batch()
    assert first == pytest.approx(0.05 / 5) and schedule.lr == pytest.approx(0.05 / 5 / 20)


def test_rmsprop_takes_its_alpha():
    built = create_optimizer(torch.nn.Linear(2, 2), TrainConfig(optimizer="rmsprop", rms_alpha=0.9))
    assert built.param_groups[0]["alpha"] == 0.9


def test_onecycle_peaks_at_lr():
    config = TrainConfig(scheduler="onecycle", lr=0.2, epochs=10, pct_start=0.3)
    lrs = lrs_per_epoch(config, steps_per_epoch=10)
    assert max(lrs) == pytest.approx(0.2, rel=0.05)
    assert lrs[0] < 0.02 and lrs[-1] < 0.05


def test_config_names_the_optimizers_and_schedulers_the_engine_builds():
    # config.py validates names without importing the engine; the two lists must not drift
    assert set(config_module.OPTIMIZERS) == set(optim_module.OPTIMIZERS)
    assert set(config_module.SCHEDULERS) == set(optim_module.SCHEDULERS)


@pytest.mark.parametrize("optimizer", config_module.OPTIMIZERS)
def test_every_optimizer_builds(optimizer):
    model = torch.nn.Linear(2, 2)
    built = create_optimizer(model, TrainConfig(optimizer=optimizer, lr=0.01))
    assert built.param_groups[0]["lr"] == 0.01


def test_rotate_zero_is_identity_and_rotation_moves_pixels(small_splits):
    from mnistlab.data import normalize

    images = normalize(small_splits.train_images[:8])
    assert torch.allclose(rotate(images, 0.0), images, atol=1e-5)
    assert not torch.allclose(rotate(images, 30.0), images, atol=1e-2)


@pytest.mark.long
def test_train_run_writes_run_dir_and_selects_on_val(small_splits, tmp_path):
    config = TrainConfig(**QUICK)
    result = train_run(config, small_splits, tmp_path, progress=False, log=None)
    for name in ("config.toml", "epochs.csv", "best.pt", "last.pt", "summary.json"):
        assert (tmp_path / name).is_file(), name
    summary = json.loads((tmp_path / "summary.json").read_text())
    with open(tmp_path / "epochs.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    val = [(float(r["val_acc"]), -float(r["val_loss"])) for r in rows]
    # selection is on val only: highest val_acc, ties broken by lower val_loss
    assert summary["best_epoch"] == 1 + max(range(len(val)), key=lambda i: val[i])
    assert summary["val_acc"] == pytest.approx(max(val)[0], abs=1e-3)
    assert summary["params"] == 15_882 and summary["state"] == "finished"
    assert summary["test_size"] == 10_000 and 0 <= summary["test_acc"] <= 100
    assert TrainConfig.from_toml(tmp_path / "config.toml") == config
    checkpoint = torch.load(tmp_path / "best.pt", weights_only=True)
    assert checkpoint["epoch"] == summary["best_epoch"]
    assert result.summary == summary


@pytest.mark.long
def test_same_seed_same_metrics_different_seed_differs(small_splits):
    def metrics(seed: int) -> list[tuple]:
        config = TrainConfig(**{**QUICK, "seed": seed, "epochs": 1})
        result = train_run(config, small_splits, None, progress=False, log=None)
        return [(r.train_loss, r.train_acc, r.val_loss, r.val_acc) for r in result.epochs]

    first = metrics(0)
    assert metrics(0) == first
    assert metrics(1) != first


def test_divergence_is_marked_not_crashing(small_splits, tmp_path):
    config = TrainConfig(
        **{**QUICK, "lr": 100.0, "scheduler": "none", "momentum": 0.0, "weight_decay": 0.0}
    )
    summary = train_run(config, small_splits, tmp_path, progress=False, log=None).summary
    assert summary["state"] == "diverged"
    assert summary["diverged_epoch"] == 1
    assert summary["test_acc"] is None
    json.loads((tmp_path / "summary.json").read_text())  # valid JSON: no NaN literal


@pytest.mark.long
def test_ema_swa_tta_run(small_splits):
    config = TrainConfig(**{**QUICK, "ema_decay": 0.9, "tta_angles": (-3.0, 3.0)})
    summary = train_run(config, small_splits, None, progress=False, log=None).summary
    assert summary["val_acc_tta"] is not None and summary["test_acc"] > 20
    config = TrainConfig(**{**QUICK, "swa_start": 1})
    result = train_run(config, small_splits, None, progress=False, log=None)
    summary = result.summary
    # selection on val: the SWA weights only when they beat every epoch's weights on val
    best_epoch_val = max(record.val_acc for record in result.epochs)
    if summary["selected"] == "swa":
        assert summary["val_acc"] > best_epoch_val
    else:
        assert summary["selected"] == "epoch" and summary["val_acc"] == best_epoch_val
    assert summary["test_acc"] > 20


@pytest.mark.parametrize("steps_per_epoch", [1, 2, 3, 5])
def test_onecycle_survives_very_few_steps(steps_per_epoch):
    config = TrainConfig(scheduler="onecycle", lr=0.1, epochs=2, pct_start=0.25)
    lrs = lrs_per_epoch(config, steps_per_epoch=steps_per_epoch)
    assert all(0 < lr <= 0.1 for lr in lrs)
