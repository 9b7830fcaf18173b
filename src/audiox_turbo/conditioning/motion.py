"""Motion frame features: a frozen, parameter-free video encoder that can be cached.

Per frame, on a coarse grid: luminance (8 × 8), colour (R, G, B on 4 × 4) and motion, the
mean absolute luminance change from the previous frame (8 × 8, square-rooted to compress its
range; 0 for a clip's first frame). Visual events (a flash, an impact, a step) show up as
motion at the frame where they happen, which is what audio-visual timing needs; the layout
and colours tell scenes apart. No weights, so the features of a training set are computed
once (`data encode --video`) and the conditioner trains on them without frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LUMA_GRID = 8
COLOUR_GRID = 4
MOTION_FEATURE_DIM = 2 * LUMA_GRID**2 + 3 * COLOUR_GRID**2
# ITU-R BT.601 luma weights
LUMA = (0.299, 0.587, 0.114)


def motion_features(frames: torch.Tensor) -> torch.Tensor:
    """Frames (N, Nv, 3, H, W), uint8 in [0, 255] or floats in [0, 1] -> features
    (N, Nv, MOTION_FEATURE_DIM) float32: luminance ‖ colour (both in [-1, 1]) ‖ motion."""
    if frames.ndim != 5 or frames.shape[2] != 3:
        raise ValueError(f"frames must be (N, Nv, 3, H, W), got {tuple(frames.shape)}")
    n, nv = frames.shape[:2]
    rgb = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
    flat = rgb.flatten(0, 1)
    weights = torch.tensor(LUMA, device=flat.device)[:, None, None]
    luma = (flat * weights).sum(dim=1, keepdim=True)
    luma_grid = F.adaptive_avg_pool2d(luma, LUMA_GRID).view(n, nv, -1)
    colour = F.adaptive_avg_pool2d(flat, COLOUR_GRID).view(n, nv, -1)
    motion = torch.zeros_like(luma_grid)
    if nv > 1:
        change = luma.view(n, nv, *luma.shape[-2:]).diff(dim=1).abs()
        change = F.adaptive_avg_pool2d(change.flatten(0, 1)[:, None], LUMA_GRID)
        motion[:, 1:] = change.view(n, nv - 1, -1).sqrt()
    return torch.cat([2 * luma_grid - 1, 2 * colour - 1, motion], dim=-1)
