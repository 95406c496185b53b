"""Synthetic, seeded training videos for the shipped toy image-to-video model.

Idea: a tiny model trained for an hour on a CPU can only learn motion that is *predictable from the
first frame*; anything else it averages into blur. So every video combines

* a photo-like static scene (smooth gradients, multi-scale noise fields, stripe and checker patches,
  soft blobs, hard shapes, random colour palettes, film grain) drawn on a canvas larger than the view;
* one consistent **camera move** shared by every video (a slow pan to the right, a slow zoom in and a
  small clockwise roll; only its strength varies, by +-25%), rendered by warping the larger canvas
  with ``cv2.warpAffine`` so that borders never show. Because the move does not depend on content,
  *any* image, natural photos included, gets animated;
* 0-3 **moving objects** (discs, squares, triangles in saturated "code" colours with a dark outline)
  whose direction is a deterministic function of their colour, as in the project's feasibility study:
  red moves right, green left, blue down, yellow up, at 1.9-3.2 px/frame relative to the frame.

Frame 0 is the conditioning image. Background palettes are kept less saturated (HSV saturation
<= 0.6) than the code colours so the moving objects stay recognisable.

Choices not dictated by any paper (this is our own synthetic data, not a published dataset):
canvas = view + 24 px; camera per frame: pan 0.8 px, zoom 1.5 %, roll 0.25 degrees, times one
strength factor U(0.75, 1.25) per video; 15 % of videos have no object. The VAE alone trains on
``VAE_SCENES``: the same videos with random hue, saturation and gamma, and 30 % any-colour scenes,
so that it learns to encode every colour (natural photos included), not only the scene palettes.
Randomness comes from an explicit ``numpy.random.Generator`` (the rendering is numpy/OpenCV code);
use :func:`scene_rng` to get disjoint, reproducible streams (training, validation and held-out
evaluation never overlap).

Needs: numpy and opencv (``pip install stillguard[eval]``); training-time only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stillguard.toy.training.scene import jitter_colours, make_scene, make_wide_scene

#: colour of each moving-object class (RGB 0-255) and its direction (dx, dy) in the frame
CODE_COLOURS = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (40, 80, 240),
    "yellow": (240, 220, 40),
}
DIRECTIONS = {"red": (1, 0), "green": (-1, 0), "blue": (0, 1), "yellow": (0, -1)}

#: seed-stream ids, so that every use of the data draws from its own disjoint stream
STREAM_VAE, STREAM_LATENTS, STREAM_VALIDATION, STREAM_HELDOUT = 0, 1, 2, 3


@dataclass(frozen=True)
class SceneConfig:
    """Geometry and motion of the synthetic videos.

    Attributes:
        height, width: frame size in pixels.
        num_frames: frames per video (frame 0 is the conditioning image).
        margin: extra canvas on every side, so camera warps never show a border.
        pan: camera pan in px/frame (content moves left by this much).
        zoom: relative zoom-in per frame.
        roll: camera roll in degrees per frame.
        strength: range of the per-video factor applied to pan, zoom and roll.
        speed: range of object speed in px/frame.
        p_no_object: probability of a video with camera motion only.
        p_wide: probability of a "wide" scene (independent multi-scale colour noise per channel,
            any colour) instead of a palette scene. Used for the VAE only (0 for the transformer).
        colour_jitter: random hue rotation, saturation scale and gamma per video (VAE only), so
            the autoencoder learns every colour, not just the scene palettes and code colours.
    """

    height: int = 64
    width: int = 64
    num_frames: int = 9
    margin: int = 24
    pan: float = 0.8
    zoom: float = 0.015
    roll: float = 0.25
    strength: tuple[float, float] = (0.75, 1.25)
    speed: tuple[float, float] = (1.9, 3.2)
    p_no_object: float = 0.15
    p_wide: float = 0.0
    colour_jitter: bool = False


#: what the VAE is trained on: the same videos, widened to any colour and texture
VAE_SCENES = SceneConfig(p_wide=0.3, colour_jitter=True)


def scene_rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    """A reproducible generator for ``(seed, stream, index)``; different triples never overlap."""
    return np.random.default_rng([seed, stream, index])


# ---------------------------------------------------------------------------------- motion
def _camera_matrix(cfg: SceneConfig, t: int, s: float) -> np.ndarray:
    """Affine map from view pixels to canvas pixels at frame ``t`` (for ``WARP_INVERSE_MAP``)."""
    mid = (cfg.num_frames - 1) / 2
    scale = (1 + cfg.zoom * s) ** t
    theta = math.radians(cfg.roll * s * t)
    cx = cfg.margin + cfg.width / 2 + cfg.pan * s * (t - mid)  # view centre on the canvas
    cy = cfg.margin + cfg.height / 2
    a = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]]) / scale
    b = np.array([cx, cy]) - a @ np.array([cfg.width / 2, cfg.height / 2])
    return np.concatenate([a, b[:, None]], 1).astype(np.float32)


def _objects(rng: np.random.Generator, cfg: SceneConfig) -> list[tuple]:
    if rng.random() < cfg.p_no_object:
        return []
    out = []
    travel_frames = cfg.num_frames - 1
    for _ in range(int(rng.integers(1, 4))):
        name = list(CODE_COLOURS)[rng.integers(0, 4)]
        r = rng.uniform(0.08, 0.14) * cfg.height
        sp = rng.uniform(*cfg.speed)
        dx, dy = DIRECTIONS[name]
        travel = sp * travel_frames
        lo_x, hi_x = r + (travel if dx < 0 else 0), cfg.width - r - (travel if dx > 0 else 0)
        lo_y, hi_y = r + (travel if dy < 0 else 0), cfg.height - r - (travel if dy > 0 else 0)
        x0, y0 = rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)
        out.append((name, r, sp * dx, sp * dy, x0, y0, int(rng.integers(0, 3))))
    return out


def _draw_object(frame: np.ndarray, obj: tuple, t: int) -> None:
    import cv2

    name, r, vx, vy, x0, y0, kind = obj
    cx, cy = (x0 + vx * t) * 16, (y0 + vy * t) * 16
    if kind == 0:
        pts = None
    elif kind == 1:
        pts = np.array([[cx - r * 16, cy - r * 16], [cx + r * 16, cy - r * 16]])
        pts = np.concatenate([pts, pts[::-1] + [0, 2 * r * 16]])
    else:
        ang = np.deg2rad([-90, 30, 150])
        pts = np.stack([cx + r * 16 * np.cos(ang), cy + r * 16 * np.sin(ang)], 1)
    for col, grow in (((25, 25, 25), 1.0), (CODE_COLOURS[name], 0.0)):
        if pts is None:
            cv2.circle(
                frame, (round(cx), round(cy)), round((r + grow) * 16), col, -1, cv2.LINE_AA, 4
            )
        else:
            c = np.array([cx, cy])
            p = c + (pts - c) * (1 + grow / r)
            cv2.fillPoly(frame, [np.round(p).astype(np.int32)], col, cv2.LINE_AA, shift=4)


def make_video(rng: np.random.Generator, cfg: SceneConfig | None = None) -> np.ndarray:
    """One synthetic video; frame 0 is the conditioning image.

    Args:
        rng: the generator all random choices are drawn from.
        cfg: geometry and motion; defaults to :class:`SceneConfig()`.

    Returns:
        uint8 array.

    Shape:
        ``(F, H, W, 3)``.
    """
    import cv2

    cfg = cfg or SceneConfig()
    size = (cfg.height + 2 * cfg.margin, cfg.width + 2 * cfg.margin)
    wide = cfg.p_wide > 0 and rng.random() < cfg.p_wide
    canvas = make_wide_scene(rng, *size) if wide else make_scene(rng, *size)
    s = float(rng.uniform(*cfg.strength))
    objs = _objects(rng, cfg)
    frames = []
    for t in range(cfg.num_frames):
        m = _camera_matrix(cfg, t, s)
        f = cv2.warpAffine(
            canvas,
            m,
            (cfg.width, cfg.height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT101,
        )
        for o in objs:
            _draw_object(f, o, t)
        frames.append(np.clip(f, 0, 255))
    video = np.stack(frames)
    if cfg.colour_jitter:
        video = jitter_colours(rng, video)
    return np.round(video).astype(np.uint8)


def camera_video(canvas: np.ndarray, cfg: SceneConfig | None = None, strength: float = 1.0):
    """The training camera move applied to a still canvas (no objects): a reference video.

    Args:
        canvas: uint8 or float RGB image of size ``(H + 2*margin, W + 2*margin, 3)``.
        cfg: geometry and motion; defaults to :class:`SceneConfig()`.
        strength: the per-video strength factor (1 = the average training move).

    Returns:
        uint8 array.

    Shape:
        ``(F, H, W, 3)``.
    """
    import cv2

    cfg = cfg or SceneConfig()
    want = (cfg.height + 2 * cfg.margin, cfg.width + 2 * cfg.margin)
    if canvas.shape[:2] != want:
        raise ValueError(f"canvas must be {want[0]}x{want[1]} pixels, got {canvas.shape[:2]}")
    src = canvas.astype(np.float32)
    frames = [
        cv2.warpAffine(
            src,
            _camera_matrix(cfg, t, strength),
            (cfg.width, cfg.height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT101,
        )
        for t in range(cfg.num_frames)
    ]
    return np.round(np.clip(np.stack(frames), 0, 255)).astype(np.uint8)


def make_videos(seed: int, stream: int, start: int, n: int, cfg: SceneConfig | None = None):
    """Videos ``start .. start+n-1`` of a stream, as a float tensor in [0, 1].

    Shape:
        ``(n, F, 3, H, W)``.
    """
    import torch

    v = np.stack([make_video(scene_rng(seed, stream, start + i), cfg) for i in range(n)])
    return torch.from_numpy(v).permute(0, 1, 4, 2, 3).float().div(255)
