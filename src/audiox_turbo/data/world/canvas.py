"""Drawing on video frames: uint8 RGB arrays of shape (height, width, 3), modified in place."""

from __future__ import annotations

import numpy as np

Color = tuple[int, int, int]


def blank(frames: int, size: int, color: Color) -> np.ndarray:
    """`frames` frames filled with `color`, shape (frames, size, size, 3) uint8."""
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    out[...] = np.asarray(color, dtype=np.uint8)
    return out


def rectangle(
    frame: np.ndarray, top: int, left: int, bottom: int, right: int, color: Color
) -> None:
    """Fill rows [top, bottom) and columns [left, right), clipped to the frame."""
    h, w = frame.shape[:2]
    frame[max(top, 0) : min(bottom, h), max(left, 0) : min(right, w)] = color


def ellipse(frame: np.ndarray, cy: float, cx: float, ry: float, rx: float, color: Color) -> None:
    """Fill the ellipse centred at (cy, cx) with radii (ry, rx) in pixels."""
    if ry <= 0 or rx <= 0:
        return
    h, w = frame.shape[:2]
    top, bottom = max(int(np.floor(cy - ry)), 0), min(int(np.ceil(cy + ry)) + 1, h)
    left, right = max(int(np.floor(cx - rx)), 0), min(int(np.ceil(cx + rx)) + 1, w)
    if top >= bottom or left >= right:
        return
    yy, xx = np.mgrid[top:bottom, left:right]
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    frame[top:bottom, left:right][inside] = color


def disc(frame: np.ndarray, cy: float, cx: float, radius: float, color: Color) -> None:
    """Fill the disc centred at (cy, cx)."""
    ellipse(frame, cy, cx, radius, radius, color)
