"""Fused multi-config training (engine.fused) against one-at-a-time training, and in `grid`."""

import json
import statistics
from pathlib import Path

import pytest

from mnistlab.cli import main
from mnistlab.config import TrainConfig
from mnistlab.engine.fused import fuse_key, train_fused
from mnistlab.engine.trainer import train_run
from mnistlab.errors import ConfigError
from mnistlab.experiments.store import RunStore

# s004 at half width has no dropout: fused and sequential then see the same init, batches and
# augmentation, and differ only by float summation order
NO_DROPOUT = TrainConfig(
    model="s004",
    model_options={"width": 0.5},
    epochs=2,
    batch_size=64,
    train_subset=1000,
    val_size=1000,
    device="cpu",
)


def test_without_dropout_fused_runs_match_sequential_ones(small_splits):
    configs = [
        NO_DROPOUT.replace(name="sgd"),
        NO_DROPOUT.replace(name="adam", optimizer="adam", lr=0.003, label_smoothing=0.1),
        NO_DROPOUT.replace(name="sgd_step", scheduler="step", step_size=1, weight_decay=0.0),
    ]
    fused = train_fused(configs, small_splits)
    for config, result in zip(configs, fused, strict=True):
        alone = train_run(config, small_splits, progress=False, log=None)
        for mine, theirs in zip(result.epochs, alone.epochs, strict=True):
            # float summation order differs (grouped vs single convolutions) and training
            # amplifies it a little; a wrong lr, optimizer, smoothing or BN update would not
            # come within these bounds
            assert mine.train_loss == pytest.approx(theirs.train_loss, rel=2e-2)
            assert mine.val_loss == pytest.approx(theirs.val_loss, rel=5e-2)
            assert abs(mine.val_acc - theirs.val_acc) <= 3.0
        assert result.summary["params"] == alone.summary["params"]
        assert result.summary["state"] == "finished"


def test_with_dropout_fused_and_sequential_agree_within_seed_noise(small_splits):
    """Dropout masks come from one shared stream when fused: equal in distribution only."""
    base = TrainConfig(
        model="s004",
        model_options={"width": 0.5, "dropout_p": 0.3},
        epochs=2,
        batch_size=64,
        train_subset=1000,
        val_size=1000,
        device="cpu",
        rotate_deg=0.0,
        translate=0.0,
    )
    seeds = range(2)
    fused, alone = [], []
    for seed in seeds:
        configs = [base.replace(seed=seed, name="a"), base.replace(seed=seed, name="b", lr=0.1)]
        fused += [r.summary["val_acc"] for r in train_fused(configs, small_splits)]
        alone += [train_run(c, small_splits, progress=False, log=None).summary["val_acc"]
                  for c in configs]  # fmt: skip
    gap = abs(statistics.mean(fused) - statistics.mean(alone))
    spread = statistics.stdev(alone) + statistics.stdev(fused)
    assert gap <= max(spread, 1.0), (fused, alone)
    assert statistics.mean(fused) > 40  # both learned (chance is 10%)


def test_configs_that_do_not_share_data_settings_are_refused(small_splits):
    other = NO_DROPOUT.replace(batch_size=32)
    assert fuse_key(NO_DROPOUT) != fuse_key(other)
    assert fuse_key(NO_DROPOUT) == fuse_key(NO_DROPOUT.replace(lr=0.5, optimizer="adam"))
    with pytest.raises(ConfigError, match="must share"):
        train_fused([NO_DROPOUT, other], small_splits)


def test_grid_fuse_on_trains_every_run_once_and_stores_each(tmp_path: Path, capsys):
    suite = tmp_path / "fz.toml"
    suite.write_text(
        'name = "fz"\n[base]\nmodel = "s004"\nwidth = 0.5\nepochs = 1\nbatch_size = 64\n'
        'train_subset = 300\nval_size = 500\ndevice = "cpu"\n[[groups]]\nname = "g"\n'
        'variants = [ { name = "sgd" }, { name = "adam", optimizer = "adam", lr = 0.003 },'
        ' { name = "big", batch_size = 128 } ]\n'
    )
    store_url = f"sqlite:///{tmp_path}/store.db"
    argv = ["grid", str(suite), "--store", store_url, "--runs-dir", str(tmp_path / "runs"),
            "--no-progress", "--fuse", "on", "--seeds", "2"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "6 finished" in out
    store = RunStore(store_url)
    records = store.records(store.study("fz", create=False))
    assert sorted((r.name, r.seed) for r in records) == sorted(
        (f"g_{v}", s) for v in ("sgd", "adam", "big") for s in (0, 1)
    )
    assert all(r.state == "finished" and r.summary["val_acc"] > 0 for r in records)
    for record in records:
        summary = json.loads((Path(record.run_dir) / "summary.json").read_text())
        assert summary["name"] == record.name and (Path(record.run_dir) / "best.pt").exists()
    with pytest.raises(SystemExit) as bad:
        main([*argv[:-4], "--fuse", "sometimes"])
    assert bad.value.code == 2 and "choose from 'auto', 'on', 'off'" in capsys.readouterr().err
