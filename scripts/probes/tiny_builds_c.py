"""Tiny builds of Kandinsky 5 I2V, SANA-Video I2V and Cosmos-Predict2 Video2World (see
tiny_new_targets.py)."""

from __future__ import annotations

import torch
from tiny_common import SIZE, to_pil, wan_vae


# ---------------------------------------------------------------- Kandinsky 5 I2V
def kandinsky5():
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        Kandinsky5I2VPipeline,
        Kandinsky5Transformer3DModel,
    )

    torch.manual_seed(0)
    vae = AutoencoderKLHunyuanVideo(
        block_out_channels=[32, 64, 64],
        down_block_types=["HunyuanVideoDownBlock3D"] * 3,
        up_block_types=["HunyuanVideoUpBlock3D"] * 3,
        latent_channels=16,
        layers_per_block=1,
        mid_block_add_attention=False,
        spatial_compression_ratio=8,
        temporal_compression_ratio=4,
    )
    tr = Kandinsky5Transformer3DModel(
        in_visual_dim=16,
        in_text_dim=32,
        in_text_dim2=16,
        time_dim=16,
        out_visual_dim=16,
        patch_size=(1, 2, 2),
        model_dim=16,
        ff_dim=32,
        num_text_blocks=1,
        num_visual_blocks=2,
        axes_dims=(1, 1, 2),
        visual_cond=True,
        attention_type="regular",
    )
    pipe = Kandinsky5I2VPipeline(
        transformer=tr,
        vae=vae,
        text_encoder=None,
        tokenizer=None,
        text_encoder_2=None,
        tokenizer_2=None,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=10.0),
    )
    q, c = torch.randn(1, 6, 32), torch.randn(1, 16)
    cu = torch.tensor([0, 6], dtype=torch.int32)
    kw = dict(
        prompt_embeds_qwen=q,
        prompt_embeds_clip=c,
        prompt_cu_seqlens=cu,
        negative_prompt_embeds_qwen=q * 0,
        negative_prompt_embeds_clip=c * 0,
        negative_prompt_cu_seqlens=cu,
        height=SIZE,
        width=SIZE,
        num_frames=9,
        guidance_scale=5.0,
    )

    def gen(x):
        return pipe(image=to_pil(x), num_inference_steps=2, output_type="pt", **kw).frames

    def loss(x):  # prepare_latents runs the VAE under torch.no_grad: redone here
        lat = (
            vae.encode((x * 2 - 1).unsqueeze(2)).latent_dist.sample(
                torch.Generator().manual_seed(1)
            )
            * vae.config.scaling_factor
        )
        f = (9 - 1) // 4 + 1
        noise = torch.randn(
            1, f, SIZE // 8, SIZE // 8, 16, generator=torch.Generator().manual_seed(2)
        )
        lat = torch.cat([lat.permute(0, 2, 3, 4, 1), noise[:, 1:]], 1)
        mask = torch.zeros(1, f, SIZE // 8, SIZE // 8, 1)
        mask[:, 0] = 1
        hs = torch.cat([lat, torch.zeros_like(lat), mask], -1)  # visual_cond is all zeros
        rope = [torch.arange(f), torch.arange(SIZE // 16), torch.arange(SIZE // 16)]
        out = tr(
            hidden_states=hs,
            encoder_hidden_states=q,
            timestep=torch.tensor([500.0]),
            pooled_projections=c,
            visual_rope_pos=rope,
            text_rope_pos=torch.arange(6),
            scale_factor=(1, 2, 2),
            sparse_params=None,
            return_dict=False,
        )[0]
        return out[:, 1:].pow(2).mean()  # frame 0 is never stepped

    return pipe, tr, gen, {"vae latent (frame-0 replacement, global t)": loss}


# ---------------------------------------------------------------- SANA-Video I2V
def sana():
    from diffusers import (
        DPMSolverMultistepScheduler,
        SanaImageToVideoPipeline,
        SanaVideoTransformer3DModel,
    )

    vae = wan_vae()
    torch.manual_seed(0)
    tr = SanaVideoTransformer3DModel(
        in_channels=16,
        out_channels=16,
        num_attention_heads=2,
        attention_head_dim=12,
        num_layers=2,
        num_cross_attention_heads=2,
        cross_attention_head_dim=12,
        cross_attention_dim=24,
        caption_channels=8,
        mlp_ratio=2.5,
        attention_bias=False,
        sample_size=8,
        patch_size=(1, 2, 2),
        norm_elementwise_affine=False,
        norm_eps=1e-6,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    sched = DPMSolverMultistepScheduler(
        flow_shift=8.0, use_flow_sigmas=True, prediction_type="flow_prediction"
    )
    pipe = SanaImageToVideoPipeline(
        tokenizer=None, text_encoder=None, vae=vae, transformer=tr, scheduler=sched
    )
    emb, m = torch.randn(1, 6, 8), torch.ones(1, 6)
    kw = dict(
        prompt_embeds=emb,
        prompt_attention_mask=m,
        negative_prompt_embeds=emb * 0,
        negative_prompt_attention_mask=m,
        negative_prompt=None,
        height=SIZE,
        width=SIZE,
        frames=9,
        guidance_scale=6.0,
        use_resolution_binning=False,
    )

    def gen(x):
        return pipe(image=to_pil(x), num_inference_steps=2, output_type="pt", **kw).frames

    def loss(x):  # prepare_latents is plain torch (mode of the posterior): reused
        lat = pipe.prepare_latents(
            x * 2 - 1, 1, 16, SIZE, SIZE, 9, torch.float32, "cpu", torch.Generator().manual_seed(1)
        )
        mask = torch.zeros(1, 1, lat.shape[2], lat.shape[3] // 2, lat.shape[4] // 2)
        mask[:, :, 0] = 1
        out = tr(
            lat,
            encoder_hidden_states=emb,
            encoder_attention_mask=m,
            timestep=500.0 * (1 - mask),
            return_dict=False,
        )[0]
        return out[:, :, 1:].pow(2).mean()

    return pipe, tr, gen, {"vae latent (frame-0 replacement, per-token t)": loss}


# ---------------------------------------------------------------- Cosmos-Predict2 Video2World
def cosmos2():
    from diffusers import (
        Cosmos2VideoToWorldPipeline,
        CosmosTransformer3DModel,
        FlowMatchEulerDiscreteScheduler,
    )
    from diffusers.configuration_utils import ConfigMixin
    from diffusers.models import ModelMixin

    class NoGuard(ModelMixin, ConfigMixin):  # the pipeline refuses safety_checker=None
        def __init__(self):  # a buffer: the pipeline asks every module for its device
            super().__init__()
            self.register_buffer("_device", torch.zeros(1), persistent=False)

        def check_text_safety(self, prompt):
            return True

        def check_video_safety(self, frames):
            return frames

    vae = wan_vae()
    torch.manual_seed(0)
    tr = CosmosTransformer3DModel(
        in_channels=17,
        out_channels=16,
        num_attention_heads=2,
        attention_head_dim=16,
        num_layers=2,
        mlp_ratio=2,
        text_embed_dim=32,
        adaln_lora_dim=4,
        max_size=(4, 32, 32),
        patch_size=(1, 2, 2),
        rope_scale=(1.0, 3.0, 3.0),
        concat_padding_mask=True,
        extra_pos_embed_type=None,
    )
    pipe = Cosmos2VideoToWorldPipeline(
        text_encoder=None,
        tokenizer=None,
        transformer=tr,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(use_karras_sigmas=True),
        safety_checker=NoGuard(),
    )
    emb = torch.randn(1, 6, 32)
    kw = dict(
        prompt_embeds=emb,
        negative_prompt_embeds=emb * 0,
        height=SIZE,
        width=SIZE,
        num_frames=9,
        guidance_scale=7.0,
    )

    def gen(x):
        return pipe(image=to_pil(x), num_inference_steps=2, output_type="pt", **kw).frames

    def loss(x):  # prepare_latents is plain torch (posterior sample with the generator): reused
        lat, cond, ind, _, cmask, _ = pipe.prepare_latents(
            (x * 2 - 1).unsqueeze(2),
            1,
            16,
            SIZE,
            SIZE,
            9,
            False,
            torch.float32,
            "cpu",
            torch.Generator().manual_seed(1),
        )
        sigma = torch.tensor(10.0)
        t = sigma / (sigma + 1)
        t_cond = torch.tensor(1e-4) / (1e-4 + 1)
        hs = ind * cond + (1 - ind) * lat * (1 - t)
        ts = ind * t_cond + (1 - ind) * t.view(1, 1, 1, 1, 1).expand(1, 1, lat.shape[2], 1, 1)
        out = tr(
            hidden_states=hs,
            timestep=ts,
            encoder_hidden_states=emb,
            fps=16,
            condition_mask=cmask,
            padding_mask=torch.zeros(1, 1, SIZE, SIZE),
            return_dict=False,
        )[0]
        return out[:, :, 1:].pow(2).mean()

    return pipe, tr, gen, {"vae latent (first latent frame replaced + mask channel)": loss}
