import json

import pytest

from mnistlab.cli import main


def test_bench_json_reports_both_pipelines(capsys, mnist_dir):
    pytest.importorskip("torchvision", reason="bench's reference needs torchvision ([bench])")
    code = main(["bench", "--seconds", "0.5", "--json", "--data-dir", str(mnist_dir)])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["reference_img_per_s"] > 0 and result["mnistlab_img_per_s"] > 0
    assert result["speedup"] == pytest.approx(
        result["mnistlab_img_per_s"] / result["reference_img_per_s"], rel=0.01
    )


def test_bench_rejects_bad_seconds(capsys):
    assert main(["bench", "--seconds", "0"]) == 2
    assert "--seconds must be > 0" in capsys.readouterr().err


def test_bench_grid_reports_every_mode_and_ends_with_speedup(capsys, mnist_dir):
    pytest.importorskip("torchvision", reason="bench's reference needs torchvision ([bench])")
    argv = ["bench", "--seconds", "0.5", "--grid", "2", "--data-dir", str(mnist_dir)]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("sequential", "workers", "fused"):
        assert result[f"grid_{key}_img_per_s"] > 0
    best = max(result[f"grid_{k}_img_per_s"] for k in ("sequential", "workers", "fused"))
    assert result["grid_speedup"] == pytest.approx(best / result["grid_reference_img_per_s"], 0.01)
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("speedup=") and any(x.startswith("grid_speedup=") for x in lines)
    assert main([*argv[:4], "0"]) == 2
