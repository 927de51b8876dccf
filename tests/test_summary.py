"""`mnistlab summary` on models written as users write them (issue 27).

Every value is checked against an independent answer: the by-hand counts in summary_corpus.py,
a receptive field measured from gradients, and torchinfo (when installed) for parameters,
per-layer output shapes and MACs.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from mnistlab.models.summary import Spatial, Unknown, checklist, model_card
from summary_corpus import CORPUS

NAMES = list(CORPUS)


class _Stop(Exception):
    pass


class _Capture(TorchFunctionMode):
    """Counts the 4-d tensors the forward pass makes; keeps the one at `index` (and stops the
    pass there, so heads sized for 28×28 never see a larger input). Max pools run as average
    pools over the same windows, so every pixel of a window gets a gradient: the measurement
    sees the window, not the argmax."""

    def __init__(self, index: int | None = None) -> None:
        super().__init__()
        self.index = index
        self.maps: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.max_pool2d or getattr(func, "__name__", "") == "max_pool2d":
            kernel = kwargs.pop("kernel_size", None) or args[1]
            rest = dict(zip(("stride", "padding"), args[2:4], strict=False))
            rest.update({k: kwargs[k] for k in ("stride", "padding", "ceil_mode") if k in kwargs})
            out = F.avg_pool2d(args[0], kernel, **rest)
        else:
            out = func(*args, **kwargs)
        if isinstance(out, torch.Tensor) and out.dim() == 4:
            self.maps.append(out)
            if self.index is not None and len(self.maps) == self.index + 1:
                raise _Stop
        return out


def _positive(model: nn.Module) -> nn.Module:
    """Positive weights and inputs keep every ReLU open: no gradient is cut by an activation."""
    with torch.no_grad():
        for param in model.parameters():
            param.abs_().add_(0.01)
    return model.eval()


def measured_span(model: nn.Module, size: int, gates: tuple[str, ...], index: int | None = None):
    """Rows and columns of the input that the centre unit of the last spatial map depends on
    (union over several inputs): ((row_lo, row_hi), (col_lo, col_hi)), the map's index among
    the forward's 4-d tensors, and the centre unit."""
    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_hook(lambda m, i, o: o.detach()) for name in gates]
    hits = torch.zeros(size, size, dtype=torch.bool)
    try:
        for seed in range(3):
            x = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(seed))
            x = (x + 0.1).requires_grad_(True)
            capture = _Capture(index)
            try:
                with capture:
                    model(x)
            except _Stop:
                pass
            if index is None:
                index = max(i for i, t in enumerate(capture.maps) if t.shape[-1] * t.shape[-2] > 1)
            target = capture.maps[index]
            centre = (target.shape[-2] // 2, target.shape[-1] // 2)
            (grad,) = torch.autograd.grad(target[0, :, centre[0], centre[1]].sum(), x)
            hits |= grad[0, 0] != 0
    finally:
        for handle in handles:
            handle.remove()
    rows = torch.nonzero(hits.any(1)).flatten()
    cols = torch.nonzero(hits.any(0)).flatten()
    span = ((int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max())))
    return span, index, centre


def computed_span(head: Spatial, centre: tuple[int, int], size: int):
    clip = lambda lo_hi: (max(lo_hi[0], 0), min(lo_hi[1], size - 1))  # noqa: E731
    return clip(head.rows.span(centre[0])), clip(head.cols.span(centre[1]))


@pytest.mark.parametrize("name", NAMES)
def test_summary_gives_the_by_hand_values(name):
    cls, expected = CORPUS[name]
    model = cls()
    card = model_card(model)
    assert card.params == expected.params == sum(p.numel() for p in model.parameters())
    assert sum(row.params for row in card.rows) == expected.params  # each weight in one row
    items = {item.key: item for item in checklist(card)}
    if expected.rf is None:
        assert isinstance(card.head, Unknown)
        assert items["rf"].ok is None and items["rf"].detail.startswith("unknown (")
        assert "F.interpolate" in items["rf"].detail
        return
    assert isinstance(card.head, Spatial)
    assert card.head.rf == (expected.rf, expected.rf)
    assert card.head.shape == (expected.head_map, expected.head_map)
    assert items["rf"].ok == (expected.rf >= 28)
    assert items["rf"].detail.startswith(f"{expected.rf}×{expected.rf} ")
    assert items["bn"].ok == expected.bn
    assert card.dropout_ps == pytest.approx(expected.dropout)
    assert items["dropout"].ok == bool(expected.dropout)
    assert expected.dropout_where in items["dropout"].detail
    assert items["gap"].ok == expected.gap
    assert expected.gap_where in items["gap"].detail
    if expected.gates:
        assert any("gate" in note for note in card.notes)
    for fragment in expected.extra.values():
        assert any(fragment in row.kind for row in card.rows)


@pytest.mark.parametrize("name", [n for n in NAMES if CORPUS[n][1].rf is not None])
def test_receptive_field_equals_a_gradient_measurement(name):
    """At 28×28 (clipped by the border) and at an input large enough that the border cannot cut
    the centre unit's field: the measured rows and columns are the computed ones."""
    cls, expected = CORPUS[name]
    model = _positive(cls())
    head = model_card(model).head
    assert isinstance(head, Spatial)
    span, index, centre = measured_span(model, 28, expected.gates)
    assert span == computed_span(head, centre, 28)
    large = 28 + 4 * max(head.rf)
    span, _, centre = measured_span(model, large, expected.gates, index)
    unclipped = head.rows.span(centre[0]), head.cols.span(centre[1])
    assert (
        min(unclipped[0][0], unclipped[1][0]) >= 0 and max(unclipped[0][1], unclipped[1][1]) < large
    )
    assert span == unclipped
    assert span[0][1] - span[0][0] + 1 == expected.rf


@pytest.mark.parametrize("name", NAMES)
def test_params_shapes_and_macs_match_torchinfo(name):
    """torchinfo counts a MAC per bias per output and BN's parameters as MACs; we count
    weight multiply-accumulates only (out elements × fan-in), so its bias and BN terms are
    taken off before comparing."""
    torchinfo = pytest.importorskip("torchinfo")
    cls, _ = CORPUS[name]
    model = cls().eval()
    card = model_card(model)
    info = torchinfo.summary(model, input_size=(1, 1, 28, 28), verbose=0, mode="eval")
    assert info.total_params == card.params
    by_module: dict[int, list] = {}
    for layer in info.summary_list:
        if not list(layer.module.children()):
            by_module.setdefault(id(layer.module), []).append(layer)
    names = {name: module for name, module in model.named_modules()}
    leaf_rows = [row for row in card.rows if row.name in names]
    assert leaf_rows, "module rows expected"
    expected_macs = 0
    for row in leaf_rows:
        module = names[row.name]
        layers = by_module[id(module)]
        layer = layers.pop(0)  # called again: the next call
        assert tuple(layer.output_size[1:]) == row.output_shape, row.name
        macs = layer.macs
        if isinstance(module, nn.Conv2d | nn.Linear) and module.bias is not None:
            macs -= module.bias.numel() * (layer.output_size[2] * layer.output_size[3]
                                           if isinstance(module, nn.Conv2d) else 1)  # fmt: skip
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            macs = 0
        assert row.macs == macs, row.name
        expected_macs += macs
    functional = sum(row.macs for row in card.rows if row.name not in names)
    assert card.macs == expected_macs + functional


def test_summary_cli_prints_the_functional_model_right(capsys, tmp_path, monkeypatch):
    """`mnistlab summary nets.py:Net` on a functional model: the checklist as a user reads it."""
    from pathlib import Path

    from mnistlab.cli import main

    source = Path(__file__).with_name("summary_corpus.py").read_text()
    (tmp_path / "nets.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    assert main(["summary", "nets.py:FunctionalNet"]) == 0
    out = capsys.readouterr().out
    assert "✓ dropout: `forward`: F.dropout p=0.1" in out
    assert "✓ GAP head (no dense > 1,000): global average pool (`forward`: x.mean((2, 3)))" in out
    assert "✗ receptive field at the head ≥ 28: 20×20 (the 4×4 map out of conv4" in out
    assert "F.max_pool2d 2×2" in out  # functional pools are rows of the table
    assert main(["summary", "nets.py:FunctionalNet", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["head"]["receptive_field"] == [20, 20] and record["head"]["map"] == [4, 4]
    assert main(["summary", "nets.py:InterpolateNet"]) == 0
    out = capsys.readouterr().out
    assert "· receptive field at the head ≥ 28: unknown (F.interpolate at `forward`" in out


def test_the_gate_of_squeeze_excite_is_not_the_main_path():
    """Without the gate rule the layers after `x * se` would read as global; with it the rows
    after the gate keep the main path's field and the note says how the gate is treated."""
    cls, _ = CORPUS["squeeze_excite"]
    card = model_card(cls())
    after_gate = [row for row in card.rows if row.name == "c3.0"]
    assert after_gate and after_gate[0].field.rf == (10, 10)
    assert any("squeeze-excite" in note and "not counted" in note for note in card.notes)


def test_output_kind_is_read_from_what_the_model_returns():
    from mnistlab.models.reference import output_kind

    assert output_kind(CORPUS["softmax"][0]()) == "probabilities"
    assert output_kind(CORPUS["lenet_dense"][0]()) == "log-probabilities"
    assert output_kind(CORPUS["dilated"][0]()) == "logits"
    card = model_card(CORPUS["softmax"][0]())
    assert card.output_kind == "probabilities"
    assert any("training refuses it" in note for note in card.notes)


def test_a_model_returning_probabilities_is_refused_before_training(capsys, tmp_path, monkeypatch):
    """One line, exit 2, before any data is read (no MNIST in this directory, no download)."""
    from pathlib import Path

    import mnistlab
    from mnistlab.cli import main
    from mnistlab.errors import ConfigError

    (tmp_path / "nets.py").write_text(Path(__file__).with_name("summary_corpus.py").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNISTLAB_DATA", str(tmp_path / "no-mnist-here"))
    code = main(["train", "--model", "nets.py:SoftmaxNet", "--epochs", "1", "--no-download"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "returns probabilities" in err[0] and "F.log_softmax" in err[0]
    with pytest.raises(ConfigError, match="returns probabilities"):
        mnistlab.train(CORPUS["softmax"][0], epochs=1, download=False, data_dir=tmp_path)
