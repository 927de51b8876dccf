"""`mnistlab export` exits 1 when the exported model does not match PyTorch."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mnistlab.cli import main
from mnistlab.inference import export as export_module


class _Skewed:
    """An ONNX Runtime session whose logits are off: `shift` on every logit of class 3."""

    def __init__(self, session: Any, shift: float):
        self.session, self.shift = session, shift

    def run(self, names: Any, feeds: dict[str, Any]) -> list[Any]:
        outputs = self.session.run(names, feeds)
        outputs[0][:, 3] += self.shift
        return outputs


@pytest.mark.parametrize(
    ("shift", "why"),
    [
        (1e-3, "logits differ by more than the limit, every prediction the same"),
        (100.0, "predictions differ"),
    ],
)
@pytest.mark.long
def test_export_exits_1_when_parity_fails(capsys, tmp_path, monkeypatch, shift, why):
    for module in ("onnx", "onnxruntime", "onnxscript"):
        pytest.importorskip(module, reason=f"{module} not importable", exc_type=ImportError)
    real = export_module.onnx_session
    monkeypatch.setattr(
        export_module, "onnx_session", lambda *a, **k: _Skewed(real(*a, **k), shift)
    )
    out_file = tmp_path / "default.onnx"
    argv = ["export", "--pretrained", "default", "--onnx", str(out_file), "--repeats", "3"]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 1, (why, captured.out, captured.err)
    assert "the ONNX model does not match PyTorch" in captured.err
    assert "parity check passed" not in captured.out
    diff = float(re.search(r"max \|logit diff\| (\S+)", captured.out).group(1))
    # the skew plus the export's own difference (under the 1e-4 limit), printed to 3 digits
    assert shift * 0.995 <= diff <= (shift + 1e-4) * 1.005
    if shift > 1:
        assert "same prediction 1000/1000" not in captured.out
    else:
        assert "same prediction 1000/1000" in captured.out
