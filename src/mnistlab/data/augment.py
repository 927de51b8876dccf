"""Batched, on-device data augmentation: random affine transform and random erasing.

Everything is done for the whole batch at once (one ``affine_grid`` + ``grid_sample`` call, mask
arithmetic for erasing) so augmentation costs a few kernel launches per batch, whatever the batch
size, and runs wherever the batch lives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mnistlab.data.dataset import MEAN, STD
from mnistlab.errors import ConfigError

__all__ = ["AugmentConfig", "BACKGROUND", "augment_batch", "affine_theta", "apply_affine"]

#: A black pixel (0) in normalized space: what appears outside the image and in erased boxes.
BACKGROUND = (0.0 - MEAN) / STD

# torchvision RandomErasing's default aspect-ratio range; sampled log-uniformly like there.
_ERASE_RATIO = (0.3, 3.3)


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths; all zero (the default) means no augmentation.

    ``rotate_deg``: angle drawn uniformly in [-rotate_deg, rotate_deg].
    ``translate``: shift drawn uniformly in [-translate, translate] times the image size, per
    axis (like torchvision's RandomAffine).
    ``scale``: zoom factor drawn uniformly in [1 - scale, 1 + scale].
    ``erase_p``: probability of erasing one random rectangle per image (random erasing) whose
    area is a fraction in ``erase_scale`` of the image.
    """

    rotate_deg: float = 0.0
    translate: float = 0.0
    scale: float = 0.0
    erase_p: float = 0.0
    erase_scale: tuple[float, float] = (0.02, 0.15)

    def __post_init__(self) -> None:
        # Checked here so a bad suite/flag value fails at config time, not mid-training.
        def check(name: str, value: float, lo: float, hi: float, hi_open: bool) -> None:
            ok = lo <= value < hi if hi_open else lo <= value <= hi
            if not ok or math.isnan(value):
                rng = f"[{lo:g}, {hi:g})" if hi_open else f"[{lo:g}, {hi:g}]"
                raise ConfigError(f"augment {name} must be in {rng}, got {value!r}")

        check("rotate_deg", self.rotate_deg, 0.0, 180.0, False)
        check("translate", self.translate, 0.0, 1.0, True)
        check("scale", self.scale, 0.0, 1.0, True)  # 1 - scale must stay > 0
        check("erase_p", self.erase_p, 0.0, 1.0, False)
        lo, hi = self.erase_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ConfigError(
                f"augment erase_scale must satisfy 0 < low <= high <= 1, got {self.erase_scale!r}"
            )

    @property
    def geometric(self) -> bool:
        """True if any of rotation, translation or scaling is on."""
        return self.rotate_deg > 0 or self.translate > 0 or self.scale > 0

    @property
    def enabled(self) -> bool:
        """True if the config changes images at all."""
        return self.geometric or self.erase_p > 0


def affine_theta(
    angle_rad: torch.Tensor, scale: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor
) -> torch.Tensor:
    """The [B, 2, 3] ``affine_grid`` matrices that rotate by ``angle_rad`` (counter-clockwise
    as displayed), zoom by ``scale`` and then shift by (``tx``, ``ty``) fractions of the image
    width/height (positive = right/down).

    ``affine_grid`` maps *output* pixel coordinates to *input* ones, so this is the inverse of
    the forward transform ``p -> s R p + t``: ``q -> R^-1 (q - t) / s``. Coordinates are
    normalized to [-1, 1], so a shift by a fraction f of the image is 2f. (For square images, as
    MNIST, the rotation is a true rotation; on non-square ones it would shear slightly.)
    """
    # y points down in image coordinates, so a counter-clockwise rotation on screen is a
    # clockwise one in (x, y): rotate by -angle; the inverse then rotates by +angle.
    cos, sin = torch.cos(angle_rad), torch.sin(angle_rad)
    inv_s = 1.0 / scale
    a, b = cos * inv_s, -sin * inv_s
    c, d = sin * inv_s, cos * inv_s
    txn, tyn = 2.0 * tx, 2.0 * ty
    row0 = torch.stack([a, b, -(a * txn + b * tyn)], dim=-1)
    row1 = torch.stack([c, d, -(c * txn + d * tyn)], dim=-1)
    return torch.stack([row0, row1], dim=-2)


def _to(values: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Random values drawn on the CPU generator, copied to the batch's device. To a GPU the copy
    goes through pinned memory without blocking: a plain copy from pageable memory made the host
    wait for the GPU once per copy (1 to 5 times per step, seen on an H100)."""
    if values.device == device:
        return values
    if values.device.type == "cpu" and device.type == "cuda":
        return values.pin_memory().to(device, non_blocking=True)
    return values.to(device)


def apply_affine(x: torch.Tensor, theta: torch.Tensor, fill: float = BACKGROUND) -> torch.Tensor:
    """Warp every image of ``x`` [B, C, H, W] with its ``theta`` [B, 2, 3]; outside = ``fill``."""
    grid = F.affine_grid(_to(theta, x.device).to(x.dtype), list(x.shape), align_corners=False)
    # grid_sample pads with zeros; shifting by the fill value makes the padding equal `fill`
    # (a black pixel after normalization) instead of a mid-grey 0.
    out = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + fill


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator) -> torch.Tensor:
    # Drawn on the generator's own device (a CUDA generator cannot fill a CPU tensor).
    return torch.rand(n, generator=generator, device=generator.device) * (hi - lo) + lo


def _erase(
    x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator, fill: float
) -> torch.Tensor:
    b, _, h, w = x.shape
    apply = torch.rand(b, generator=generator, device=generator.device) < cfg.erase_p
    area = _uniform(b, cfg.erase_scale[0], cfg.erase_scale[1], generator) * (h * w)
    log_r = _uniform(b, math.log(_ERASE_RATIO[0]), math.log(_ERASE_RATIO[1]), generator)
    ratio = torch.exp(log_r)
    # torchvision retries boxes that do not fit; clamping to the image is the batched analogue.
    eh = torch.sqrt(area * ratio).round().clamp(1, h)
    ew = torch.sqrt(area / ratio).round().clamp(1, w)
    top = (torch.rand(b, generator=generator, device=generator.device) * (h - eh + 1)).floor()
    left = (torch.rand(b, generator=generator, device=generator.device) * (w - ew + 1)).floor()
    # one copy for the five (exact: every value is a small integer or 0/1 in float32)
    box = _to(torch.stack([apply.to(eh.dtype), eh, ew, top, left]), x.device)
    apply, (eh, ew, top, left) = box[0] > 0.5, box[1:]
    rows = torch.arange(h, device=x.device, dtype=eh.dtype)
    cols = torch.arange(w, device=x.device, dtype=ew.dtype)
    in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])  # [B, H]
    in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])  # [B, W]
    mask = in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None]  # [B, H, W]
    return x.masked_fill(mask[:, None], fill)


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Randomly augment a normalized float batch ``x`` [B, C, H, W] (any device).

    Per-sample rotation/translation/scale as one batched affine warp (bilinear, background
    filled with a black pixel's normalized value), then random erasing with the same fill.
    Random numbers come only from ``generator`` (on its own device), so a seeded generator gives
    the same result every time. Returns ``x`` itself when ``cfg`` is not enabled.
    """
    if not cfg.enabled:
        return x
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(
            f"augment_batch expects a float [B, C, H, W] batch, got {x.dtype} {list(x.shape)}"
        )
    b = x.shape[0]
    if b == 0:
        return x
    if cfg.geometric:
        angle = _uniform(b, -cfg.rotate_deg, cfg.rotate_deg, generator) * (math.pi / 180.0)
        scale = _uniform(b, 1.0 - cfg.scale, 1.0 + cfg.scale, generator)
        tx = _uniform(b, -cfg.translate, cfg.translate, generator)
        ty = _uniform(b, -cfg.translate, cfg.translate, generator)
        x = apply_affine(x, affine_theta(angle, scale, tx, ty), BACKGROUND)
    if cfg.erase_p > 0:
        x = _erase(x, cfg, generator, BACKGROUND)
    return x
