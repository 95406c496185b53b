"""The Stable Diffusion KL autoencoder in the LDM key layout (``first_stage_model.*``).

Source: Doubiiu/DynamiCrafter ``lvdm/models/autoencoder.py`` (``AutoencoderKL``) and
``lvdm/modules/networks/ae_modules.py`` (``Encoder``, ``Decoder``, ``ResnetBlock``, ``AttnBlock``,
``Downsample``, ``Upsample``). diffusers' ``AutoencoderKL`` computes the same function but stores it
under other names (``down_blocks.N.resnets``) and with ``Linear`` instead of 1×1-conv attention
weights, so it cannot load ``model.ckpt`` strictly; this module can (the parameter count equals
diffusers' for the same config, which a test checks). Each resolution level is a module with its own
``forward`` so that a hook on ``encoder.down.N`` sees that level's output (``vae-features``).

Units: images in ``[-1, 1]``, ``(N, 3, H, W)``; ``encode`` returns the posterior mean and log-variance
``(N, z, H/8, W/8)`` each (unscaled; multiply by 0.18215 for the diffusion model).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, ch, eps=1e-6)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.dropout = nn.Dropout(0.0)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over pixels with 1×1-conv projections."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.norm = _norm(ch)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(ch, ch, 1) for _ in range(4))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        q, k, v = (m(y).flatten(2).transpose(1, 2) for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj_out(out.transpose(1, 2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """One resolution level: ``block`` (ResnetBlocks), ``attn`` (empty here), then re-sampling."""

    def __init__(self, cin: int, cout: int, n: int, resample: nn.Module | None, name: str) -> None:
        super().__init__()
        self.block = nn.ModuleList([ResnetBlock(cin if i == 0 else cout, cout) for i in range(n)])
        self.attn = nn.ModuleList()
        if resample is not None:
            setattr(self, name, resample)
        self._resample = name if resample is not None else None

    def forward(self, x: Tensor) -> Tensor:
        for blk in self.block:
            x = blk(x)
        return getattr(self, self._resample)(x) if self._resample else x


class Mid(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.block_1, self.attn_1, self.block_2 = (
            ResnetBlock(ch, ch),
            AttnBlock(ch),
            ResnetBlock(ch, ch),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    def __init__(
        self,
        ch: int,
        ch_mult: list[int],
        num_res_blocks: int,
        z_channels: int,
        in_channels: int = 3,
        **_: Any,
    ):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        chans = [ch] + [ch * m for m in ch_mult]
        last = len(ch_mult) - 1
        self.down = nn.ModuleList(
            Level(
                chans[i],
                chans[i + 1],
                num_res_blocks,
                Downsample(chans[i + 1]) if i < last else None,
                "downsample",
            )
            for i in range(len(ch_mult))
        )
        self.mid = Mid(chans[-1])
        self.norm_out = _norm(chans[-1])
        self.conv_out = nn.Conv2d(chans[-1], 2 * z_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    def __init__(
        self,
        ch: int,
        ch_mult: list[int],
        num_res_blocks: int,
        z_channels: int,
        out_ch: int = 3,
        **_: Any,
    ):
        super().__init__()
        top = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, top, 3, padding=1)
        self.mid = Mid(top)
        ups, cin = [], top
        for i in reversed(range(len(ch_mult))):
            cout = ch * ch_mult[i]
            ups.insert(
                0, Level(cin, cout, num_res_blocks + 1, Upsample(cout) if i else None, "upsample")
            )
            cin = cout
        self.up = nn.ModuleList(ups)
        self.norm_out = _norm(cin)
        self.conv_out = nn.Conv2d(cin, out_ch, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class DCAutoencoderKL(nn.Module):
    """``encoder``, ``decoder``, ``quant_conv``, ``post_quant_conv`` (official ``ddconfig`` keys).

    ``use_slicing`` (off by default; :meth:`enable_slicing`): a batch is encoded and decoded one
    item at a time, as diffusers' ``AutoencoderKL`` slicing: the same values, the peak of one item.
    No tiling: the SD VAE's mid-block attention spans the whole image, so tiles would change the
    latent (the official code has no tiling either).
    """

    def __init__(self, embed_dim: int = 4, **ddconfig: Any) -> None:
        super().__init__()
        self.config = {"embed_dim": embed_dim, **ddconfig}
        z = int(ddconfig["z_channels"])
        self.encoder, self.decoder = Encoder(**ddconfig), Decoder(**ddconfig)
        self.quant_conv = nn.Conv2d(2 * z, 2 * embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, z, 1)
        self.use_slicing = False

    def enable_slicing(self) -> None:
        """Encode and decode batch items one at a time (same values, less memory)."""
        self.use_slicing = True

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior ``(mean, logvar)``, logvar clamped to ``[-30, 20]`` as the official one."""
        if self.use_slicing and x.shape[0] > 1:
            parts = [self.quant_conv(self.encoder(item)) for item in x.split(1)]
            moments = torch.cat(parts)
        else:
            moments = self.quant_conv(self.encoder(x))
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: Tensor) -> Tensor:
        if self.use_slicing and z.shape[0] > 1:
            return torch.cat([self.decoder(self.post_quant_conv(item)) for item in z.split(1)])
        return self.decoder(self.post_quant_conv(z))

    @property
    def scale_factor_spatial(self) -> int:
        return 2 ** (len(self.config["ch_mult"]) - 1)
