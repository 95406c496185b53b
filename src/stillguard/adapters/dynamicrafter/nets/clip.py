"""OpenCLIP ViT-H/14 towers (text and image) and DynamiCrafter's query Resampler.

Sources:
    * the towers: mlfoundations/open_clip 2.22 (``open_clip/transformer.py``: ``VisionTransformer``,
      ``ResidualAttentionBlock``; ``open_clip/model.py``: ``CLIP``), as DynamiCrafter holds them in
      ``lvdm/modules/encoders/condition.py``: ``FrozenOpenCLIPEmbedder`` (``cond_stage_model``,
      the CLIP with ``visual`` deleted, text read at the *penultimate* block, then ``ln_final``) and
      ``FrozenOpenCLIPImageEmbedderV2`` (``embedder``, the CLIP with the text ``transformer`` deleted;
      the output is every token of the last vision block, *before* ``ln_post``/``proj``, which stay in
      the checkpoint unused). Written here with the same parameter names (``nn.MultiheadAttention``
      gives ``in_proj_weight``/``out_proj``), so no ``open-clip-torch`` is needed.
    * the Resampler: DynamiCrafter ``lvdm/modules/encoders/resampler.py`` (``Resampler``,
      ``PerceiverAttention``, ``FeedForward``), with ``num_queries × video_length`` learned queries.

Image preprocessing (``FrozenOpenCLIPImageEmbedderV2.preprocess``): the ``[-1, 1]`` image is resized
to 224×224 with kornia's antialiased bicubic (``align_corners=True``; aspect not kept), mapped to
``[0, 1]`` and normalised with the CLIP mean/std, all in torch (differentiable). Under
``FakeTensorMode`` (the planner) kornia cannot run: it checks its sigma tensor's values. There
:func:`antialiased_resize` redoes the same Gaussian blur + resize with torch ops whose sigma and
kernel size are Python floats from the static shapes (the path kornia takes for a tensor that
requires grad: reflect padding, two separable depthwise convolutions, then ``interpolate``); real
tensors keep kornia, so their numerics are unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch._subclasses.fake_tensor import FakeTensor

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SOT, EOT = 49406, 49407  # open_clip tokenizer: <start_of_text>, <end_of_text>; padding is 0


def _gauss_kernel(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """kornia's ``get_gaussian_kernel1d``: ``exp(-n^2 / 2 sigma^2)`` at integer offsets, sum 1."""
    n = torch.arange(size, dtype=dtype, device=device) - (size // 2)
    k = torch.exp(-(n**2) / (2.0 * sigma**2))
    return k / k.sum()


def antialiased_resize(x: Tensor, size: tuple[int, int], *, align_corners: bool = True) -> Tensor:
    """kornia ``resize(x, size, "bicubic", align_corners, antialias=True)`` in torch ops.

    Same rule as kornia 0.9 (``geometry/transform/affwarp.py``): when shrinking, a Gaussian blur
    with ``sigma = max((in/out - 1) / 2, 0.001)`` per axis and odd kernel size ``max(4 sigma, 3)``
    (1 on a singleton axis), reflect-padded, separable (W then H), computed in float32 for
    half-precision inputs; then bicubic ``interpolate``. Sigma is a Python float here, so this
    runs under ``FakeTensorMode``. Shape: ``(B,C,H,W)`` -> ``(B,C,*size)``.
    """
    b, c, h, w = x.shape
    fy, fx = h / size[0], w / size[1]
    if max(fy, fx) > 1:
        dtype = x.dtype
        y = x.float() if dtype in (torch.float16, torch.bfloat16) else x
        for axis, (f, n) in ((3, (fx, w)), (2, (fy, h))):
            sigma = max((f - 1.0) / 2.0, 0.001)
            ks = int(max(4.0 * sigma, 3))
            ks = 1 if n == 1 else (ks if ks % 2 else ks + 1)
            k = _gauss_kernel(ks, sigma, y.dtype, y.device)
            r = ks // 2
            if axis == 3:
                y = F.pad(y, (r, r, 0, 0), mode="reflect")
                weight = k.view(1, 1, 1, ks).expand(c, 1, 1, ks)
            else:
                y = F.pad(y, (0, 0, r, r), mode="reflect")
                weight = k.view(1, 1, ks, 1).expand(c, 1, ks, 1)
            y = F.conv2d(y, weight, groups=c)
        x = y.to(dtype)
    return F.interpolate(x, size=size, mode="bicubic", align_corners=align_corners)


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.c_fc, self.gelu, self.c_proj = (
            nn.Linear(width, hidden),
            nn.GELU(),
            nn.Linear(hidden, width),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = Mlp(width, int(width * mlp_ratio))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))


class VisionTransformer(nn.Module):
    """``visual``: patch conv, class token, positions, ``ln_pre``, blocks, (``ln_post``, ``proj``)."""

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        width: int,
        layers: int,
        head_width: int,
        embed_dim: int,
    ) -> None:
        super().__init__()
        grid = image_size // patch_size
        self.image_size = image_size
        self.conv1 = nn.Conv2d(3, width, patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, width // head_width)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, embed_dim))

    def tokens(self, pixels: Tensor) -> Tensor:
        """Every token of the last block. ``(B,3,S,S)`` normalised -> ``(B, grid²+1, width)``."""
        x = self.conv1(pixels).flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], 1) + self.positional_embedding.to(x.dtype))
        for block in self.transformer.resblocks:
            x = block(x)
        return x


class OpenCLIP(nn.Module):
    """The CLIP container: ``visual`` and/or the text ``transformer`` plus the shared text pieces."""

    def __init__(
        self,
        vision: dict[str, Any],
        text: dict[str, Any],
        embed_dim: int,
        with_visual: bool,
        with_text: bool,
    ) -> None:
        super().__init__()
        if with_visual:
            self.visual = VisionTransformer(embed_dim=embed_dim, **vision)
        width, ctx = int(text["width"]), int(text["context_length"])
        if with_text:
            self.transformer = Transformer(width, int(text["layers"]), int(text["heads"]))
        self.token_embedding = nn.Embedding(int(text["vocab_size"]), width)
        self.positional_embedding = nn.Parameter(torch.zeros(ctx, width))
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.zeros(width, embed_dim))
        self.logit_scale = nn.Parameter(torch.zeros(()))
        self.register_buffer(
            "attn_mask", torch.full((ctx, ctx), float("-inf")).triu(1), persistent=False
        )


class TextEmbedder(nn.Module):
    """``cond_stage_model``: token ids ``(B, 77)`` -> penultimate-block tokens after ``ln_final``."""

    def __init__(self, vision: dict[str, Any], text: dict[str, Any], embed_dim: int) -> None:
        super().__init__()
        self.model = OpenCLIP(vision, text, embed_dim, with_visual=False, with_text=True)

    def forward(self, tokens: Tensor) -> Tensor:
        m = self.model
        x = m.token_embedding(tokens) + m.positional_embedding
        for block in m.transformer.resblocks[:-1]:  # "penultimate"
            x = block(x, mask=m.attn_mask.to(x.dtype))
        return m.ln_final(x)

    @staticmethod
    def empty_tokens(batch: int = 1, length: int = 77) -> Tensor:
        """The open_clip tokens of the empty prompt ``""``: ``[SOT, EOT, 0, ...]``."""
        out = torch.zeros(batch, length, dtype=torch.long)
        out[:, 0], out[:, 1] = SOT, EOT
        return out


class ImageEmbedder(nn.Module):
    """``embedder``: image ``(B,3,H,W)`` in ``[-1,1]`` -> CLIP tokens ``(B, 257, 1280)`` (ViT-H/14)."""

    def __init__(self, vision: dict[str, Any], text: dict[str, Any], embed_dim: int) -> None:
        super().__init__()
        self.model = OpenCLIP(vision, text, embed_dim, with_visual=True, with_text=False)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD), persistent=False)

    def preprocess(self, x: Tensor) -> Tensor:
        s = self.model.visual.image_size
        if isinstance(x, FakeTensor):  # the planner: kornia reads sigma's values (see module doc)
            x = antialiased_resize(x, (s, s), align_corners=True)
        else:
            from kornia.geometry.transform import resize

            x = resize(x, (s, s), interpolation="bicubic", align_corners=True, antialias=True)
        x = (x + 1.0) / 2.0
        return (x - self.mean.view(1, 3, 1, 1).to(x)) / self.std.view(1, 3, 1, 1).to(x)

    def forward(self, image: Tensor) -> Tensor:
        return self.model.visual.tokens(self.preprocess(image))


class PerceiverAttention(nn.Module):
    def __init__(self, dim: int, dim_head: int, heads: int) -> None:
        super().__init__()
        inner = dim_head * heads
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: Tensor, latents: Tensor) -> Tensor:
        x, latents = self.norm1(x), self.norm2(latents)
        b, n, _ = latents.shape
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat([x, latents], 1)).chunk(2, dim=-1)
        q, k, v = (t.view(b, t.shape[1], self.heads, -1).transpose(1, 2) for t in (q, k, v))
        w = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
        out = w.float().softmax(-1).type(w.dtype) @ v
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class Resampler(nn.Module):
    """``image_proj_model``: CLIP tokens ``(B, N, embedding_dim)`` -> ``(B, Q·F, output_dim)``."""

    def __init__(
        self,
        dim: int,
        depth: int,
        dim_head: int,
        heads: int,
        num_queries: int,
        embedding_dim: int,
        output_dim: int,
        ff_mult: int = 4,
        video_length: int | None = None,
    ) -> None:
        super().__init__()
        n = num_queries * (video_length or 1)
        self.latents = nn.Parameter(torch.randn(1, n, dim) / dim**0.5)
        self.proj_in, self.proj_out = nn.Linear(embedding_dim, dim), nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([
                PerceiverAttention(dim, dim_head, heads),
                nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * ff_mult, bias=False), nn.GELU(), nn.Linear(dim * ff_mult, dim, bias=False)),
            ])
            for _ in range(depth)
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        latents = self.latents.expand(x.shape[0], -1, -1)
        x = self.proj_in(x)
        for attn, ff in self.layers:
            latents = attn(x, latents) + latents
            latents = ff(latents) + latents
        return self.norm_out(self.proj_out(latents))
