"""Tiny builds of SkyReels-V2 (I2V and diffusion forcing; see tiny_new_targets.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tiny_common import to_pil, two_roads, wan_vae


# ---------------------------------------------------------------- SkyReels-V2 (I2V and DF)
def _sky_tr(image: bool):
    from diffusers import SkyReelsV2Transformer3DModel

    torch.manual_seed(0)
    extra = dict(image_dim=4, added_kv_proj_dim=24, in_channels=36) if image else {}
    return SkyReelsV2Transformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        **({"in_channels": 16} | extra),
    )


def skyreels():
    from diffusers import SkyReelsV2ImageToVideoPipeline, UniPCMultistepScheduler
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    vae, tr = wan_vae(), _sky_tr(True)
    enc = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=4,
            projection_dim=4,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            intermediate_size=16,
            patch_size=8,
        )
    )
    proc = CLIPImageProcessor(crop_size=32, size=32)
    pipe = SkyReelsV2ImageToVideoPipeline(
        tokenizer=None,
        text_encoder=None,
        image_encoder=enc,
        image_processor=proc,
        transformer=tr,
        vae=vae,
        scheduler=UniPCMultistepScheduler(flow_shift=5.0, use_flow_sigmas=True),
    )
    emb = torch.randn(1, 512, 32)  # padded to 512: the attention splits image/text at 512
    kw = dict(
        prompt_embeds=emb,
        negative_prompt_embeds=emb * 0,
        height=16,
        width=16,
        num_frames=9,
        guidance_scale=5.0,
    )

    def gen(x):
        return pipe(
            image=to_pil(F.interpolate(x, size=16)), num_inference_steps=2, output_type="pt", **kw
        ).frames

    def parts(x, vae_on=True, enc_on=True):
        x16 = F.interpolate(x, size=(16, 16), mode="bicubic", align_corners=False)
        lat, cond = pipe.prepare_latents(
            x16 * 2 - 1, 1, 16, 16, 16, 9, torch.float32, "cpu", torch.Generator().manual_seed(1)
        )
        cond = cond if vae_on else cond.detach()
        mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
        std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
        pix = (F.interpolate(x, size=(32, 32), mode="bicubic", align_corners=False) - mean) / std
        img = enc(pixel_values=pix, output_hidden_states=True).hidden_states[-2]
        img = img if enc_on else img.detach()
        out = tr(
            hidden_states=torch.cat([lat, cond], 1),
            timestep=torch.tensor([500]),
            encoder_hidden_states=emb,
            encoder_hidden_states_image=img,
            return_dict=False,
        )[0]
        return out.pow(2).mean()

    return pipe, tr, gen, two_roads(parts, "CLIP")


def skyreels_df():
    from diffusers import SkyReelsV2DiffusionForcingImageToVideoPipeline, UniPCMultistepScheduler

    vae, tr = wan_vae(), _sky_tr(False)
    pipe = SkyReelsV2DiffusionForcingImageToVideoPipeline(
        tokenizer=None,
        text_encoder=None,
        transformer=tr,
        vae=vae,
        scheduler=UniPCMultistepScheduler(flow_shift=5.0, use_flow_sigmas=True),
    )
    emb = torch.randn(1, 16, 32)
    kw = dict(
        prompt_embeds=emb,
        negative_prompt_embeds=emb * 0,
        height=16,
        width=16,
        num_frames=9,
        base_num_frames=9,
        guidance_scale=5.0,
    )

    def gen(x):
        return pipe(
            image=to_pil(F.interpolate(x, size=16)), num_inference_steps=2, output_type="pt", **kw
        ).frames

    def loss(x):
        x16 = F.interpolate(x, size=(16, 16), mode="bicubic", align_corners=False)
        lat, nf, cond, prefix = pipe.prepare_latents(
            x16 * 2 - 1, 1, 16, 16, 16, 9, torch.float32, "cpu", torch.Generator().manual_seed(1)
        )
        lat = torch.cat([cond, lat[:, :, prefix:]], 2)  # the prefix frame is the photo
        t = torch.full((1, lat.shape[2]), 500)
        t[:, :prefix] = 0  # diffusion forcing: per-frame timestep, 0 on the condition
        out = tr(
            hidden_states=lat,
            timestep=t,
            encoder_hidden_states=emb,
            enable_diffusion_forcing=True,
            return_dict=False,
        )[0]
        return out.pow(2).mean()

    return pipe, tr, gen, {"vae latent prefix frame (per-frame t=0)": loss}
