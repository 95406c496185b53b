"""The three training stages of the toy model: VAE, latent cache, transformer.

Each stage keeps its state in one file under the run folder, written atomically every few minutes,
so an interrupted run resumes where it stopped (``--resume``). Budgets are minutes of training-loop
wall time; the learning-rate schedules follow the fraction of the budget used, as in the feasibility
study (VAE: cosine to 10 %; transformer: 200-step warm-up then cosine to 5 %, EMA 0.999 is exported).

Training choices not dictated by a paper: VAE loss L1 + MSE + 1e-4 KL (per latent element), on clips
of 1, 3, 3, 9 frames in turn (see ``CLIP_SCHEDULE``) of *widened* videos (``VAE_SCENES``: any hue,
saturation and gamma, 30 % any-colour noise scenes) so that it also encodes natural photos; the image
latent used for conditioning is a *posterior sample* of the separately encoded frame 0 (the pipeline
samples it the same way), plus light noise augmentation ``0.02 * U(0, 1) * N(0, 1)``; video latents
are posterior means; the VAE ``scaling_factor`` is set to ``1 / std`` of the cached video latents.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from stillguard.toy import build
from stillguard.toy.training.checkpoints import load_checkpoint, log_progress, save_checkpoint
from stillguard.toy.training.data import (
    STREAM_LATENTS,
    STREAM_VAE,
    STREAM_VALIDATION,
    VAE_SCENES,
    make_videos,
)
from stillguard.toy.training.ema_loop import train_with_ema

logger = logging.getLogger(__name__)

#: VAE training (clip length, batch size), cycled step by step: the encoder must handle 1-frame
#: inputs (the conditioning image) and 9-frame videos (the latent cache); the decoder decodes in
#: chunks of 2-3 latent frames anyway. Short clips make VAE steps much cheaper than 9-frame ones.
CLIP_SCHEDULE = ((1, 12), (3, 4), (3, 4), (9, 2))


@dataclass
class Settings:
    """Run settings (the CLI flags)."""

    out: Path
    seed: int = 0
    device: torch.device = torch.device("cpu")
    minutes_vae: float = 15.0
    minutes_transformer: float = 45.0
    vae_lr: float = 2e-3
    n_latents: int = 2500
    batch: int = 16
    lr: float = 1e-3
    checkpoint_minutes: float = 5.0
    resume: bool = False


def _to_vae(x: torch.Tensor) -> torch.Tensor:
    """``(B,F,3,H,W)`` in [0,1] -> the VAE's ``(B,3,F,H,W)`` in [-1,1]."""
    return x.permute(0, 2, 1, 3, 4).mul(2).sub(1).contiguous()


# ---------------------------------------------------------------------------------- stage 1
@torch.no_grad()
def _vae_psnr(vae, x: torch.Tensor) -> float:
    """Reconstruction PSNR (dB) of 9-frame videos in the VAE layout, posterior mean."""
    rec = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
    return 10 * math.log10(4 / ((rec - x).pow(2).mean().item() + 1e-12))


def train_vae(
    s: Settings,
    *,
    build_vae=None,
    clip_schedule: tuple[tuple[int, int], ...] = CLIP_SCHEDULE,
    final_validation: bool = False,
):
    """Train the video VAE on fresh synthetic videos (either toy family: ``build_vae`` builds it,
    default the CogVideoX toy's; ``clip_schedule`` as :data:`CLIP_SCHEDULE`; ``final_validation``
    logs one more validation when the budget ends).

    Returns:
        ``(vae, log)``: the VAE in eval mode on ``s.device`` and its progress log.
    """
    path = s.out / "vae_state.pt"
    torch.manual_seed(s.seed)
    vae = (build_vae or build.build_vae)().to(s.device)
    opt = torch.optim.AdamW(vae.parameters(), lr=s.vae_lr, weight_decay=0.0)
    gen = torch.Generator(s.device).manual_seed(s.seed)
    step, elapsed, log = 0, 0.0, []
    state = load_checkpoint(path, s)
    if state is not None:
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"].to(gen.get_state().device))
        step, elapsed, log = state["step"], state["elapsed"], state["log"]
    val = _to_vae(make_videos(s.seed, STREAM_VALIDATION, 0, 4)).to(s.device)
    val_wide = _to_vae(make_videos(s.seed, STREAM_VALIDATION, 100, 4, VAE_SCENES)).to(s.device)
    budget = s.minutes_vae * 60
    t0, s0, last_ck = time.time(), step, elapsed

    def checkpoint(done: bool) -> None:
        blob = {"model": vae.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state()}
        save_checkpoint(blob | {"step": step, "elapsed": elapsed, "log": log, "done": done}, path)

    done = state is not None and state.get("done", False)
    vae.train()
    while not done and elapsed < budget:
        start = time.time()
        for g in opt.param_groups:
            g["lr"] = s.vae_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * elapsed / budget)))
        n_frames, batch = clip_schedule[step % len(clip_schedule)]
        x = make_videos(s.seed, STREAM_VAE, step * 16, batch, VAE_SCENES)
        first = (step * 7) % (x.shape[1] - n_frames + 1)
        x = _to_vae(x[:, first : first + n_frames]).to(s.device)
        post = vae.encode(x).latent_dist
        z = post.sample(generator=gen)
        rec = vae.decode(z).sample
        loss = (
            (rec - x).abs().mean()
            + (rec - x).pow(2).mean()
            + 1e-4 * post.kl().mean() / z[0].numel()
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        elapsed += time.time() - start
        if step % 10 == 0:
            log_progress("vae", step, elapsed, budget, t0, s0, loss=loss.item())
        if step % 50 == 0:
            psnr, wide = _vae_psnr(vae, val), _vae_psnr(vae, val_wide)
            log.append({"step": step, "elapsed": elapsed, "loss": loss.item(), "val_psnr": psnr})
            log[-1]["val_psnr_wide"] = wide
            logger.info(
                "vae step %d: validation PSNR %.2f dB, widened data %.2f dB", step, psnr, wide
            )
        if elapsed - last_ck > s.checkpoint_minutes * 60:
            checkpoint(False)
            last_ck = elapsed
    if not done:
        if final_validation:
            psnr, wide = _vae_psnr(vae, val), _vae_psnr(vae, val_wide)
            log.append({"step": step, "elapsed": elapsed, "val_psnr": psnr, "val_psnr_wide": wide})
        checkpoint(True)
    logger.info("vae done: %d steps, %.1f min", step, elapsed / 60)
    return vae.eval().requires_grad_(False), log


# ---------------------------------------------------------------------------------- stage 2
@torch.no_grad()
def _encode(vae, s: Settings, stream: int, n: int) -> dict[str, torch.Tensor]:
    vid, img_mean, img_std = [], [], []
    for i in range(0, n, 32):
        x = _to_vae(make_videos(s.seed, stream, i, min(32, n - i))).to(s.device)
        vid.append(vae.encode(x).latent_dist.mode().cpu())
        post = vae.encode(x[:, :, :1]).latent_dist  # frame 0 alone, as the pipeline encodes it
        img_mean.append(post.mean.cpu())
        img_std.append(post.std.cpu())
    perm = (0, 2, 1, 3, 4)  # (B,C,F,h,w) -> the transformer's (B,F,C,h,w)
    return {
        "vid": torch.cat(vid).permute(perm).contiguous(),
        "img_mean": torch.cat(img_mean).permute(perm).contiguous(),
        "img_std": torch.cat(img_std).permute(perm).contiguous(),
    }


def encoded_videos(vae, s: Settings, encode=None) -> dict:
    """The training (``s.n_latents``) and validation (64) videos encoded once with
    ``encode(vae, s, stream, n)`` (default this toy's) and saved to ``latents.pt``; a resumed run
    with the same ``n_latents`` reads them back. Returns ``{"n", "train", "val"}``."""
    encode = encode or _encode
    path = s.out / "latents.pt"
    cache = load_checkpoint(path, s)
    if cache is None or cache["n"] != s.n_latents:
        t0 = time.time()
        cache = {
            "n": s.n_latents,
            "train": encode(vae, s, STREAM_LATENTS, s.n_latents),
            "val": encode(vae, s, STREAM_VALIDATION, 64),
        }
        save_checkpoint(cache, path)
        logger.info("cached %d latent videos in %.1f min", s.n_latents, (time.time() - t0) / 60)
    return cache


def cache_latents(vae, s: Settings) -> dict[str, dict[str, torch.Tensor]]:
    """Encode the training and validation videos once; sets the VAE's ``scaling_factor``."""
    cache = encoded_videos(vae, s)
    std = cache["train"]["vid"].std().item()
    vae.register_to_config(scaling_factor=1.0 / std)
    logger.info("latent std %.4f -> scaling_factor %.4f", std, 1.0 / std)
    return cache


# ---------------------------------------------------------------------------------- stage 3
def _batch(lat: dict, idx: torch.Tensor, scale: float, gen: torch.Generator, dev) -> tuple:
    """Scaled clean latents and the zero-padded conditioning, as the pipeline builds it."""
    z = lat["vid"][idx].to(dev) * scale
    mean, std = lat["img_mean"][idx].to(dev), lat["img_std"][idx].to(dev)
    img = mean + std * torch.randn(mean.shape, generator=gen, device=dev)
    b = img.shape[0]
    aug = torch.rand(b, 1, 1, 1, 1, generator=gen, device=dev)
    img = (img * scale) + 0.02 * aug * torch.randn(img.shape, generator=gen, device=dev)
    cond = torch.cat([img, torch.zeros_like(z[:, 1:])], 1)
    return z, cond


def _v_loss(model, sch, z, cond, t, eps, rope) -> torch.Tensor:
    txt = build.null_prompt().to(z.device).expand(z.shape[0], -1, -1)
    hidden = torch.cat([sch.add_noise(z, eps, t), cond], 2)
    pred = model(
        hidden_states=hidden, encoder_hidden_states=txt, timestep=t, image_rotary_emb=rope,
        return_dict=False,
    )[0]  # fmt: skip
    return F.mse_loss(pred, sch.get_velocity(z, eps, t))


@torch.no_grad()
def _validate(model, sch, lat: dict, scale: float, rope, s: Settings) -> float:
    gen = torch.Generator(s.device).manual_seed(1234)
    losses = []
    n = lat["vid"].shape[0]
    for i in range(0, n, 16):
        idx = torch.arange(i, min(i + 16, n))
        z, cond = _batch(lat, idx, scale, gen, s.device)
        t = torch.linspace(20, 980, len(idx), device=s.device).long()
        eps = torch.randn(z.shape, generator=gen, device=s.device)
        losses.append(_v_loss(model, sch, z, cond, t, eps, rope).item())
    return sum(losses) / len(losses)


def train_transformer(cache: dict, scale: float, s: Settings):
    """Train the I2V transformer on cached latents (v-prediction MSE; the shared loop of
    :mod:`.ema_loop`, 200-step warm-up).

    Returns:
        ``(ema, log)``: the EMA model in eval mode and the validation log.
    """
    sch, rope = build.build_scheduler(), build.rotary_embeddings(s.device)
    train, val = cache["train"], cache["val"]

    def step_loss(model, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        z, cond = _batch(train, idx, scale, gen, s.device)
        t = torch.randint(0, 1000, (s.batch,), generator=gen, device=s.device)
        eps = torch.randn(z.shape, generator=gen, device=s.device)
        return _v_loss(model, sch, z, cond, t, eps, rope)

    return train_with_ema(
        s, build.build_transformer, train["vid"].shape[0], step_loss,
        lambda ema: _validate(ema, sch, val, scale, rope, s),
        warmup_steps=200, log_every=100, metric="v-MSE",
    )  # fmt: skip
