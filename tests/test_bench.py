import ast
import json
from pathlib import Path

import pytest
import torch

import mnistlab.bench_reference as reference
from mnistlab.cli import main
from mnistlab.engine import trainer
from mnistlab.models import count_params, create_model

QUICK = ["bench", "--seconds", "0.5", "--rounds", "2", "--threads", "1", "--json"]


def test_the_reference_imports_nothing_of_mnistlab():
    tree = ast.parse(Path(reference.__file__).read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names]  # fmt: skip
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert imported and not [name for name in imported if name.startswith("mnistlab")]


def test_the_reference_model_is_seed_000s_with_plain_dropout():
    model = reference.SeedTinyMNISTNet()
    ours = create_model("tiny")
    assert count_params(model) == count_params(ours) == 15_882
    assert [p.shape for p in model.parameters()] == [p.shape for p in ours.parameters()]
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == 6 and all(type(m) is torch.nn.Dropout for m in dropouts)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def _needs_torchvision() -> None:
    pytest.importorskip("torchvision", reason="bench's reference needs torchvision ([bench])")


@pytest.mark.long
def test_mnistlab_side_runs_trains_own_epoch_function(capsys, mnist_dir, monkeypatch):
    _needs_torchvision()
    # the product's steps, not a copy: every trained batch goes through engine.loop's epoch
    calls, batches = [], []
    real = trainer.train_one_epoch

    def counting(*args, on_batch=None, **kwargs):
        calls.append(kwargs["batch_size"])

        def seen(count):
            batches.append(count)
            on_batch(count)

        return real(*args, on_batch=seen, **kwargs)

    monkeypatch.setattr(trainer, "train_one_epoch", counting)
    assert main([*QUICK, "--data-dir", str(mnist_dir)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert calls and set(calls) == {128}
    # warm-up, pace and every round's images were all trained by train_one_epoch
    timed = result["rounds"] * result["images_per_round"]
    assert sum(batches) >= timed + 10 * 128
    for key in ("reference_img_per_s", "mnistlab_img_per_s"):
        assert result[key] > 0
    assert len(result["speedup_per_round"]) == result["rounds"] == 2
    assert result["threads"] == 1 and result["device"] == "cpu"
    assert len(result["load_avg_1min"]) == 2 and "grid_speedup" not in result


@pytest.mark.long
def test_bench_grid_times_worker_processes_and_ends_with_speedup(capsys, mnist_dir):
    _needs_torchvision()
    argv = [*QUICK[:-1], "--grid", "2", "--data-dir", str(mnist_dir)]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["grid_workers"] == min(2, torch.multiprocessing.cpu_count())
    for key in ("reference", "sequential", "workers"):
        assert result[f"grid_{key}_img_per_s"] > 0
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("speedup=") and any(x.startswith("grid_speedup=") for x in lines)
    assert any("load average" in line for line in lines)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--seconds", "0"], "--seconds must be > 0"),
        (["--rounds", "0"], "--rounds must be > 0"),
        (["--threads", "0"], "--threads must be > 0"),
        (["--grid", "0"], "--grid must be > 0"),
    ],
)
def test_bench_rejects_bad_numbers(capsys, flags, message):
    assert main(["bench", *flags]) == 2
    assert message in capsys.readouterr().err


def test_bench_device_choices(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--device", "tpu"])
    assert "invalid choice" in capsys.readouterr().err
