"""How well does a differentiable stand-in predict LTX-2's H.264 re-encode of the photo?

Usage (needs PyAV: ``pip install av``; prints a markdown table)::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/ltx2_codec.py [--image PATH] [--crf 33]

``LTX2ImageToVideoPipeline`` re-encodes the photo as one H.264 frame at ``image_crf`` (33) before
its VAE (diffusers' ``apply_image_conditioning_crf``: libx264, ``veryfast``, 4:2:0). A protection
is optimised through some stand-in ``P`` of that codec ``H``. For a perturbation ``d`` of 8/255 of
three kinds (per-pixel signs, as a sign-gradient attack makes; mid frequency, a random field at 1/4
of the resolution; low frequency, at 1/16), this compares the change the codec really makes,
``r = H(x+d) − H(x)``, with the change the stand-in predicts, ``p = P(x+d) − P(x)``: their cosine
(1 = the stand-in's gradient points where the codec goes) and the survival ratios ``|r|/|d|`` and
``|p|/|d|``. Stand-ins: the identity (what the straight-through estimator differentiates), kornia's
differentiable JPEG (the ``jpeg`` transform of stillguard) at several qualities, and a 4:2:0 +
4x4-DCT quantiser at the H.264 step of QP 30 (``0.625·2^(QP/6)``; x264 gives an I-frame at CRF 33
about QP 30), with a 1/3 dead zone, no intra prediction. Photos: the bundled sample (256x256) at
its own size and resized to LTX-2's 512x768. The cosines decide how ``ltx2-i2v`` treats the codec
(``src/stillguard/adapters/ltx2/codec.py``).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "stillguard" / "assets" / "sample.png"


def load(path: Path, size: tuple[int, int] | None) -> torch.Tensor:
    from PIL import Image

    img = Image.open(path).convert("RGB")
    if size is not None:
        img = img.resize((size[1], size[0]), Image.BICUBIC)
    arr = np.asarray(img).copy()
    return torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255


def h264(x: torch.Tensor, crf: int) -> torch.Tensor:
    """The pipeline's own re-encode of ``x`` (1, 3, H, W) in [0, 1] (8-bit in, 8-bit out)."""
    from diffusers.pipelines.ltx2.utils import apply_image_conditioning_crf

    arr = (x[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
    out = apply_image_conditioning_crf(arr, crf).copy()
    return torch.from_numpy(out).permute(2, 0, 1)[None].float() / 255


def jpeg(quality: int):
    from kornia.enhance import jpeg_codec_differentiable

    def run(x: torch.Tensor) -> torch.Tensor:
        return jpeg_codec_differentiable(x, torch.tensor([float(quality)])).clamp(0, 1)

    return run


def _dct(n: int) -> torch.Tensor:
    k, i = torch.arange(n)[:, None].double(), torch.arange(n)[None].double()
    m = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m.float()


def _quantise(plane: torch.Tensor, step: float, n: int = 4) -> torch.Tensor:
    """``(B, C, H, W)`` in 0..255: n×n DCT, dead-zone quantiser (offset 1/3), inverse."""
    b, c, h, w = plane.shape
    d = _dct(n)
    blocks = plane.reshape(b, c, h // n, n, w // n, n).permute(0, 1, 2, 4, 3, 5)
    q = d @ blocks @ d.T / step
    q = torch.sign(q) * torch.floor(q.abs() + 1 / 3)
    return (d.T @ (q * step) @ d).permute(0, 1, 2, 4, 3, 5).reshape(b, c, h, w)


def dct_quantiser(qp: int):
    """4:2:0 (BT.601 limited range, as swscale converts rgb24 to yuv420p) + 4x4 DCT quantiser."""

    def run(x: torch.Tensor) -> torch.Tensor:
        r, g, b = (x[:, i] * 255 for i in range(3))
        y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
        cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
        cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
        y = _quantise(y[:, None], 0.625 * 2 ** (qp / 6))[:, 0]
        chroma = _quantise(F.avg_pool2d(torch.stack([cb, cr], 1), 2), 0.625 * 2 ** ((qp - 1) / 6))
        cb, cr = (F.interpolate(chroma, scale_factor=2, mode="bilinear") - 128).unbind(1)
        yy = (y - 16) * 255 / 219
        k = 255 / 224
        rgb = [yy + 1.402 * k * cr, yy - 0.344136 * k * cb - 0.714136 * k * cr, yy + 1.772 * k * cb]
        return (torch.stack(rgb, 1) / 255).clamp(0, 1)

    return run


def perturbations(shape: tuple[int, ...], eps: float, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    h, w = shape[-2:]
    out = {"signs": (torch.randint(0, 2, shape, generator=g).float() * 2 - 1) * eps}
    for name, div in (("mid", 4), ("low", 16)):
        field = torch.randn(1, 3, max(1, h // div), max(1, w // div), generator=g)
        field = F.interpolate(field, size=(h, w), mode="bicubic", align_corners=False)
        out[name] = field / field.abs().max() * eps
    return out


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / (a - b).pow(2).mean().clamp_min(1e-12)))


def rows(x: torch.Tensor, crf: int, eps: float, seed: int) -> list[list[str]]:
    stand_ins = {"identity": lambda t: t}
    stand_ins.update({f"jpeg:{q}": jpeg(q) for q in (30, 50, 70, 90)})
    stand_ins["dct-quantiser QP30"] = dct_quantiser(30)
    coded = h264(x, crf)
    deltas = perturbations(tuple(x.shape), eps, seed)
    real = {k: h264((x + d).clamp(0, 1), crf) - coded for k, d in deltas.items()}
    out = []
    for name, fn in stand_ins.items():
        base = fn(x)
        cells = [name, f"{psnr(base, coded):.1f}"]
        for k, d in deltas.items():
            p, r = fn((x + d).clamp(0, 1)) - base, real[k]
            cos = float((p * r).sum() / (p.norm() * r.norm()).clamp_min(1e-12))
            cells.append(
                f"{cos:.2f} ({float(p.norm() / d.norm()):.2f} vs {float(r.norm() / d.norm()):.2f})"
            )
        out.append(cells)
    return out


def main(argv: list[str] | None = None) -> list[list[str]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image", type=Path, default=SAMPLE)
    ap.add_argument("--crf", type=int, default=33)
    ap.add_argument("--eps", type=float, default=8 / 255)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    table = []
    for size in (None, (512, 768)):
        x = load(args.image, size)
        label = "x".join(map(str, x.shape[-2:]))
        print(f"\n{args.image.name} at {label}: PSNR(H.264 CRF {args.crf}, photo) = "
              f"{psnr(h264(x, args.crf), x):.1f} dB; 8/255 perturbations\n")  # fmt: skip
        print("| stand-in P | PSNR(P(x), H(x)) dB | signs: cos (|p|/|d| vs |r|/|d|) | mid | low |")
        print("|---|---|---|---|---|")
        for cells in rows(x, args.crf, args.eps, args.seed):
            print("| " + " | ".join(cells) + " |")
            table.append([label, *cells])
    return table


if __name__ == "__main__":
    main()
