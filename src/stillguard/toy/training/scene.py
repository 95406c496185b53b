"""Static photo-like scenes for the toy model's synthetic videos (see :mod:`stillguard.toy.training.data`).

A scene is a base layer (smooth linear gradient, multi-scale value noise mapped through a palette,
or a few low-frequency sinusoids) plus 2-6 static elements (stripe patches, checker patches, soft
Gaussian blobs, hard polygons), film grain (low-octave noise plus Gaussian pixel noise), and a light
Gaussian blur half of the time. Palettes are 3-5 colours around one or two hues with HSV
saturation <= 0.6, so the saturated moving "code" objects drawn later stay recognisable. All these
choices are ours (no paper describes this data); randomness comes from the caller's
``numpy.random.Generator``.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np


def _palette(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` colours (0-255 float RGB) around one or two base hues, saturation <= 0.6."""
    hues = rng.uniform(0, 1, size=2)
    out = []
    for _ in range(n):
        h = (hues[rng.integers(0, 2)] + rng.normal(0, 0.06)) % 1.0
        s = rng.uniform(0.05, 0.6)
        v = rng.uniform(0.2, 0.95)
        out.append(colorsys.hsv_to_rgb(h, s, v))
    return np.asarray(out, np.float32) * 255


def _noise_field(rng: np.random.Generator, h: int, w: int, octaves: int = 4) -> np.ndarray:
    """Multi-scale value noise in [0, 1], shape ``(h, w)``."""
    import cv2

    field = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    cells = int(rng.integers(2, 5))
    for _ in range(octaves):
        grid = rng.uniform(0, 1, size=(cells + 1, cells + 1)).astype(np.float32)
        field += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= float(rng.uniform(0.35, 0.65))
        cells *= 2
    field /= total
    lo, hi = field.min(), field.max()
    return (field - lo) / max(hi - lo, 1e-6)


def _map_palette(t: np.ndarray, pal: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] through a palette by linear interpolation -> ``(h, w, 3)``."""
    pos = t * (len(pal) - 1)
    i = np.clip(pos.astype(int), 0, len(pal) - 2)
    f = (pos - i)[..., None]
    return pal[i] * (1 - f) + pal[i + 1] * f


def _coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return xx / max(h, w), yy / max(h, w)


def _base_layer(rng: np.random.Generator, h: int, w: int, pal: np.ndarray) -> np.ndarray:
    xx, yy = _coords(h, w)
    kind = rng.integers(0, 3)
    if kind == 0:  # smooth linear gradient
        a = rng.uniform(0, 2 * math.pi)
        t = np.cos(a) * xx + np.sin(a) * yy
        t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
        return _map_palette(t, pal[:2])
    if kind == 1:  # multi-scale noise field through the palette
        return _map_palette(_noise_field(rng, h, w), pal)
    img = np.zeros((h, w, 3), np.float32) + pal[0]  # a few low-frequency sinusoids
    for _ in range(3):
        fx, fy = rng.uniform(-4, 4, size=2)
        amp = rng.uniform(8, 25, size=3)
        img += (
            amp * np.sin(2 * math.pi * (fx * xx + fy * yy) + rng.uniform(0, 2 * math.pi))[..., None]
        )
    return img


def _patch_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    import cv2

    m = np.zeros((h, w), np.float32)
    c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
    ax = (int(rng.uniform(6, w / 3)), int(rng.uniform(6, h / 3)))
    if rng.random() < 0.5:
        cv2.ellipse(m, c, ax, float(rng.uniform(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA)
    else:
        box = cv2.boxPoints((c, (2 * ax[0], 2 * ax[1]), float(rng.uniform(0, 180))))
        cv2.fillPoly(m, [np.round(box).astype(np.int32)], 1.0, cv2.LINE_AA)
    return m[..., None]


def _add_element(rng: np.random.Generator, img: np.ndarray, pal: np.ndarray) -> None:
    """Draw one static scene element in place: stripes, checker, soft blob or hard shape."""
    import cv2

    h, w, _ = img.shape
    xx, yy = _coords(h, w)
    c1, c2 = pal[rng.integers(0, len(pal))], pal[rng.integers(0, len(pal))]
    kind = rng.integers(0, 4)
    if kind == 0:  # stripes patch
        a, f = rng.uniform(0, math.pi), rng.uniform(4, 12)
        t = 0.5 + 0.5 * np.sin(2 * math.pi * f * (np.cos(a) * xx + np.sin(a) * yy))
        tex, m = c1 * t[..., None] + c2 * (1 - t[..., None]), _patch_mask(rng, h, w)
    elif kind == 1:  # checker patch
        n = rng.uniform(4, 10)
        t = ((np.floor(xx * n) + np.floor(yy * n)) % 2)[..., None]
        tex, m = c1 * t + c2 * (1 - t), _patch_mask(rng, h, w)
    elif kind == 2:  # soft blob
        cx, cy, s = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.25)
        m = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))[..., None]
        tex = c1
    else:  # hard polygon / ellipse
        m = np.zeros((h, w), np.float32)
        k = int(rng.integers(3, 7))
        ctr, rad = rng.uniform(0, [w, h]), rng.uniform(4, min(h, w) / 4)
        ang = np.sort(rng.uniform(0, 2 * math.pi, size=k))
        pts = ctr + rad * np.stack([np.cos(ang), np.sin(ang)], 1) * rng.uniform(0.6, 1.0, (k, 1))
        cv2.fillPoly(m, [np.round(pts * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
        m, tex = m[..., None], c1
    img *= 1 - m
    img += m * tex


def make_scene(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A static photo-like scene, float32 ``(h, w, 3)`` in 0-255."""
    import cv2

    pal = _palette(rng, int(rng.integers(3, 6)))
    img = _base_layer(rng, h, w, pal).astype(np.float32)
    for _ in range(int(rng.integers(2, 7))):
        _add_element(rng, img, pal)
    grain = _noise_field(rng, h, w, octaves=2) - 0.5
    img += grain[..., None] * rng.uniform(0, 30) + rng.normal(0, rng.uniform(0, 4), img.shape)
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.4, 1.2)))
    return np.clip(img, 0, 255).astype(np.float32)


def make_wide_scene(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A scene of any colour: an independent multi-scale noise field per RGB channel, plus a few
    static elements from a fully saturated palette. Float32 ``(h, w, 3)`` in 0-255."""
    chans = []
    for _ in range(3):
        lo, hi = np.sort(rng.uniform(0, 255, size=2))
        chans.append(lo + (hi - lo) * _noise_field(rng, h, w, octaves=int(rng.integers(3, 7))))
    img = np.stack(chans, -1).astype(np.float32)
    pal = rng.uniform(0, 255, size=(int(rng.integers(3, 6)), 3)).astype(np.float32)
    for _ in range(int(rng.integers(0, 5))):
        _add_element(rng, img, pal)
    return np.clip(img, 0, 255)


def jitter_colours(rng: np.random.Generator, video: np.ndarray) -> np.ndarray:
    """Same random hue rotation, saturation scale (0.5-2) and gamma (0.7-1.4) for every frame.

    Shape:
        float or uint8 ``(F, H, W, 3)`` in 0-255 -> float32, same shape.
    """
    import cv2

    f, h, w, _ = video.shape
    x = (video.astype(np.float32) / 255).reshape(f * h, w, 3)
    hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)  # H in [0, 360), S and V in [0, 1]
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(0, 360)) % 360
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.5, 2.0), 0, 1)
    hsv[..., 2] = np.clip(hsv[..., 2], 0, 1) ** rng.uniform(0.7, 1.4)
    return (cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).reshape(f, h, w, 3) * 255).clip(0, 255)
