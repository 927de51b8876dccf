"""`eval`, `predict`, `export`, `serve`: use a trained model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mnistlab.cli.common import check_count, data_flags
from mnistlab.errors import ConfigError, MnistlabError


def model_flags(sub: argparse.ArgumentParser, default: str | None) -> None:
    from mnistlab import pretrained

    source = sub.add_mutually_exclusive_group(required=default is None)
    source.add_argument(
        "--checkpoint", type=Path, help="a best.pt/last.pt written by `mnistlab train`"
    )
    source.add_argument(
        "--pretrained",
        metavar="NAME",
        help=f"a model shipped with mnistlab: {', '.join(pretrained.available())}"
        + (f" (default: {default})" if default else ""),
    )


def _load_for_inference(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """(model, config, label) from --checkpoint PATH or --pretrained NAME (default: default)."""
    from mnistlab.models import count_params

    if args.checkpoint is not None:
        from mnistlab.run.checkpoint import load_checkpoint

        loaded = load_checkpoint(args.checkpoint)
        model, config = loaded.model, loaded.config
        for note in loaded.warnings:
            print(f"mnistlab: warning: {note}", file=sys.stderr)
        val = loaded.info.get("val_acc")
        detail = f", val {val:.2f}%" if isinstance(val, int | float) else ""
        source = str(args.checkpoint)
    else:
        from mnistlab import pretrained

        name = args.pretrained or "default"
        model, config = pretrained.load(name)
        record = pretrained.info(name)
        detail = f", val {record['val_acc']:.2f}%, test {record['test_acc']:.2f}%"
        source = f"pretrained {name!r}"
    label = f"{source} ({config.model}, {count_params(model):,} params{detail})"
    return model, config, label


def cmd_eval(args: argparse.Namespace) -> int:
    from mnistlab.data import load_mnist
    from mnistlab.engine.loop import evaluate
    from mnistlab.run.build import splits_for

    model, config, label = _load_for_inference(args)
    data = load_mnist(args.data_dir, download=not args.no_download)
    # the same seeded split the model was trained with: its val figure is reproducible too
    splits = splits_for(config, data)
    figures: dict[str, Any] = {"source": label}
    for part, images, labels in (
        ("val", splits.val_images, splits.val_labels),
        ("test", splits.test_images, splits.test_labels),
    ):
        stats = evaluate(
            model, images, labels, batch_size=config.eval_batch_size, tta_angles=config.tta_angles
        )
        figures[f"{part}_acc"] = round(stats.acc, 4)
        figures[f"{part}_size"] = int(labels.shape[0])
    recorded: dict[str, Any] = {}
    if args.checkpoint is None:
        from mnistlab import pretrained

        recorded = pretrained.info(args.pretrained or "default")
    if args.json:
        figures["recorded_test_acc"] = recorded.get("test_acc")
        print(json.dumps(figures, indent=2))
        return 0
    print(label)
    tta = f", rotation TTA {', '.join(f'{a:g}' for a in config.tta_angles)}" * bool(
        config.tta_angles
    )
    line = (
        f"val_acc {figures['val_acc']:.2f}% on {figures['val_size']:,} held-out train images "
        f"(split seed {config.split_seed}{tta})"
    )
    # with TTA the recorded val figure to compare is the TTA one (the epoch was chosen without)
    recorded_val = recorded.get("val_acc_tta" if config.tta_angles else "val_acc")
    if recorded_val is not None:
        line += f" (recorded: {_versus(figures['val_acc'], recorded_val)})"
    print(line)
    line = f"test_acc {figures['test_acc']:.2f}% on the official {figures['test_size']:,} test set"
    if "test_acc" in recorded:
        line += f" (recorded when shipped: {_versus(figures['test_acc'], recorded['test_acc'])})"
    print(line)
    return 0


def _versus(measured: float, recorded: Any) -> str:
    """`99.43%: same` when the figures agree to the 2 decimals printed, else `...: DIFFERENT`."""
    same = round(measured, 2) == round(float(recorded), 2)
    return f"{float(recorded):.2f}%: {'same' if same else 'DIFFERENT'}"


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from mnistlab.inference.predict import expand_inputs, predict
    from mnistlab.inference.preprocess import preprocess_image

    model, _, label = _load_for_inference(args)
    paths, problems = expand_inputs(args.images)
    # one record per input, in the order given; predictions are filled in after one batch
    records: list[dict[str, Any]] = [{"file": item, "error": msg} for item, msg in problems]
    images, done = [], []
    for path in paths:
        try:
            images.append(preprocess_image(path))
            done.append(len(records))
            records.append({"file": str(path)})
        except MnistlabError as error:
            records.append({"file": str(path), "error": str(error)})
    for record in records:
        if "error" in record:
            # a bad file costs one line and the others go on
            print(f"mnistlab predict: skipped: {record['error']}", file=sys.stderr)
    predictions = predict(model, np.stack(images)) if images else []
    for index, prediction in zip(done, predictions, strict=True):
        records[index].update(prediction.as_dict())
    names = [records[index]["file"] for index in done]
    if args.json:
        print(json.dumps({"model": label, "results": records}, indent=2))
    elif predictions:
        print(f"model: {label}")
        width = max((len(n) for n in names), default=0)
        for name, prediction in zip(names, predictions, strict=True):
            top3 = "  ".join(f"{d} {100 * p:5.1f}%" for d, p in prediction.top3)
            print(
                f"{name:<{width}}  {prediction.digit}  ({100 * prediction.prob:5.1f}%)   "
                f"top-3: {top3}"
            )
    if not predictions:
        print("mnistlab predict: error: no image could be predicted", file=sys.stderr)
        return 2
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mnistlab.data import load_mnist, split_mnist
    from mnistlab.inference.export import (
        MAX_ABS_DIFF,
        check_parity,
        export_onnx,
        measure_latency,
        onnx_session,
        require_onnx,
    )

    check_count("--parity-images", args.parity_images)
    require_onnx()  # before loading anything: a missing extra is the likeliest problem
    model, config, label = _load_for_inference(args)
    out = export_onnx(model, config, args.onnx)
    print(f"exported {label}")
    print(
        f"  -> {out} ({out.stat().st_size:,} bytes, opset 18, batch axis dynamic; "
        "onnx.checker passed)"
    )
    data = load_mnist(args.data_dir, download=not args.no_download)
    test = split_mnist(data)
    count = min(args.parity_images, test.test_images.shape[0])
    images, labels = test.test_images[:count], test.test_labels[:count]
    session = onnx_session(out)
    parity = check_parity(model, session, images, labels)
    print(
        f"parity on the first {parity.images:,} official test images (ONNX Runtime vs PyTorch): "
        f"max |logit diff| {parity.max_abs_diff:.2e} (limit {MAX_ABS_DIFF:.0e}), "
        f"same prediction {parity.agree}/{parity.images}, accuracy "
        f"{100 * parity.torch_correct / parity.images:.2f}% (PyTorch) / "
        f"{100 * parity.onnx_correct / parity.images:.2f}% (ONNX Runtime)"
    )
    import torch

    print(f"latency (median of repeated runs, CPU, {torch.get_num_threads()} threads each):")
    for batch, repeats in ((1, args.repeats), (1024, max(3, args.repeats // 20))):
        lat = measure_latency(model, session, images, batch, repeats)
        print(
            f"  batch {batch:>4}: PyTorch {lat.torch_ms:8.3f} ms   ONNX Runtime "
            f"{lat.onnx_ms:8.3f} ms   ({batch / lat.onnx_ms * 1000:,.0f} img/s ONNX, "
            f"{batch / lat.torch_ms * 1000:,.0f} img/s PyTorch)"
        )
    if not parity.ok:
        print("mnistlab export: error: the ONNX model does not match PyTorch", file=sys.stderr)
        return 1
    print("parity check passed")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import torch

    from mnistlab.inference.server import make_server

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {args.port}")
    if args.workers is not None and args.workers < 0:
        raise ConfigError(f"--workers must be 0 or more, got {args.workers}")
    # one image per forward pass: a second intra-op thread gains nothing there, and each
    # request thread's OpenMP team spun on the cores that decode the next requests
    torch.set_num_threads(1)
    model, _, label = _load_for_inference(args)
    try:
        server = make_server(
            model,
            host=args.host,
            port=args.port,
            label=label,
            verbose=args.verbose,
            workers=args.workers,
        )
    except OSError as error:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in str(host) else host
    # flush: a script (or test) waiting for this line reads the port from it
    print(f"serving {label} on http://{shown}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def add_commands(commands: Any) -> None:
    sub = commands.add_parser(
        "eval",
        help="recompute a trained model's val and test accuracy from the raw MNIST files",
        description="Evaluate a shipped model (--pretrained) or a checkpoint on its validation "
        "split (same split seed as in training) and on the official 10k test set, and compare "
        "with the figure recorded when it was shipped.",
    )
    model_flags(sub, "default")
    data_flags(sub)
    sub.add_argument("--json", action="store_true", help="print one JSON document")
    sub.set_defaults(handler=cmd_eval)

    sub = commands.add_parser(
        "predict",
        help="classify images of handwritten digits (PNG, JPEG, BMP, GIF, WebP)",
        description="Predict the digit in each image. Any size, colour or polarity: images are "
        "preprocessed the MNIST way (grayscale, white on black, cropped, scaled to 20 px, "
        "centred by centre of mass in 28x28). A bad file is reported and skipped; exit code "
        "2 if nothing could be predicted.",
    )
    sub.add_argument("images", nargs="+", metavar="IMAGE", help="files, directories or globs")
    model_flags(sub, "default")
    sub.add_argument("--json", action="store_true", help="print one JSON document")
    sub.set_defaults(handler=cmd_predict)

    sub = commands.add_parser(
        "export",
        help="export a model to ONNX and check it against PyTorch (needs mnistlab[onnx])",
        description="Write ONNX (dynamic batch axis), check it with onnx.checker, run it in "
        "ONNX Runtime on official test images (max |logit diff| must be <= 1e-4 and every "
        "prediction identical) and time batch-1 and batch-1024 inference in both runtimes.",
    )
    model_flags(sub, None)
    sub.add_argument("--onnx", required=True, metavar="OUT.onnx", help="file to write")
    sub.add_argument(
        "--parity-images",
        type=int,
        default=1000,
        help="official test images for the parity check (default: 1000)",
    )
    sub.add_argument("--repeats", type=int, default=200, help="timed batch-1 calls (default: 200)")
    data_flags(sub)
    sub.set_defaults(handler=cmd_export)

    sub = commands.add_parser(
        "serve",
        help="a local web page to draw digits and watch the model classify them",
        description="Serve a draw-a-digit page (no network needed) and a JSON endpoint "
        "POST /predict. Binds 127.0.0.1 unless --host says otherwise.",
    )
    model_flags(sub, "default")
    sub.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    sub.add_argument(
        "--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)"
    )
    sub.add_argument(
        "--workers",
        type=int,
        help="processes that decode and preprocess images (default: one per CPU core; "
        "0: in the server process)",
    )
    sub.add_argument("--verbose", action="store_true", help="log every request")
    sub.set_defaults(handler=cmd_serve)
