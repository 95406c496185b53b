"""DynamiCrafter's video UNet (a VideoCrafter latent UNet with dual cross-attention).

Source: Doubiiu/DynamiCrafter ``lvdm/modules/networks/openaimodel3d.py`` (``UNetModel``,
``ResBlock``, ``TemporalConvBlock``, ``Downsample``, ``Upsample``, ``TimestepEmbedSequential``) and
``lvdm/models/utils_diffusion.py`` (``timestep_embedding``); names and shapes follow them (including
the official spelling ``temopral_conv``) so that ``model.diffusion_model.*`` loads strictly.

Layout: the input is ``(B, C_in, F, h, w)`` (the noisy latent with the image latent concatenated on
channels), frames are folded into the batch (``(B·F, C, h, w)``) everywhere except in the temporal
convolutions and temporal transformers. ``context`` is ``[text (77) | image tokens]``; when there
are exactly ``F·Q`` image tokens (the frame-wise Resampler) frame ``f`` sees only its own ``Q``
tokens, otherwise every frame sees all of them (the official ``77 + t*16`` rule, with ``Q`` from
the config). The frame-stride/fps value ``fs`` is embedded like a timestep and added to it.
Options fixed by every released config and not implemented: ``dims=2``, ``use_scale_shift_norm``
off, ``resblock_updown`` off, ``conv_resample`` on, ``transformer_depth=1``, ``use_linear`` on.
``gradient_checkpointing`` (the official ``use_checkpoint``, off by default here): every block of
``input_blocks``, ``init_attn``, ``middle_block`` and ``output_blocks`` recomputes its forward in
backward (non-reentrant ``torch.utils.checkpoint``); values and gradients are unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .attention import TEXT_LEN, SpatialTransformer, TemporalTransformer


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """``[cos(t·f), sin(t·f)]`` with ``f = max_period^(-i/half)``. ``(N,)`` -> ``(N, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs.to(t.device)[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 (the official ``GroupNormSpecific``)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float()).type(x.dtype)


class TemporalConvBlock(nn.Module):
    """Four (GroupNorm, SiLU, [Dropout], Conv3d (3,1,1)) layers with a residual. ``(B,C,F,h,w)``."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        k, p = (3, 1, 1), (1, 0, 0)
        self.conv1 = nn.Sequential(nn.GroupNorm(32, ch), nn.SiLU(), nn.Conv3d(ch, ch, k, padding=p))
        for i in (2, 3, 4):
            layer = nn.Sequential(
                nn.GroupNorm(32, ch), nn.SiLU(), nn.Dropout(0.0), nn.Conv3d(ch, ch, k, padding=p)
            )
            setattr(self, f"conv{i}", layer)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv4(self.conv3(self.conv2(self.conv1(x))))


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, + timestep embedding, GroupNorm-SiLU-conv, skip; then temporal conv."""

    def __init__(self, ch: int, emb_ch: int, out_ch: int | None = None, temporal: bool = True):
        super().__init__()
        out_ch = out_ch or ch
        self.in_layers = nn.Sequential(
            GroupNorm32(32, ch), nn.SiLU(), nn.Conv2d(ch, out_ch, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_ch, out_ch))
        self.out_layers = nn.Sequential(
            GroupNorm32(32, out_ch),
            nn.SiLU(),
            nn.Dropout(0.0),
            nn.Conv2d(out_ch, out_ch, 3, padding=1),
        )
        self.skip_connection = nn.Identity() if out_ch == ch else nn.Conv2d(ch, out_ch, 1)
        self.temopral_conv = TemporalConvBlock(out_ch) if temporal else None  # official spelling

    def forward(self, x: Tensor, emb: Tensor, batch: int) -> Tensor:
        h = self.in_layers(x) + self.emb_layers(emb).type(x.dtype)[..., None, None]
        h = self.skip_connection(x) + self.out_layers(h)
        if self.temopral_conv is not None:
            h = _unfold(self.temopral_conv(_fold(h, batch)))
        return h


class Downsample(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def _fold(x: Tensor, b: int) -> Tensor:
    """``(B·F, C, h, w)`` -> ``(B, C, F, h, w)``."""
    return x.unflatten(0, (b, -1)).transpose(1, 2)


def _unfold(x: Tensor) -> Tensor:
    """``(B, C, F, h, w)`` -> ``(B·F, C, h, w)``."""
    return x.transpose(1, 2).flatten(0, 1)


class TimestepEmbedSequential(nn.Sequential):
    """Runs its layers, handing each the arguments it takes (the official dispatch by type)."""

    def forward(self, x: Tensor, emb: Tensor, context: Tensor, batch: int) -> Tensor:  # type: ignore[override]
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb, batch)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, TemporalTransformer):
                x = _unfold(layer(_fold(x, batch)))
            else:
                x = layer(x)
        return x


#: switches of the official UNet that this implementation supports only at their released value
SUPPORTED = dict(
    use_linear=True,
    transformer_depth=1,
    temporal_attention=True,
    temporal_selfatt_only=True,
    use_relative_position=False,
    use_causal_attention=False,
    use_scale_shift_norm=False,
    resblock_updown=False,
    conv_resample=True,
    dims=2,
    tempspatial_aware=False,
)


def _check_supported(config: dict[str, Any]) -> None:
    from ....errors import ModelError

    bad = {k: config[k] for k, v in SUPPORTED.items() if k in config and config[k] != v}
    if bad:
        raise ModelError(
            f"DynamiCrafter UNet option(s) {bad} are not implemented (supported: "
            f"{ {k: SUPPORTED[k] for k in bad} }, the values of every released checkpoint)"
        )


class DCUNet(nn.Module):
    """``UNetModel`` of DynamiCrafter. ``forward(x (B,C_in,F,h,w), t (B,), context, fs (B,))``.

    ``config`` keys are the official ``unet_config.params`` names (``in_channels``,
    ``model_channels``, ``out_channels``, ``num_res_blocks``, ``attention_resolutions``,
    ``channel_mult``, ``num_head_channels``, ``context_dim``, ``temporal_length``,
    ``addition_attention``, ``image_cross_attention``, ``image_cross_attention_scale_learnable``,
    ``default_fs``, ``fs_condition``) plus ``image_tokens_per_frame`` (the Resampler's queries).
    """

    def __init__(self, **config: Any) -> None:
        super().__init__()
        _check_supported(config)
        self.config = dict(config)
        mc, hc = int(config["model_channels"]), int(config["num_head_channels"])
        ctx, mults = int(config["context_dim"]), list(config["channel_mult"])
        n_res, att_res = int(config["num_res_blocks"]), set(config["attention_resolutions"])
        image, learn = (
            bool(config["image_cross_attention"]),
            bool(config.get("image_cross_attention_scale_learnable", False)),
        )
        temporal = bool(config.get("temporal_conv", True))
        self.model_channels, self.default_fs = mc, int(config.get("default_fs", 4))
        self.gradient_checkpointing = False
        self.fs_condition = bool(config.get("fs_condition", False))
        self.queries = int(config.get("image_tokens_per_frame", 16))
        emb = mc * 4
        self.time_embed = nn.Sequential(nn.Linear(mc, emb), nn.SiLU(), nn.Linear(emb, emb))
        if self.fs_condition:
            self.fps_embedding = nn.Sequential(nn.Linear(mc, emb), nn.SiLU(), nn.Linear(emb, emb))

        def attn_layers(ch: int) -> list[nn.Module]:
            heads = ch // hc
            return [
                SpatialTransformer(ch, heads, hc, ctx, image, learn),
                TemporalTransformer(ch, heads, hc),
            ]

        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(nn.Conv2d(int(config["in_channels"]), mc, 3, padding=1))]
        )
        self.addition_attention = bool(config.get("addition_attention", False))
        if self.addition_attention:  # n_heads=8 and Conv1d projections, as in the official code
            self.init_attn = TimestepEmbedSequential(
                TemporalTransformer(mc, 8, hc, use_linear=False)
            )
        chans, ch, ds = [mc], mc, 1
        for level, mult in enumerate(mults):
            for _ in range(n_res):
                layers: list[nn.Module] = [ResBlock(ch, emb, mult * mc, temporal)]
                ch = mult * mc
                if ds in att_res:
                    layers += attn_layers(ch)
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                chans.append(ch)
            if level != len(mults) - 1:
                self.input_blocks.append(TimestepEmbedSequential(Downsample(ch)))
                chans.append(ch)
                ds *= 2
        self.middle_block = TimestepEmbedSequential(
            ResBlock(ch, emb, temporal=temporal),
            *attn_layers(ch),
            ResBlock(ch, emb, temporal=temporal),
        )
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(mults))[::-1]:
            for i in range(n_res + 1):
                layers = [ResBlock(ch + chans.pop(), emb, mult * mc, temporal)]
                ch = mult * mc
                if ds in att_res:
                    layers += attn_layers(ch)
                if level and i == n_res:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(
            GroupNorm32(32, ch), nn.SiLU(), nn.Conv2d(mc, int(config["out_channels"]), 3, padding=1)
        )

    @property
    def attn_processors(self) -> dict[str, Any]:
        """``{name.processor: processor}`` of every attention module (as diffusers models have)."""
        return {
            f"{n}.processor": m.processor
            for n, m in self.named_modules()
            if hasattr(m, "set_processor")
        }

    def forward(
        self, x: Tensor, timesteps: Tensor, context: Tensor, fs: Tensor | None = None
    ) -> Tensor:
        b, _, f, _, _ = x.shape
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels).type(x.dtype))
        if context.shape[1] == TEXT_LEN + f * self.queries:  # per-frame image tokens
            text, img = context[:, :TEXT_LEN], context[:, TEXT_LEN:]
            context = torch.cat(
                [text.repeat_interleave(f, 0), img.reshape(b * f, self.queries, -1)], 1
            )
        else:
            context = context.repeat_interleave(f, 0)
        emb = emb.repeat_interleave(f, 0)
        if self.fs_condition:
            if fs is None:
                fs = torch.full((b,), self.default_fs, dtype=torch.long, device=x.device)
            fs_emb = self.fps_embedding(timestep_embedding(fs, self.model_channels).type(x.dtype))
            emb = emb + fs_emb.repeat_interleave(f, 0)
        h, hs = _unfold(x), []
        for i, block in enumerate(self.input_blocks):
            h = self._block(block, h, emb, context, b)
            if i == 0 and self.addition_attention:
                h = self._block(self.init_attn, h, emb, context, b)
            hs.append(h)
        h = self._block(self.middle_block, h, emb, context, b)
        for block in self.output_blocks:
            h = self._block(block, torch.cat([h, hs.pop()], 1), emb, context, b)
        return _fold(self.out(h), b)

    def _block(self, block: nn.Module, h: Tensor, emb: Tensor, context: Tensor, b: int) -> Tensor:
        """``block(h, emb, context, b)``, recomputed in backward when checkpointing is on."""
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, h, emb, context, b, use_reentrant=False)
        return block(h, emb, context, b)
