"""Using the trained model: predict on real image files, bad inputs, ONNX parity, the web page.

The test digits are made here, two ways: glyphs of the DejaVu/Computer Modern fonts that
matplotlib ships, and "hand-drawn" polylines (the same strokes the browser test draws with the
mouse). They vary in position, size, stroke width, polarity, colour, mode and file format.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from mnistlab import pretrained
from mnistlab.cli import main
from mnistlab.errors import ConfigError
from mnistlab.inference.preprocess import ImageError, preprocess, preprocess_image

REPO = Path(__file__).resolve().parents[1]
FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
CHROMIUM = "/usr/bin/chromium"


# ---------------------------------------------------------------------------------------------
# test digits


def _ellipse(cx: float, cy: float, rx: float, ry: float, start: float = -math.pi / 2, turn=1.0):
    steps = 28
    return [
        (
            cx + rx * math.cos(start + 2 * math.pi * turn * i / steps),
            cy + ry * math.sin(start + 2 * math.pi * turn * i / steps),
        )
        for i in range(steps + 1)
    ]


#: One or two polylines per digit in a unit box (x right, y down), drawn the way people do.
STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [_ellipse(0.5, 0.5, 0.3, 0.45)],
    1: [[(0.56, 0.05), (0.44, 0.95)]],
    2: [
        [(0.2, 0.25), (0.3, 0.1), (0.5, 0.05), (0.7, 0.1), (0.78, 0.25), (0.72, 0.42)]
        + [(0.2, 0.95), (0.85, 0.95)]
    ],
    3: [
        [(0.2, 0.12), (0.5, 0.03), (0.75, 0.15), (0.72, 0.35), (0.45, 0.48), (0.75, 0.6)]
        + [(0.78, 0.8), (0.5, 0.97), (0.2, 0.88)]
    ],
    4: [[(0.25, 0.05), (0.15, 0.6), (0.85, 0.6)], [(0.65, 0.3), (0.65, 0.97)]],
    5: [
        [(0.78, 0.05), (0.3, 0.05), (0.25, 0.45), (0.5, 0.4), (0.75, 0.55), (0.75, 0.8)]
        + [(0.5, 0.95), (0.2, 0.88)]
    ],
    6: [
        [(0.7, 0.05), (0.4, 0.3), (0.25, 0.6), (0.3, 0.88), (0.5, 0.97), (0.7, 0.85)]
        + [(0.72, 0.65), (0.5, 0.52), (0.3, 0.62)]
    ],
    7: [[(0.15, 0.08), (0.85, 0.08), (0.4, 0.95)]],
    8: [
        [
            (0.5 + 0.22 * math.sin(2 * t), 0.5 - 0.45 * math.cos(t))
            for t in (2 * math.pi * i / 40 for i in range(41))
        ]
    ],
    9: [[(0.67, 0.3), *_ellipse(0.45, 0.3, 0.22, 0.22, start=0.0, turn=-1.0), (0.62, 0.95)]],
}


def draw_strokes(
    digit: int,
    *,
    size: tuple[int, int] = (280, 280),
    width: int = 18,
    box: tuple[float, float, float, float] = (0.15, 0.1, 0.7, 0.8),
    ink: int | tuple[int, ...] = 0,
    paper: int | tuple[int, ...] = 255,
    mode: str = "L",
) -> Image.Image:
    """A pen drawing of `digit` (round caps and joints) inside `box` = (x, y, w, h) fractions."""
    image = Image.new(mode, size, paper)
    draw = ImageDraw.Draw(image)
    x0, y0, w, h = box
    for stroke in STROKES[digit]:
        points = [((x0 + x * w) * size[0], (y0 + y * h) * size[1]) for x, y in stroke]
        draw.line(points, fill=ink, width=width, joint="curve")
        r = width / 2
        for px, py in (points[0], points[-1]):
            draw.ellipse([px - r, py - r, px + r, py + r], fill=ink)
    return image


def render_glyph(
    digit: int,
    *,
    font: str = "DejaVuSans.ttf",
    size: tuple[int, int] = (200, 200),
    glyph: int = 140,
    stroke: int = 0,
    shift: tuple[int, int] = (0, 0),
    angle: float = 0.0,
) -> Image.Image:
    """White-on-black coverage mask ('L') of a font's digit, placed on a canvas of `size`."""
    big = Image.new("L", (glyph * 2, glyph * 2), 0)
    face = ImageFont.truetype(str(FONTS / font), glyph)
    ImageDraw.Draw(big).text(
        (glyph, glyph), str(digit), font=face, fill=255, anchor="mm", stroke_width=stroke,
        stroke_fill=255,
    )  # fmt: skip
    if angle:
        big = big.rotate(angle, Image.Resampling.BICUBIC)
    bbox = big.getbbox()
    assert bbox is not None
    mark = big.crop(bbox)
    canvas = Image.new("L", size, 0)
    canvas.paste(
        mark,
        ((size[0] - mark.width) // 2 + shift[0], (size[1] - mark.height) // 2 + shift[1]),
    )
    return canvas


def colour(mask: Image.Image, ink: tuple[int, ...], paper: tuple[int, ...]) -> Image.Image:
    return Image.composite(
        Image.new("RGB", mask.size, ink), Image.new("RGB", mask.size, paper), mask
    )


def transparent(mask: Image.Image, ink: tuple[int, int, int]) -> Image.Image:
    """Ink of one colour on a fully transparent canvas, as drawing apps export (straight alpha)."""
    image = Image.new("RGBA", mask.size, (*ink, 0))
    image.putalpha(mask)
    return image


BLACK, WHITE = (0, 0, 0), (255, 255, 255)

#: (name, file suffix, image maker). Each is used for two digits, so 20 test images in all.
STYLES: list[tuple[str, str, Callable[[int], Image.Image]]] = [
    (
        "font, off-centre on a wide canvas, RGB",
        "png",
        lambda d: colour(render_glyph(d, size=(640, 480), shift=(170, -90)), BLACK, WHITE),
    ),
    ("pen 2 px on 500x500 (thin), L", "bmp", lambda d: draw_strokes(d, size=(500, 500), width=2)),
    (
        "serif font, light on dark, JPEG",
        "jpg",
        lambda d: colour(render_glyph(d, font="DejaVuSerif.ttf"), WHITE, BLACK),
    ),
    (
        "marker 45 px (thick), black on transparent RGBA",
        "png",
        lambda d: transparent(draw_strokes(d, width=45, ink=255, paper=0), BLACK),
    ),
    (
        "bold font rotated -10 deg, tiny 48x48, L",
        "png",
        lambda d: render_glyph(d, font="DejaVuSans-Bold.ttf", size=(48, 48), glyph=30, angle=-10),
    ),
    (
        "pen, blue ink on yellow paper, JPEG",
        "jpg",
        lambda d: draw_strokes(d, ink=(30, 60, 170), paper=(250, 240, 200), mode="RGB"),
    ),
    (
        "oblique font with a thickening outline, white on transparent RGBA",
        "png",
        lambda d: transparent(render_glyph(d, font="DejaVuSans-Oblique.ttf", stroke=4), WHITE),
    ),
    (
        "pen, white on black, off-centre in 900x300",
        "png",
        lambda d: draw_strokes(d, size=(900, 300), box=(0.05, 0.1, 0.2, 0.8), ink=255, paper=0),
    ),
    (
        "Computer Modern (hairline serifs), 1000x800, L, dark on light",
        "png",
        lambda d: Image.eval(
            render_glyph(d, font="cmr10.ttf", size=(1000, 800), glyph=600), lambda v: 255 - v
        ),
    ),
    (
        "pen, rotated +12 deg, palette GIF",
        "gif",
        lambda d: draw_strokes(d, width=14).rotate(12, fillcolor=255).convert("P"),
    ),
]


def digit_cases() -> list[tuple[int, int]]:
    """(digit, style index): every digit twice, every style twice."""
    return [(d, d) for d in range(10)] + [(d, (d + 3) % 10) for d in range(10)]


def save(image: Image.Image, path: Path) -> Path:
    if path.suffix == ".jpg":
        image = image.convert("RGB")
        image.save(path, quality=80)
    else:
        image.save(path)
    return path


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height, with almost no pixel data (a few bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------------------------------------
# predict


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory) -> tuple[Path, dict[str, tuple[int, str]]]:
    """20 generated digit files; returns the directory and {file name: (digit, style)}."""
    directory = tmp_path_factory.mktemp("digits")
    truth = {}
    for index, (digit, style) in enumerate(digit_cases()):
        name, suffix, make = STYLES[style]
        path = save(make(digit), directory / f"{index:02d}-digit{digit}.{suffix}")
        truth[path.name] = (digit, name)
    return directory, truth


def test_predict_reads_generated_digits(capsys, digits_dir):
    directory, truth = digits_dir
    code, out, err = run_cli(capsys, "predict", str(directory), "--json")
    assert code == 0, err
    results = json.loads(out)["results"]
    assert len(results) == len(truth) == 20
    wrong = [
        f"{Path(r['file']).name} ({truth[Path(r['file']).name][1]}) -> {r.get('digit', r)}"
        for r in results
        if r.get("digit") != truth[Path(r["file"]).name][0]
    ]
    hits = len(truth) - len(wrong)
    print(f"predict hit rate on generated digits: {hits}/{len(truth)}")
    # the bar is 9 of 10; all 20 are right with the shipped model when this was written
    assert hits >= 18, f"{hits}/20 right; wrong: {wrong}"
    for result in results:
        assert len(result["top3"]) == 3 and abs(sum(result["probs"]) - 1) < 1e-4
        assert result["top3"][0]["digit"] == result["digit"]


def test_predict_prints_digit_probability_and_top3(capsys, tmp_path):
    path = save(draw_strokes(7), tmp_path / "seven.png")
    code, out, err = run_cli(capsys, "predict", str(path))
    assert code == 0, err
    model_line, line = out.strip().splitlines()
    assert model_line.startswith("model: pretrained 'default' (tiny, 15,882 params")
    assert re.match(rf"{re.escape(str(path))}\s+7\s+\(\s*\d+\.\d%\)\s+top-3: 7 ", line), line


def test_preprocess_matches_mnist_conventions():
    pixels = preprocess_image(png_bytes(draw_strokes(3, size=(600, 400), box=(0.6, 0.1, 0.3, 0.5))))
    assert pixels.shape == (28, 28) and pixels.dtype == np.uint8
    assert pixels.max() == 255
    rows = np.flatnonzero(pixels.max(axis=1))
    cols = np.flatnonzero(pixels.max(axis=0))
    # the bounding box's longest side is 20 px, as in MNIST (resampling may add a faint pixel)
    assert 20 <= max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 22
    weights = pixels.astype(np.float64)
    com = [float((weights.sum(axis=1 - a) * np.arange(28)).sum() / weights.sum()) for a in (0, 1)]
    assert all(abs(c - 13.5) <= 1.0 for c in com), com


def test_polarity_and_colour_do_not_change_what_the_model_sees():
    mask = draw_strokes(5, ink=255, paper=0)
    reference = preprocess(mask).astype(int)
    for variant in (
        Image.eval(mask, lambda v: 255 - v),  # dark on light
        colour(mask, (200, 30, 30), (230, 230, 230)),  # red on light grey
        transparent(mask, WHITE),  # white on transparent
        transparent(mask, BLACK),
    ):
        assert np.abs(preprocess(variant).astype(int) - reference).max() <= 8


def test_an_opaque_rgba_image_is_seen_exactly_as_its_rgb_version():
    # the page's canvas is opaque RGBA: preprocessing skips compositing it on white paper,
    # which must not change a single pixel
    rng = np.random.default_rng(0)
    for digit in range(10):
        ink = tuple(int(v) for v in rng.integers(0, 100, 3)) + (255,)
        paper = tuple(int(v) for v in rng.integers(160, 256, 3)) + (255,)
        if digit % 2:  # light on dark
            ink, paper = paper, ink
        rgba = draw_strokes(digit, mode="RGBA", ink=ink, paper=paper, size=(280, 240))
        expected = preprocess(rgba.convert("RGB"))
        assert np.array_equal(preprocess_image(png_bytes(rgba)), expected)


def test_bad_files_are_skipped_with_one_line_each(capsys, tmp_path):
    good = save(draw_strokes(4), tmp_path / "good.png")
    (tmp_path / "notes.png").write_text("not an image\n")
    Image.new("L", (300, 200), 255).save(tmp_path / "blank.png")
    (tmp_path / "huge.png").write_bytes(png_header_only(20000, 20000))
    (tmp_path / "big.png").write_bytes(png_header_only(8000, 6000))  # under Pillow's own guard
    bad = ["notes.png", "blank.png", "huge.png", "big.png"]
    truncated = png_bytes(draw_strokes(4))
    (tmp_path / "cut.png").write_bytes(truncated[: len(truncated) // 2])
    bad.append("cut.png")
    argv = ["predict", *(str(tmp_path / n) for n in bad), str(tmp_path / "missing.png")]

    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert lines[-1] == "mnistlab predict: error: no image could be predicted"
    assert len(lines) == len(bad) + 2 and "Traceback" not in err
    expected = {
        "notes.png": "not an image",
        "blank.png": "empty image",
        "huge.png": "400,000,000 pixels",
        "big.png": "8000x6000 image is too large",
        "cut.png": "cannot decode",
        "missing.png": "no such file",
    }
    for name, fragment in expected.items():
        assert any(name in line and fragment in line for line in lines), (name, err)

    code, out, err = run_cli(capsys, *argv, str(good))
    assert code == 0 and re.search(r"good\.png\s+4\s", out), out + err


def test_predict_expands_globs_and_reports_empty_matches(capsys, tmp_path):
    for digit in (1, 7):
        save(draw_strokes(digit), tmp_path / f"d{digit}.png")
    code, out, err = run_cli(capsys, "predict", str(tmp_path / "d*.png"), str(tmp_path / "x*.png"))
    assert code == 0
    assert re.search(r"d1\.png\s+1\s", out) and re.search(r"d7\.png\s+7\s", out)
    assert "x*.png: no file matches" in err


def test_huge_image_is_refused_before_decoding():
    with pytest.raises(ImageError, match="20000x20000|400,000,000"):
        preprocess_image(png_header_only(20000, 20000))
    with pytest.raises(ImageError, match="the limit is 1,000"):
        preprocess_image(png_bytes(draw_strokes(1)), max_pixels=1000)


# ---------------------------------------------------------------------------------------------
# checkpoints


@pytest.fixture(scope="module")
def default_payload() -> dict:
    path = REPO / "src" / "mnistlab" / "pretrained" / "default.pt"
    return torch.load(path, map_location="cpu", weights_only=True)


def test_pretrained_registry():
    assert pretrained.available() == [
        "default",
        "r1k",
        "r20k",
        "r2k",
        "r4k",
        "r5k",
        "r8k",
        "speedrun",
    ]
    record = pretrained.info("default")
    # the figures docs/inference.md states (lab/default-train/default-train.txt)
    assert (round(record["test_acc"], 2), round(record["val_acc"], 2)) == (99.43, 99.28)
    assert record["selected_on"] == "val" and record["params"] == 15_882
    model, config = pretrained.load("default")
    assert config.model == "tiny" and not model.training
    with pytest.raises(
        ConfigError, match="unknown pretrained model 'nope'; valid choices: default, r1k, r20k"
    ):
        pretrained.load("nope")


def test_pretrained_refuses_a_damaged_file(monkeypatch):
    record = {**pretrained.info("default"), "sha256": "0" * 64}
    monkeypatch.setattr(pretrained, "info", lambda name: record)
    with pytest.raises(ConfigError, match="damaged"):
        pretrained.load("default")


def test_checkpoint_from_a_training_run_works(capsys, tmp_path):
    shutil.copy(REPO / "src" / "mnistlab" / "pretrained" / "default.pt", tmp_path / "best.pt")
    image = save(draw_strokes(2), tmp_path / "two.png")
    code, out, err = run_cli(
        capsys, "predict", "--checkpoint", str(tmp_path / "best.pt"), str(image)
    )
    assert code == 0, err
    assert "(tiny, 15,882 params, val 99.28%)" in out and re.search(r"two\.png\s+2\s", out)


def test_checkpoint_of_another_model_is_built_from_its_config(tmp_path):
    from mnistlab.config import TrainConfig
    from mnistlab.models import create_model
    from mnistlab.run.checkpoint import checkpoint_payload, load_checkpoint

    torch.save(
        checkpoint_payload(create_model("compact"), TrainConfig(model="compact")),
        tmp_path / "compact.pt",
    )
    loaded = load_checkpoint(tmp_path / "compact.pt")
    assert loaded.config.model == "compact" and type(loaded.model).__name__ == "CompactMNISTNet"


def test_bad_checkpoints_give_one_line_and_exit_2(capsys, tmp_path, default_payload):
    from mnistlab.models import create_model

    image = save(draw_strokes(3), tmp_path / "three.png")
    marker = tmp_path / "PWNED"

    class Exploit:
        # what a malicious checkpoint does: unpickling it would run this command
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({**default_payload, "state_dict": Exploit()}, tmp_path / "evil.pt")
    torch.save(
        {**default_payload, "state_dict": create_model("compact").state_dict()},
        tmp_path / "other-arch.pt",
    )
    data = (REPO / "src" / "mnistlab" / "pretrained" / "default.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save(default_payload["state_dict"], tmp_path / "bare.pt")
    torch.save({**default_payload, "format": "something-else"}, tmp_path / "format.pt")
    expected = {
        "evil.pt": "refused: it contains objects other than tensors",
        "other-arch.pt": "weights are not those of model 'tiny'",
        "truncated.pt": "corrupted or not a PyTorch checkpoint",
        "empty.pt": "corrupted or not a PyTorch checkpoint",
        "bare.pt": "a bare state_dict",
        "format.pt": "not an mnistlab checkpoint",
        "missing.pt": "no such file",
    }
    for name, fragment in expected.items():
        code, out, err = run_cli(
            capsys, "predict", "--checkpoint", str(tmp_path / name), str(image)
        )
        assert code == 2 and out == "", (name, out)
        assert err.count("\n") == 1 and fragment in err and name in err, (name, err)
    assert not marker.exists(), "the malicious checkpoint's code ran"


# ---------------------------------------------------------------------------------------------
# ONNX export


@pytest.mark.long
def test_export_onnx_matches_pytorch(capsys, tmp_path):
    for module in ("onnx", "onnxruntime", "onnxscript"):
        pytest.importorskip(
            module,
            reason=f"{module} not importable (pip install 'mnistlab[onnx]')",
            exc_type=ImportError,
        )
    import onnx
    import onnxruntime as ort

    out_file = tmp_path / "default.onnx"
    code, out, err = run_cli(
        capsys, "export", "--pretrained", "default", "--onnx", str(out_file), "--repeats", "5"
    )
    print(out)
    assert code == 0, out + err
    diff = float(re.search(r"max \|logit diff\| (\S+)", out).group(1))
    assert diff <= 1e-4
    assert "same prediction 1000/1000" in out and "parity check passed" in out
    assert re.search(r"batch    1: PyTorch .* ms +ONNX Runtime .* ms", out)
    assert re.search(r"batch 1024: PyTorch .* ms +ONNX Runtime .* ms", out)

    proto = onnx.load(out_file)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["mnistlab.config"])["model"] == "tiny"
    assert meta["mnistlab.output_kind"] == "logits"
    session = ort.InferenceSession(str(out_file), providers=["CPUExecutionProvider"])
    for batch in (1, 3):  # the batch axis is dynamic
        logits = session.run(None, {"input": np.zeros((batch, 1, 28, 28), np.float32)})[0]
        assert logits.shape == (batch, 10)


def test_export_without_the_extra_names_it(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    code, _, err = run_cli(
        capsys, "export", "--pretrained", "default", "--onnx", str(tmp_path / "m")
    )
    assert code == 2 and "pip install 'mnistlab[onnx]'" in err and err.count("\n") == 1


# ---------------------------------------------------------------------------------------------
# serve


@pytest.fixture(scope="module")
def server_address() -> Iterator[tuple[str, int]]:
    from mnistlab.inference.server import make_server

    model, _ = pretrained.load("default")
    server = make_server(model, port=0, label="pretrained 'default' (test)")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[:2]
    server.shutdown()
    server.server_close()


def request(
    address: tuple[str, int],
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(*address, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_page_is_self_contained(server_address):
    status, body = request(server_address, "GET", "/")
    html = body.decode()
    assert status == 200 and 'id="pad"' in html and 'id="clear"' in html and 'id="seen"' in html
    assert "pretrained &#x27;default&#x27; (test)" in html  # the label, HTML-escaped
    # offline: no script, style, image or font from anywhere else
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html


def test_server_predicts_drawings(server_address):
    png = png_bytes(draw_strokes(7))
    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    for body, content_type in (
        (png, "image/png"),
        (json.dumps({"image": data_url}).encode(), "application/json"),
        (data_url.encode(), "text/plain"),
    ):
        status, answer = request(
            server_address, "POST", "/predict", body, {"Content-Type": content_type}
        )
        result = json.loads(answer)
        assert status == 200, result
        assert result["digit"] == 7 and len(result["probs"]) == 10
        assert len(result["image28"]) == 784 and max(result["image28"]) == 255


def test_server_rejects_bad_requests_and_keeps_running(server_address):
    from mnistlab.inference.server import MAX_BODY

    blank = png_bytes(Image.new("L", (280, 280), 255))
    cases = [
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 50, {"Content-Type": "image/png"}, 400),
        (b"hello", {"Content-Type": "text/plain"}, 400),
        (b"{not json", {"Content-Type": "application/json"}, 400),
        (b'{"image": 5}', {"Content-Type": "application/json"}, 400),
        (b"data:image/png;base64,@@@@", {}, 400),
        (blank, {"Content-Type": "image/png"}, 400),
        (png_header_only(20000, 20000), {"Content-Type": "image/png"}, 400),
        (b"", {"Content-Type": "image/png"}, 400),
        (b"x" * (MAX_BODY + 1), {"Content-Type": "image/png"}, 413),
    ]
    for body, headers, expected in cases:
        status, answer = request(server_address, "POST", "/predict", body, headers)
        assert status == expected, (body[:20], status, answer)
        assert "error" in json.loads(answer)
    status, _ = request(server_address, "POST", "/elsewhere", b"x")
    assert status == 404

    # a client that claims a huge body and sends none gets its 413 at once
    connection = http.client.HTTPConnection(*server_address, timeout=10)
    connection.putrequest("POST", "/predict")
    connection.putheader("Content-Length", str(10**10))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413
    connection.close()

    status, answer = request(server_address, "GET", "/health")
    assert status == 200 and json.loads(answer)["ok"] is True
    status, answer = request(
        server_address,
        "POST",
        "/predict",
        png_bytes(draw_strokes(1)),
        {"Content-Type": "image/png"},
    )
    assert status == 200 and json.loads(answer)["digit"] == 1


def _expected_answer(model: torch.nn.Module, body: bytes) -> dict:
    """What the server must answer for `body`: `predict` on `preprocess_image`, as JSON."""
    from mnistlab.inference.predict import predict
    from mnistlab.inference.server import MAX_PIXELS

    pixels = preprocess_image(body, label="drawing", max_pixels=MAX_PIXELS)
    answer = {**predict(model, pixels)[0].as_dict(), "image28": pixels.reshape(-1).tolist()}
    return json.loads(json.dumps(answer))


def _serve(model: torch.nn.Module, **options) -> tuple[object, tuple[str, int]]:
    from mnistlab.inference.server import make_server

    server = make_server(model, port=0, **options)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[:2]


def _stop(server) -> None:
    server.shutdown()
    server.server_close()


def _post_png(address: tuple[str, int], body: bytes) -> tuple[int, dict]:
    status, answer = request(address, "POST", "/predict", body, {"Content-Type": "image/png"})
    return status, json.loads(answer)


def test_server_answers_are_predicts_with_and_without_worker_processes(server_address):
    model, _ = pretrained.load("default")
    bodies = [png_bytes(draw_strokes(digit)) for digit in range(10)]
    bodies += [path.read_bytes() for path in sorted((REPO / "docs" / "digits").iterdir())]
    in_process, address = _serve(model, workers=0)
    try:
        for body in bodies:
            expected = _expected_answer(model, body)
            for where in (server_address, address):  # worker processes, then none
                status, answer = _post_png(where, body)
                assert status == 200 and answer == expected
    finally:
        _stop(in_process)


def test_concurrent_requests_each_get_their_own_answer(server_address):
    model, _ = pretrained.load("default")
    bodies = [png_bytes(draw_strokes(digit)) for digit in range(10)]
    expected = [_expected_answer(model, body) for body in bodies]
    wrong: list[str] = []

    def client(offset: int) -> None:
        # each client cycles through the ten digits from its own starting point, so that
        # requests in flight at the same moment carry different images
        connection = http.client.HTTPConnection(*server_address, timeout=60)
        try:
            for step in range(20):
                digit = (offset + step) % 10
                connection.request("POST", "/predict", bodies[digit], {"Content-Type": "image/png"})
                response = connection.getresponse()
                answer = json.loads(response.read())
                if response.status != 200 or answer != expected[digit]:
                    wrong.append(f"client {offset} digit {digit}: {response.status}")
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(offset,)) for offset in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong, wrong[:5]


def test_server_replaces_worker_processes_that_die():
    import multiprocessing
    import signal

    model, _ = pretrained.load("default")
    before = set(multiprocessing.active_children())
    server, address = _serve(model, workers=1)
    try:
        workers = set(multiprocessing.active_children()) - before
        assert len(workers) == 1
        for worker in workers:
            os.kill(worker.pid, signal.SIGKILL)
            worker.join(10)
        body = png_bytes(draw_strokes(4))
        # the request that finds the pool broken fails alone; the next gets fresh workers
        statuses = []
        for _ in range(3):
            status, answer = _post_png(address, body)
            statuses.append(status)
            if status == 200:
                break
            assert status == 500 and answer == {"error": "internal error"}
        assert statuses[-1] == 200 and answer["digit"] == 4, statuses
    finally:
        _stop(server)


def test_serve_refuses_a_negative_worker_count(capsys):
    code, _, err = run_cli(capsys, "serve", "--workers", "-1")
    assert code == 2 and "--workers must be 0 or more, got -1" in err


def test_serve_command_starts_on_a_free_port(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "mnistlab.cli", "serve", "--port", "0", "--workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"on http://127\.0\.0\.1:(\d+)/", line)
        assert found, line + (process.stderr.read() if process.poll() is not None else "")
        address = ("127.0.0.1", int(found.group(1)))
        status, answer = request(
            address, "POST", "/predict", png_bytes(draw_strokes(0)), {"Content-Type": "image/png"}
        )
        assert status == 200 and json.loads(answer)["digit"] == 0
    finally:
        process.terminate()
        process.wait(timeout=10)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; its new parent may not have reaped it yet


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
def test_worker_processes_exit_when_the_server_is_killed():
    process = subprocess.Popen(
        [sys.executable, "-m", "mnistlab.cli", "serve", "--port", "0", "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        assert "serving" in process.stdout.readline()
        workers = [
            int(pid)
            for task in Path(f"/proc/{process.pid}/task").iterdir()
            for pid in (task / "children").read_text().split()
        ]
        assert len(workers) == 2
    finally:
        process.kill()  # no chance to stop its workers
        process.wait(timeout=10)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers)


# ---------------------------------------------------------------------------------------------
# the page in a real browser


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Python Playwright (no browser download: CI installs it)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("python package playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, address: tuple[str, int], **options):
    # bypass_csp: the page forbids eval (good for users), which Playwright's wait_for_function
    # needs; the page itself runs unchanged
    context = browser.new_context(
        viewport={"width": 820, "height": 520}, bypass_csp=True, **options
    )
    page = context.new_page()
    page.goto("http://{}:{}/".format(*address))
    return context, page


def pad_points(page, stroke: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """A unit-box stroke in page coordinates, inside the middle of the drawing pad."""
    pad = page.locator("#pad").bounding_box()
    assert pad is not None
    return [
        (pad["x"] + (0.2 + 0.6 * x) * pad["width"], pad["y"] + (0.1 + 0.8 * y) * pad["height"])
        for x, y in stroke
    ]


def shown_after_last_stroke(page) -> str:
    # the answer for the last finished stroke, not a live update from the middle of it
    page.wait_for_function(
        "document.body.dataset.answered === document.body.dataset.strokes", timeout=15_000
    )
    shown = page.text_content("#digit") or ""
    return shown + (f" ({page.text_content('#status')})" if page.text_content("#status") else "")


def test_drawing_digits_with_the_mouse_in_chromium(browser, server_address, tmp_path):
    artifacts = Path(os.environ.get("MNISTLAB_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    context, page = open_page(browser, server_address)
    try:
        for digit in (1, 0, 7):
            page.click("#clear")
            for stroke in STROKES[digit]:
                points = pad_points(page, stroke)
                page.mouse.move(*points[0])
                page.mouse.down()
                for point in points[1:]:
                    page.mouse.move(*point, steps=3)
                page.mouse.up()
            shown = shown_after_last_stroke(page)
            page.wait_for_timeout(300)  # let the bars finish their 120 ms transition
            page.screenshot(path=str(artifacts / f"serve-{digit}.png"))
            assert shown == str(digit), f"drew {digit}, the page shows {shown!r}"
            assert page.locator(".bar.top").get_attribute("data-digit") == str(digit)
            seen = page.evaluate(
                "Array.from(document.getElementById('seen').getContext('2d')"
                ".getImageData(0, 0, 28, 28).data).filter((v, i) => i % 4 === 0)"
            )
            assert len(seen) == 784 and max(seen) == 255 and seen[0] == 0  # white on black
        page.click("#clear")
        assert page.text_content("#digit") == "–"
    finally:
        context.close()


def test_drawing_by_touch_in_chromium(browser, server_address):
    context, page = open_page(browser, server_address, has_touch=True)
    try:
        cdp = context.new_cdp_session(page)
        for stroke in STROKES[7]:
            points = pad_points(page, stroke)
            # real touch events (a finger), which the page receives as pointer events
            touch = [{"x": points[0][0], "y": points[0][1]}]
            cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": touch})
            for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
                for step in range(1, 4):
                    x, y = x0 + (x1 - x0) * step / 3, y0 + (y1 - y0) * step / 3
                    cdp.send(
                        "Input.dispatchTouchEvent",
                        {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]},
                    )
            cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        assert shown_after_last_stroke(page) == "7"
    finally:
        context.close()


def test_only_the_cli_and_the_registry_import_inference():
    # inference sits on top of models/data/engine; lower layers must not reach up into it
    allowed = {"cli/inference.py", "pretrained/__init__.py"}
    root = REPO / "src" / "mnistlab"
    for path in root.rglob("*.py"):
        relative = path.relative_to(root).as_posix()
        if relative.startswith("inference/") or relative in allowed:
            continue
        assert "mnistlab.inference" not in path.read_text(), f"{relative} imports inference"


def test_export_names_log_probabilities_in_the_metadata(tmp_path):
    """A model ending in log_softmax exports as such: the metadata does not call it logits."""
    for module in ("onnx", "onnxruntime", "onnxscript"):
        pytest.importorskip(module, reason=f"{module} not importable", exc_type=ImportError)
    import onnx

    from mnistlab.config import TrainConfig
    from mnistlab.inference.export import export_onnx
    from summary_corpus import CORPUS

    out = export_onnx(CORPUS["lenet_dense"][0](), TrainConfig(), tmp_path / "lenet.onnx")
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert meta["mnistlab.output_kind"] == "log-probabilities"
    assert meta["mnistlab.output"].startswith("float32 [N,10] log-probabilities")
