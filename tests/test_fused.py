"""Fused multi-config training (engine.fused) against one-at-a-time training, and in `grid`."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mnistlab.cli import main
from mnistlab.config import TrainConfig
from mnistlab.data import iterate_batches, normalize
from mnistlab.engine.fused import FusedModels, fuse_key, train_fused
from mnistlab.engine.trainer import RunState, train_run
from mnistlab.errors import ConfigError
from mnistlab.experiments.store import RunStore
from mnistlab.models.blocks import make_dropout
from mnistlab.models.tiny import TinyMNISTNet
from mnistlab.run.build import build_model


@pytest.fixture(autouse=True)
def nchw_twins(monkeypatch):
    # fused runs compute in NCHW (vmap); one run alone trains `tiny` in NHWC on the CPU, whose
    # BatchNorm statistics differ by ~5e-6 relative, which Adam turns into 2e-4 moves at once:
    # the twins here compute in NCHW too, so they differ only by summation order
    monkeypatch.setattr(TinyMNISTNet, "cpu_channels_last", False)


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


def _runs(configs, splits):
    """Each config's model (built under its seed, as train_run does) with its RunState."""
    runs = []
    for config in configs:
        torch.manual_seed(config.seed)
        model = build_model(config)
        runs.append(RunState(config, model, splits, torch.device("cpu"), None, None, None))
    return runs


def _batches(config, splits, steps):
    generator = torch.Generator().manual_seed(config.seed)
    batches = iterate_batches(
        splits.train_images, splits.train_labels, config.batch_size, shuffle=True,
        generator=generator,
    )  # fmt: skip
    return [(normalize(x), y) for (x, y), _ in zip(batches, range(steps), strict=False)]


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}


# three configs that differ in everything a fused run must keep per run. `tiny` has no conv
# bias in front of BN: such a bias has a zero gradient up to float noise, which Adam's
# normalised step would turn into lr-sized moves that differ between any two summation orders
STEP_BASE = NO_DROPOUT.replace(model="tiny", model_options={"width": 0.5, "dropout_p": 0.0})
CONFIGS = [
    STEP_BASE.replace(name="sgd"),
    STEP_BASE.replace(name="adam", optimizer="adam", lr=0.003, label_smoothing=0.1),
    STEP_BASE.replace(name="sgd_wd", weight_decay=0.0, lr=0.2, grad_clip=0.5, ema_decay=0.9),
]


def test_without_dropout_each_fused_run_matches_its_sequential_twin_step_by_step(small_splits):
    # float summation order differs (grouped vs single convolutions): ~1e-7 after one step,
    # ~1e-6 after four, then training amplifies it (1e-4 by step 7), so a few steps are compared
    steps = 4
    fused_runs, alone_runs = _runs(CONFIGS, small_splits), _runs(CONFIGS, small_splits)
    fused = FusedModels([r.model for r in fused_runs], [c.label_smoothing for c in CONFIGS])
    fused.train()
    for run in alone_runs:
        run.model.train()
    for step, (inputs, labels) in enumerate(_batches(STEP_BASE, small_splits, steps), 1):
        # fused: one batched forward/backward, then each run's own clip/optimizer/schedule/EMA
        losses, _ = fused.backward(inputs, labels)
        for run in fused_runs:
            if run.config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.grad_clip)
            run.optimizer.step()
            run.schedule.after_batch()
            run.after_step()
        # sequential: each model alone, as engine.loop.train_one_epoch steps it
        for index, run in enumerate(alone_runs):
            logits = run.model(inputs)
            loss = F.cross_entropy(logits, labels, label_smoothing=run.config.label_smoothing)
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if run.config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.grad_clip)
            run.optimizer.step()
            run.schedule.after_batch()
            run.after_step()
            assert losses[index].item() == pytest.approx(loss.item(), rel=1e-5, abs=1e-6)
        for config, mine, theirs in zip(CONFIGS, fused_runs, alone_runs, strict=True):
            # weights and BN statistics (and the EMA's) per config after every step
            for model_pair in ((mine.model, theirs.model), (mine.eval_model, theirs.eval_model)):
                a, b = (_state(m) for m in model_pair)
                for key in b:
                    torch.testing.assert_close(
                        a[key], b[key], rtol=0, atol=1e-5,
                        msg=f"{config.name}, step {step}, {key}",
                    )  # fmt: skip
    # the configs really differ: the same weights for all would not pass the above
    first, second = (_state(r.model) for r in fused_runs[:2])
    assert any(not torch.allclose(first[k], second[k]) for k in first)


def test_without_dropout_train_fused_ends_where_train_run_ends(small_splits, tmp_path):
    # end to end (batching, augmentation draws, validation, checkpoints): one epoch of 4 steps
    configs = [c.replace(epochs=1, rotate_deg=5.0, translate=0.05) for c in CONFIGS]
    short = {"train_images": small_splits.train_images[:256],
             "train_labels": small_splits.train_labels[:256],
             "test_images": small_splits.test_images[:1000],
             "test_labels": small_splits.test_labels[:1000]}  # fmt: skip
    splits = small_splits.__class__(**{**vars(small_splits), **short})
    dirs = [tmp_path / f"fused-{c.name}" for c in configs]
    fused = train_fused(configs, splits, dirs)
    for config, result, directory in zip(configs, fused, dirs, strict=True):
        alone = train_run(config, splits, tmp_path / f"alone-{config.name}", progress=False,
                          log=None)  # fmt: skip
        mine, theirs = result.epochs[0], alone.epochs[0]
        assert mine.train_loss == pytest.approx(theirs.train_loss, rel=1e-4)
        assert mine.val_loss == pytest.approx(theirs.val_loss, rel=1e-4)
        assert mine.val_acc == pytest.approx(theirs.val_acc, abs=0.11)  # at most one image
        a = torch.load(directory / "last.pt", weights_only=True)["state_dict"]
        b = torch.load(tmp_path / f"alone-{config.name}" / "last.pt", weights_only=True)
        for key, value in b["state_dict"].items():
            if value.is_floating_point():
                torch.testing.assert_close(a[key], value, rtol=0, atol=1e-5, msg=key)


class _Probe(torch.nn.Module):
    """Logits = dropout(ones): each logit is 0 (dropped) or 1/(1-p) (kept)."""

    def __init__(self, p: float, spatial: bool):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.spatial = spatial
        self.drop = make_dropout(p, spatial=spatial)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = x.new_ones(x.shape[0], 10, 1, 1) if self.spatial else x.new_ones(x.shape[0], 10)
        return self.drop(ones * self.scale).reshape(x.shape[0], 10)


@pytest.mark.parametrize("spatial", [False, True])
@pytest.mark.parametrize("p", [0.1, 0.3])
def test_with_dropout_fused_models_draw_their_own_masks_at_rate_p(p, spatial):
    models = 3
    fused = FusedModels([_Probe(p, spatial) for _ in range(models)], [0.0] * models)
    fused.train()
    inputs = torch.zeros(4000, 1, 28, 28)
    labels = torch.zeros(4000, dtype=torch.long)
    torch.manual_seed(0)
    _, logits = fused.backward(inputs, labels)  # K x B x 10
    kept = logits != 0
    # kept values are scaled by 1/(1-p); dropped at rate p in every model (40,000 draws each:
    # one standard error is under 0.003)
    assert torch.allclose(logits[kept], torch.tensor(1 / (1 - p)))
    for k in range(models):
        assert (1 - kept[k].float().mean().item()) == pytest.approx(p, abs=0.015)
    # each model its own mask: two independent masks disagree on 2p(1-p) of the elements
    for a, b in ((0, 1), (0, 2), (1, 2)):
        disagree = (kept[a] != kept[b]).float().mean().item()
        assert disagree == pytest.approx(2 * p * (1 - p), abs=0.02)


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
