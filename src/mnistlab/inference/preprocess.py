"""Turn any photo, scan or drawing of one digit into a 28x28 MNIST-style image.

MNIST digits are white on black, their bounding box scaled (antialiased) so its longest side is
20 px, then placed in a 28x28 frame so that their centre of mass is at the centre. A model
trained on MNIST only works on inputs prepared the same way, so this module does exactly that:

1. decode (PNG, JPEG, BMP, GIF, WebP), refusing images over a pixel limit *before* decoding;
2. grayscale; transparent pixels are composited on white;
3. find the background from the image border and turn the digit white on black, whichever
   way round it was drawn;
4. crop to the ink's bounding box, bring the stroke width near MNIST's (a hairline or a marker
   stroke would otherwise look nothing like the training data), scale to 20 px;
5. paste into 28x28 by centre of mass.

Every failure is an :class:`ImageError` with a one-line message.
"""

from __future__ import annotations

import io
import math
import os
import re
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageOps, UnidentifiedImageError

from mnistlab.errors import MnistlabError

__all__ = [
    "BOX",
    "FORMATS",
    "MAX_PIXELS",
    "SIZE",
    "ImageError",
    "open_image",
    "preprocess",
    "preprocess_image",
]

SIZE = 28  # MNIST frame
BOX = 20  # longest side of the digit's bounding box inside the frame
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
#: Images above this many pixels are refused before their pixels are decoded.
MAX_PIXELS = 40_000_000
#: Larger images are first reduced to this longest side: 50x the 20 px target is plenty.
WORK_SIDE = 1024
#: Smallest peak difference from the background (0..1) that counts as a drawn digit.
MIN_CONTRAST = 0.15
#: Ink below this fraction of the peak is noise (JPEG ringing, paper texture) and is dropped.
NOISE_FLOOR = 0.12
#: Pixels at least this inky (0..1) define the bounding box.
BOX_THRESHOLD = 0.3
#: Stroke normalisation works at 4x the final scale so dilation/erosion steps are fine-grained.
MID = 4 * BOX
#: Median MNIST stroke width (2*area/perimeter of pixels > 0.5) is 2.0 px at the 20 px scale;
#: acceptable inputs are kept as they are, outliers are brought back inside this range.
STROKE_MIN, STROKE_TARGET, STROKE_MAX = 1.3 * 4, 2.0 * 4, 3.2 * 4


class ImageError(MnistlabError):
    """An input image that cannot be used: unreadable, too large or empty."""


ImageSource = str | os.PathLike[str] | bytes | BinaryIO


def open_image(
    source: ImageSource, *, label: str | None = None, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """Decode one image (first frame), refusing anything over `max_pixels` before decoding."""
    name = label or (str(source) if isinstance(source, str | os.PathLike) else "image")
    try:
        if isinstance(source, str | os.PathLike):
            with open(source, "rb") as handle:
                return _decode(handle, name, max_pixels)
        if isinstance(source, bytes):
            return _decode(io.BytesIO(source), name, max_pixels)
        return _decode(source, name, max_pixels)
    except IsADirectoryError:
        raise ImageError(f"{name}: is a directory") from None
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except PermissionError:
        raise ImageError(f"{name}: permission denied") from None


def _decode(handle: BinaryIO, name: str, max_pixels: int) -> Image.Image:
    try:
        # Image.open reads only the header; the size check below happens before any pixel data
        # is decoded, so a 20000x20000 PNG of a few KB costs nothing.
        image = Image.open(handle, formats=FORMATS)
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image ({', '.join(FORMATS)} expected)") from None
    except Image.DecompressionBombError as error:
        # Pillow's own guard fires in open() already for > 2x its limit (~179 megapixels)
        raise ImageError(f"{name}: {_bomb_message(error, max_pixels)}") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageError(f"{name}: unreadable image ({_one_line(error)})") from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageError(
                f"{name}: {width}x{height} image is too large ({width * height:,} pixels; "
                f"the limit is {max_pixels:,})"
            )
        if width < 1 or height < 1:
            raise ImageError(f"{name}: empty image ({width}x{height})")
        try:
            if image.format == "JPEG" and max(width, height) > 2 * WORK_SIDE:
                # JPEG can decode at 1/2, 1/4, 1/8 scale directly: much less memory and time
                image.draft(image.mode, (WORK_SIDE, WORK_SIDE))
            image.load()
            # phone photos store their rotation in EXIF instead of rotating the pixels
            return ImageOps.exif_transpose(image)
        except Image.DecompressionBombError as error:
            raise ImageError(f"{name}: {_bomb_message(error, max_pixels)}") from None
        except (OSError, ValueError, SyntaxError, EOFError) as error:
            raise ImageError(f"{name}: cannot decode image ({_one_line(error)})") from None


def _bomb_message(error: Exception, max_pixels: int) -> str:
    # Pillow says "Image size (400000000 pixels) exceeds limit of ..."
    found = re.search(r"\((\d+) pixels\)", str(error))
    size = f"{int(found.group(1)):,} pixels; " if found else ""
    return f"image is too large ({size}the limit is {max_pixels:,})"


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def to_gray(image: Image.Image) -> np.ndarray:
    """float32 [H, W] in 0..1; transparent pixels count as white paper."""
    if image.mode in ("I", "F") or image.mode.startswith("I;"):
        # 16/32-bit grayscale: stretch to 0..1 (polarity is decided later, so min-max is safe)
        values = np.asarray(image, dtype=np.float32)
        low, high = float(values.min()), float(values.max())
        return (values - low) / (high - low) if high > low else np.zeros_like(values)
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
        luma = np.asarray(rgba.convert("L"), dtype=np.float32) / 255.0
        if alpha.min() == 1.0:
            # opaque everywhere, as the draw-a-digit page's canvas is: compositing on white
            # would change no pixel (and cost a fifth of preprocessing a 280x280 drawing)
            return luma
        opaque = luma[alpha > 0.9]  # edge pixels may be blended toward the canvas colour
        if (
            alpha.min() < 0.5
            and opaque.size
            and np.percentile(opaque, 99) - np.percentile(opaque, 1) < MIN_CONTRAST
        ):
            # One ink colour on a transparent canvas (what drawing apps export): the alpha
            # channel is the drawing. Compositing on white would lose white ink entirely and
            # turn its antialiased edges into grey outlines.
            return alpha
        # otherwise the opaque pixels carry the picture (paper and ink): put it on white paper
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def _reduce(image: Image.Image) -> Image.Image:
    # everything after this point is O(pixels) numpy work; 1024 px is far more than a 20 px
    # target needs, and reducing here keeps a 40-megapixel photo at a few MB of floats
    if max(image.size) <= WORK_SIDE:
        return image
    scale = WORK_SIDE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if image.mode not in ("L", "RGB", "RGBA", "LA", "I", "F") and not image.mode.startswith("I;"):
        image = image.convert("RGBA")
    return image.resize(size, Image.Resampling.BOX)


def ink_map(gray: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Ink in 0..1 (1 = strongest stroke), background 0, whatever the original polarity."""
    border = np.concatenate([gray[0, :], gray[-1, :], gray[:, 0], gray[:, -1]])
    # Most of an image's border is background even when the digit touches it, so its median
    # is the paper (or board) colour; the ink is whatever differs strongly from it, darker
    # or lighter. This also handles grey paper and coloured ink, which a fixed 0.5 would not.
    background = float(np.median(border))
    diff = gray - background
    strong = np.abs(diff) >= MIN_CONTRAST
    if not strong.any():
        raise ImageError(
            f"{name}: empty image (no digit found: nothing differs from the background by "
            f"{MIN_CONTRAST:.0%})"
        )
    dark_ink = float(diff[strong].sum()) < 0
    ink = np.clip(-diff if dark_ink else diff, 0.0, None)
    ink /= ink.max()
    return np.clip((ink - NOISE_FLOOR) / (1.0 - NOISE_FLOOR), 0.0, 1.0)


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in px: 2*area/perimeter of the pixels over half intensity."""
    mask = np.pad(ink > 0.5, 1).astype(np.int8)
    area = int(mask.sum())
    perimeter = int(np.abs(np.diff(mask, axis=0)).sum() + np.abs(np.diff(mask, axis=1)).sum())
    return 2.0 * area / perimeter if perimeter else 0.0


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (xx * xx + yy * yy) <= radius * radius + radius  # +radius: rounder small disks


def _morph(ink: np.ndarray, radius: int, *, grow: bool) -> np.ndarray:
    """Grey dilation (grow) or erosion by a disk; only run on images of ~80x80 px."""
    padded = np.pad(ink, radius)
    windows = sliding_window_view(padded, (2 * radius + 1, 2 * radius + 1))
    selected = windows[..., _disk(radius)]
    return selected.max(axis=-1) if grow else selected.min(axis=-1)


def _resize(ink: np.ndarray, width: int, height: int) -> np.ndarray:
    image = Image.fromarray(ink.astype(np.float32), mode="F")
    # LANCZOS in Pillow widens its kernel when shrinking, i.e. it is antialiased like MNIST's
    # own downscaling; its small overshoot is clipped
    resized = image.resize((width, height), Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def _fit(ink: np.ndarray, side: int) -> np.ndarray:
    height, width = ink.shape
    scale = side / max(height, width)
    return _resize(ink, max(1, round(width * scale)), max(1, round(height * scale)))


def normalize_stroke(ink: np.ndarray) -> np.ndarray:
    """Thicken hairlines and thin out marker strokes toward MNIST's width (at MID scale)."""
    width = stroke_width(ink)
    if width < STROKE_MIN:
        return _morph(ink, max(1, round((STROKE_TARGET - width) / 2)), grow=True)
    if width > STROKE_MAX:
        eroded = _morph(ink, max(1, round((width - STROKE_TARGET) / 2)), grow=False)
        # a blob-like digit can erode to almost nothing; then the thick original is better
        if (eroded > 0.5).sum() >= 0.25 * (ink > 0.5).sum():
            return eroded
    return ink


def center_by_mass(digit: np.ndarray) -> np.ndarray:
    """Paste a digit of at most 28x28 into a 28x28 frame with its centre of mass centred."""
    height, width = digit.shape
    total = float(digit.sum())
    rows, cols = np.arange(height), np.arange(width)
    com_y = float((digit.sum(axis=1) * rows).sum()) / total
    com_x = float((digit.sum(axis=0) * cols).sum()) / total
    centre = (SIZE - 1) / 2
    # clamp so that a lopsided digit (a '7' has its mass near the top) is never cut off
    top = min(max(round(centre - com_y), 0), SIZE - height)
    left = min(max(round(centre - com_x), 0), SIZE - width)
    frame = np.zeros((SIZE, SIZE), dtype=np.float32)
    frame[top : top + height, left : left + width] = digit
    return frame


def preprocess(image: Image.Image, *, name: str = "image") -> np.ndarray:
    """A decoded image -> uint8 [28, 28], white digit on black, MNIST-style."""
    ink = ink_map(to_gray(_reduce(image)), name=name)
    rows = np.flatnonzero((ink >= BOX_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink >= BOX_THRESHOLD).any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = MID / max(crop.shape)
    # a margin (6 px at the MID scale) keeps the resampling kernel and a dilation from
    # clipping strokes that touch the bounding box
    padded = np.pad(crop, math.ceil(6 / scale))
    mid = _resize(
        padded, max(1, round(padded.shape[1] * scale)), max(1, round(padded.shape[0] * scale))
    )
    # a hairline shrunk 6x is a faint grey line: restore full intensity before measuring it
    mid = normalize_stroke(mid / max(float(mid.max()), 1e-6))
    digit = _tight(mid)
    if digit is None:
        raise ImageError(f"{name}: empty image (the digit vanished when scaled to 20 px)")
    small = _fit(digit, BOX)
    peak = float(small.max())
    if peak <= 0:
        raise ImageError(f"{name}: empty image (the digit vanished when scaled to 20 px)")
    # MNIST strokes always peak at full white; a faint or thin input is stretched to match
    small = small / peak
    return np.rint(center_by_mass(small) * 255.0).astype(np.uint8)


def _tight(ink: np.ndarray) -> np.ndarray | None:
    mask = ink > 0.05
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def preprocess_image(
    source: ImageSource, *, label: str | None = None, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """Decode and preprocess one image file, path or PNG/JPEG bytes -> uint8 [28, 28]."""
    name = label or (str(Path(source)) if isinstance(source, str | os.PathLike) else "image")
    image = open_image(source, label=name, max_pixels=max_pixels)
    return preprocess(image, name=name)
