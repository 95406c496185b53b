"""Tiny builds of LTX-2 and HunyuanVideo-1.5 I2V (see tiny_new_targets.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tiny_common import SIZE, to_pil, two_roads


# ---------------------------------------------------------------- LTX-2
def ltx2():
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        FlowMatchEulerDiscreteScheduler,
        LTX2ImageToVideoPipeline,
        LTX2VideoTransformer3DModel,
    )
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    torch.manual_seed(0)
    cap, layers = 32, 3  # caption width (= connector heads x dim) and text layers + 1
    tr = LTX2VideoTransformer3DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        audio_in_channels=4,
        audio_out_channels=4,
        audio_num_attention_heads=2,
        audio_attention_head_dim=4,
        audio_cross_attention_dim=8,
        num_layers=2,
        caption_channels=cap,
        rope_double_precision=False,
        rope_type="split",
    )
    conn = LTX2TextConnectors(
        caption_channels=cap,
        text_proj_in_factor=layers,
        video_connector_num_attention_heads=4,
        video_connector_attention_head_dim=8,
        video_connector_num_layers=1,
        video_connector_num_learnable_registers=None,
        audio_connector_num_attention_heads=4,
        audio_connector_attention_head_dim=8,
        audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=None,
        connector_rope_base_seq_len=32,
        rope_double_precision=False,
        rope_type="split",
    )
    vae = AutoencoderKLLTX2Video(
        latent_channels=4,
        block_out_channels=(8,),
        decoder_block_out_channels=(8,),
        layers_per_block=(1,),
        decoder_layers_per_block=(1, 1),
        spatio_temporal_scaling=(True,),
        decoder_spatio_temporal_scaling=(True,),
        decoder_inject_noise=(False, False),
        downsample_type=("spatial",),
        upsample_residual=(False,),
        upsample_factor=(1,),
        timestep_conditioning=False,
        patch_size=1,
        patch_size_t=1,
    )
    vae.use_framewise_encoding = vae.use_framewise_decoding = False
    avae = AutoencoderKLLTX2Audio(
        base_channels=4,
        ch_mult=(1,),
        num_res_blocks=1,
        attn_resolutions=None,
        resolution=32,
        latent_channels=2,
        mid_block_add_attention=False,
        mel_bins=8,
    )
    voc = LTX2Vocoder(
        in_channels=16,
        hidden_channels=32,
        upsample_kernel_sizes=[4, 4],
        upsample_factors=[2, 2],
        resnet_kernel_sizes=[3],
        resnet_dilations=[[1, 3, 5]],
        output_sampling_rate=16000,
    )
    pipe = LTX2ImageToVideoPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        audio_vae=avae,
        text_encoder=None,
        tokenizer=None,
        connectors=conn,
        transformer=tr,
        vocoder=voc,
    )
    emb = torch.randn(1, 8, cap * layers)
    mask = torch.ones(1, 8, dtype=torch.long)
    # the pipeline's default guidance: CFG 3 (audio 7), STG 1 (on block 1 here: 2 blocks), modality
    # isolation 3 - three transformer calls a step; image_crf 0: no PyAV here (H.264 step skipped)
    kw = dict(
        prompt_embeds=emb,
        prompt_attention_mask=mask,
        negative_prompt_embeds=emb * 0,
        negative_prompt_attention_mask=mask,
        spatio_temporal_guidance_blocks=[1],
        image_crf=0,
        num_frames=9,
        frame_rate=24.0,
        height=SIZE,
        width=SIZE,
    )

    def gen(x):
        return pipe(image=x, num_inference_steps=2, output_type="pt", **kw).frames

    def loss(x):  # pipeline's prepare_latents is plain torch: reused as is
        lat, cmask = pipe.prepare_latents(
            x * 2 - 1,
            1,
            4,
            SIZE,
            SIZE,
            9,
            0.0,
            torch.float32,
            "cpu",
            torch.Generator().manual_seed(1),
        )
        v, a, amask = pipe.connectors(emb, mask, padding_side="left")
        h = w = SIZE // pipe.vae_spatial_compression_ratio
        f = (9 - 1) // pipe.vae_temporal_compression_ratio + 1
        afr = 4
        audio = pipe.prepare_audio_latents(
            1, 2, afr, 8, 0.0, torch.float32, "cpu", torch.Generator().manual_seed(2)
        )
        t = torch.tensor([500.0])
        out, aout = tr(
            hidden_states=lat,
            audio_hidden_states=audio,
            encoder_hidden_states=v,
            audio_encoder_hidden_states=a,
            timestep=t[:, None] * (1 - cmask),
            audio_timestep=t,
            sigma=t,
            encoder_attention_mask=amask,
            audio_encoder_attention_mask=amask,
            num_frames=f,
            height=h,
            width=w,
            fps=24.0,
            audio_num_frames=afr,
            video_coords=tr.rope.prepare_video_coords(1, f, h, w, "cpu", fps=24.0),
            audio_coords=tr.audio_rope.prepare_audio_coords(1, afr, "cpu"),
            return_dict=False,
        )
        return out.pow(2).mean()

    return pipe, tr, gen, {"vae latent (frame-0 replacement)": loss}


# ---------------------------------------------------------------- HunyuanVideo 1.5 I2V
def hunyuan15():
    from diffusers import (
        AutoencoderKLHunyuanVideo15,
        ClassifierFreeGuidance,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideo15ImageToVideoPipeline,
        HunyuanVideo15Transformer3DModel,
    )
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    tr = HunyuanVideo15Transformer3DModel(
        in_channels=9,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=1,
        num_refiner_layers=1,
        mlp_ratio=2.0,
        text_embed_dim=16,
        text_embed_2_dim=32,
        image_embed_dim=12,
        rope_axes_dim=(2, 2, 4),
        target_size=SIZE,
        task_type="i2v",
    )
    vae = AutoencoderKLHunyuanVideo15(
        latent_channels=4,
        block_out_channels=(16, 16),
        layers_per_block=1,
        spatial_compression_ratio=4,
        temporal_compression_ratio=2,
        downsample_match_channel=False,
        upsample_match_channel=False,
    )
    enc = SiglipVisionModel(
        SiglipVisionConfig(
            hidden_size=12,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=28,
            patch_size=14,
        )
    )
    proc = SiglipImageProcessor(size={"height": 28, "width": 28})
    pipe = HunyuanVideo15ImageToVideoPipeline(
        text_encoder=None,
        tokenizer=None,
        transformer=tr,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0),
        text_encoder_2=None,
        tokenizer_2=None,
        guider=ClassifierFreeGuidance(guidance_scale=6.0),
        image_encoder=enc,
        feature_extractor=proc,
    )
    e1, e2 = torch.randn(1, 6, 16), torch.randn(1, 5, 32)
    m1, m2 = torch.ones(1, 6), torch.ones(1, 5)
    kw = dict(
        prompt_embeds=e1,
        prompt_embeds_mask=m1,
        prompt_embeds_2=e2,
        prompt_embeds_mask_2=m2,
        negative_prompt_embeds=e1 * 0,
        negative_prompt_embeds_mask=m1,
        negative_prompt_embeds_2=e2 * 0,
        negative_prompt_embeds_mask_2=m2,
    )

    def gen(x):  # the pipeline needs a PIL photo (image.size, PIL resize/crop)
        return pipe(
            image=to_pil(x), num_frames=9, num_inference_steps=2, output_type="pt", **kw
        ).frames

    def parts(x, vae_on=True, enc_on=True):
        lat = vae.encode((x * 2 - 1).unsqueeze(2)).latent_dist.mode() * vae.config.scaling_factor
        lat = lat if vae_on else lat.detach()
        f = (9 - 1) // 2 + 1
        cond = torch.cat([lat, torch.zeros_like(lat).repeat(1, 1, f - 1, 1, 1)], 2)
        mask = torch.zeros(1, 1, f, *lat.shape[-2:])
        mask[:, :, 0] = 1
        noise = torch.randn(1, 4, f, *lat.shape[-2:], generator=torch.Generator().manual_seed(1))
        pix = F.interpolate(x, size=(28, 28), mode="bicubic", align_corners=False)
        img = enc(pixel_values=(pix - 0.5) / 0.5).last_hidden_state  # torch SigLIP preprocessing
        img = img if enc_on else img.detach()
        out = tr(
            hidden_states=torch.cat([noise, cond, mask], 1),
            timestep=torch.tensor([500.0]),
            encoder_hidden_states=e1,
            encoder_attention_mask=m1,
            encoder_hidden_states_2=e2,
            encoder_attention_mask_2=m2,
            image_embeds=img,
            return_dict=False,
        )[0]
        return out.pow(2).mean()

    return pipe, tr, gen, two_roads(parts, "SigLIP")
