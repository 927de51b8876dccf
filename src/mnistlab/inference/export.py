"""ONNX export with a dynamic batch axis, checked against PyTorch in ONNX Runtime.

Needs the ``onnx`` extra (``pip install 'mnistlab[onnx]'``: onnx, onnxruntime, and onnxscript,
which PyTorch's exporter is built on). The exported graph takes what the PyTorch model takes:
float32 [N, 1, 28, 28] normalised as ``(pixel/255 - 0.1307)/0.3081``, white digit on black
(see `preprocess`), and returns what the model returns: [N, 10] logits, or log-probabilities
for a model ending in log_softmax (metadata `mnistlab.output_kind` says which); these facts are
also stored in the file's metadata.
"""

from __future__ import annotations

import io
import json
import statistics
import time
import warnings
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mnistlab.config import TrainConfig
from mnistlab.data import MEAN, STD, normalize
from mnistlab.errors import MnistlabError
from mnistlab.fsutil import atomic_write_bytes
from mnistlab.models.reference import output_kind

__all__ = [
    "MAX_ABS_DIFF",
    "ExportError",
    "OPSET",
    "Latency",
    "Parity",
    "check_parity",
    "export_onnx",
    "measure_latency",
    "onnx_session",
    "require_onnx",
]

OPSET = 18
#: Largest |logit difference| between ONNX Runtime and PyTorch that counts as the same model.
MAX_ABS_DIFF = 1e-4


class ExportError(MnistlabError):
    """ONNX tooling missing, export failed, or the exported model disagrees with PyTorch."""


def require_onnx() -> None:
    """Fail with one line naming the extra when the ONNX packages are missing."""
    missing = []
    for module in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ExportError(f"ONNX export needs {', '.join(missing)}: pip install 'mnistlab[onnx]'")


def export_onnx(model: nn.Module, config: TrainConfig, out: str | Path) -> Path:
    """Write `model` as ONNX (batch axis dynamic) to `out` atomically and run onnx.checker."""
    require_onnx()
    import onnx

    model = model.cpu().eval()
    kind = output_kind(model)
    meaning = {
        "logits": "logits (softmax for probabilities)",
        "log-probabilities": "log-probabilities (exp for probabilities)",
        "probabilities": "probabilities",
    }[kind]
    # batch 2, not 1: torch.export specialises a dimension whose example size is 0 or 1
    example = torch.zeros(2, 1, 28, 28)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    try:
        # the exporter prints progress and emits deprecation chatter from its dependencies
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                input_names=["input"],
                output_names=["logits"],
                dynamic_shapes=({0: batch},),
                opset_version=OPSET,
                verbose=False,
            )
    except Exception as error:  # noqa: BLE001 - an exporter failure is reported in one line
        first = " ".join(str(error).split())[:300]
        raise ExportError(f"ONNX export of model {config.model!r} failed: {first}") from None
    assert program is not None  # dynamo=True always returns the ONNXProgram
    proto = program.model_proto
    metadata = {
        "mnistlab.input": "float32 [N,1,28,28]: (pixel/255 - mean)/std, white digit on black, "
        "MNIST-preprocessed (see mnistlab.inference.preprocess)",
        "mnistlab.mean": str(MEAN),
        "mnistlab.std": str(STD),
        "mnistlab.output": f"float32 [N,10] {meaning}",
        "mnistlab.output_kind": kind,
        "mnistlab.config": json.dumps(config.to_dict(), sort_keys=True),
    }
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "mnistlab"
    # full_check also runs shape inference over the whole graph
    onnx.checker.check_model(proto, full_check=True)
    out = Path(out)
    try:
        atomic_write_bytes(out, proto.SerializeToString())
    except OSError as error:
        raise ExportError(f"cannot write {out}: {error.strerror}") from None
    return out


def onnx_session(path: str | Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session; `threads` defaults to PyTorch's, so timings are comparable."""
    require_onnx()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings about unused initialisers are not for users
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class Parity:
    images: int
    max_abs_diff: float
    agree: int  # images where both runtimes predict the same class
    torch_correct: int
    onnx_correct: int

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= MAX_ABS_DIFF and self.agree == self.images


def check_parity(
    model: nn.Module, session: Any, images: torch.Tensor, labels: torch.Tensor
) -> Parity:
    """Logits of both runtimes on uint8 [N, 28, 28] images (e.g. the first 1,000 test images)."""
    inputs = normalize(images.cpu())
    with torch.inference_mode():
        expected = model.cpu().eval()(inputs).numpy()
    got = session.run(["logits"], {"input": inputs.numpy()})[0]
    truth = labels.cpu().numpy()
    return Parity(
        images=int(images.shape[0]),
        max_abs_diff=float(np.abs(got - expected).max()),
        agree=int((got.argmax(1) == expected.argmax(1)).sum()),
        torch_correct=int((expected.argmax(1) == truth).sum()),
        onnx_correct=int((got.argmax(1) == truth).sum()),
    )


@dataclass(frozen=True)
class Latency:
    batch: int
    torch_ms: float  # median wall time of one call
    onnx_ms: float


def _median_ms(call: Callable[[], Any], repeats: int) -> float:
    call()  # warm-up: first calls allocate and pick kernels
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return 1000.0 * statistics.median(times)


def measure_latency(
    model: nn.Module, session: Any, images: torch.Tensor, batch: int, repeats: int
) -> Latency:
    """Median latency of one forward pass of `batch` images in PyTorch and in ONNX Runtime."""
    reps = -(-batch // images.shape[0])  # repeat the images when the batch is larger
    inputs = normalize(images.cpu().repeat(reps, 1, 1)[:batch])
    array = inputs.numpy()
    model = model.cpu().eval()

    def run_torch() -> None:
        with torch.inference_mode():
            model(inputs)

    def run_onnx() -> None:
        session.run(["logits"], {"input": array})

    return Latency(batch, _median_ms(run_torch, repeats), _median_ms(run_onnx, repeats))
