"""Seconds per frame of the face metrics (FDFR + ISM, dlib) at 256 px, measured, not asserted.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/face_speed.py [--frames 16] [--size 256]

A "video" of ``--frames`` frames of scikit-image's astronaut (Lanczos to ``--size``, each frame a
slightly different JPEG so nothing is cached) goes through
:func:`stillguard.measure.faces.video_faces` (detect + 5 landmarks + descriptor per frame) with the
HOG detector at upsample 0 and 1, and the CNN detector at upsample 0. Prints seconds per frame.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
from PIL import Image


def frames(n: int, size: int) -> torch.Tensor:
    from skimage import data

    base = Image.fromarray(data.astronaut()).resize((size, size), Image.Resampling.LANCZOS)
    out = []
    for i in range(n):
        buf = io.BytesIO()
        base.save(buf, format="JPEG", quality=70 + i % 25)
        arr = np.asarray(Image.open(buf).convert("RGB"))
        out.append(torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(out)[None]


def main(argv: list[str] | None = None) -> list[dict]:
    from stillguard.measure.faces import photo_face, video_faces

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args(argv)
    video = frames(args.frames, args.size)
    rows = []
    for model, up in (("hog", 0), ("hog", 1), ("cnn", 0)):
        ref = photo_face(video[0, :1], up, model)
        video_faces(video[:, :1], ref, upsample=up, model=model)  # load the models once
        t0 = time.perf_counter()
        m = video_faces(video, ref, upsample=up, model=model)
        per = (time.perf_counter() - t0) / args.frames
        rows.append({"detector": model, "upsample": up, "s_per_frame": per, "fdfr": m["fdfr"]})
        print(f"{model} upsample {up}: {per:.3f} s/frame at {args.size} px (FDFR {m['fdfr']:.2f}, "
              f"ISM distance {m['ism_dist']:.3f})")  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
