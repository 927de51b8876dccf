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
