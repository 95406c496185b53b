"""Open-Sora 1.2 as a folder: build, load (safetensors only) and save its three components.

Folder layout (diffusers-like, so the shared folder checks apply)::

    model_index.json           {"_class_name": "OpenSoraPipeline", "transformer": [...], ...}
    transformer/config.json    STDiT3Config fields (the official hub config.json works as is)
    transformer/model.safetensors   keys exactly as hpcai-tech/OpenSora-STDiT-v3
    vae/config.json            VideoAutoencoderPipeline config (official one works as is)
    vae/model.safetensors      keys exactly as hpcai-tech/OpenSora-VAE-v1.2
    scheduler/config.json      RFLOW settings

so a user copies the two official hub repositories into ``transformer/`` and ``vae/`` and adds a
``model_index.json`` (see :data:`MODEL_INDEX`). Nothing here reads pickles or runs remote code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...errors import ModelError
from .nets.stdit3 import STDiT3, STDiT3Config
from .nets.vae import VideoAutoencoderPipeline, VideoVAEConfig
from .rflow import RFlowConfig

MODEL_INDEX = {
    "_class_name": "OpenSoraPipeline",
    "_source": "stillguard layout for hpcai-tech/OpenSora-STDiT-v3 + OpenSora-VAE-v1.2",
    "transformer": ["stillguard", "STDiT3"],
    "vae": ["stillguard", "VideoAutoencoderPipeline"],
    "scheduler": ["stillguard", "RFLOW"],
}
WEIGHTS = "model.safetensors"


@dataclass
class OpenSoraPipeline:
    """The three components; ``transformer`` and ``vae`` are ``nn.Module`` s."""

    transformer: STDiT3
    vae: VideoAutoencoderPipeline
    scheduler: RFlowConfig

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> OpenSoraPipeline:
        self.transformer.to(device=device, dtype=dtype)
        self.vae.to(device=device, dtype=dtype)
        # the normalisation constants and RoPE frequencies stay float32 (as in the checkpoint)
        self.vae.scale.data, self.vae.shift.data = self.vae.scale.float(), self.vae.shift.float()
        self.transformer.rope.freqs.data = self.transformer.rope.freqs.float()
        return self


def build(
    stdit: STDiT3Config, vae: VideoVAEConfig, scheduler: RFlowConfig, device: Any = "cpu"
) -> OpenSoraPipeline:
    """Random-weight components (nothing allocated on ``device="meta"``)."""
    with torch.device(device):
        return OpenSoraPipeline(STDiT3(stdit), VideoAutoencoderPipeline(vae), scheduler)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot read {path}: {err}; the Open-Sora folder is incomplete") from err
    if not isinstance(data, dict):
        raise ModelError(f"{path} must hold a JSON object")
    return data


def read_configs(folder: Path) -> tuple[STDiT3Config, VideoVAEConfig, RFlowConfig]:
    """The three component configs of a folder (scheduler: v1.2 defaults when absent)."""
    stdit = STDiT3Config.from_dict(_json(folder / "transformer" / "config.json"))
    vae = VideoVAEConfig.from_dict(_json(folder / "vae" / "config.json"))
    sched_file = folder / "scheduler" / "config.json"
    sched = RFlowConfig.from_dict(_json(sched_file)) if sched_file.is_file() else RFlowConfig()
    return stdit, vae, sched


def load(folder: Path, device: Any, dtype: torch.dtype) -> OpenSoraPipeline:
    """Build on the meta device, then load both safetensors files with ``strict=True``."""
    return load_parts(
        folder / "transformer", folder / "vae", read_configs(folder)[2], device, dtype
    )


def load_parts(
    transformer: Path, vae: Path, scheduler: RFlowConfig, device: Any, dtype: torch.dtype
) -> OpenSoraPipeline:
    """Load the two official weight folders (each ``config.json`` + ``model.safetensors``)."""
    from safetensors.torch import load_file

    pipe = OpenSoraPipeline(
        *_on_meta(
            STDiT3Config.from_dict(_json(transformer / "config.json")),
            VideoVAEConfig.from_dict(_json(vae / "config.json")),
        ),
        scheduler,
    )
    for name, folder, module in (
        ("transformer", transformer, pipe.transformer),
        ("vae", vae, pipe.vae),
    ):
        file = folder / WEIGHTS
        if not file.is_file():
            raise ModelError(
                f"{file} is missing: put the official {name} weights ({HUB[name]}) there"
            )
        state = load_file(str(file), device=str(device))
        try:
            module.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as err:
            raise ModelError(f"{file} does not match the Open-Sora 1.2 {name}: {err}") from err
    return pipe.to(device, dtype)


def _on_meta(stdit: STDiT3Config, vae: VideoVAEConfig) -> tuple[STDiT3, VideoAutoencoderPipeline]:
    with torch.device("meta"):
        return STDiT3(stdit), VideoAutoencoderPipeline(vae)


#: the official weight repositories
HUB = {"transformer": "hpcai-tech/OpenSora-STDiT-v3", "vae": "hpcai-tech/OpenSora-VAE-v1.2"}


def load_from_hub_cache(device: Any, dtype: torch.dtype) -> OpenSoraPipeline:
    """Both official repositories from the local Hugging Face cache (``local_files_only``: no
    download; only ``*.json`` and ``*.safetensors`` are looked at)."""
    from huggingface_hub import snapshot_download

    dirs = {}
    for name, repo in HUB.items():
        try:
            dirs[name] = Path(
                snapshot_download(
                    repo, local_files_only=True, allow_patterns=["*.json", "*.safetensors"]
                )
            )
        except Exception as err:  # noqa: BLE001 - any cache miss means the same to the user
            raise ModelError(
                f"{repo} is not in the local Hugging Face cache ({type(err).__name__}): download "
                f"it first (huggingface-cli download {HUB['transformer']} and {HUB['vae']}), or "
                "pass a local folder (transformer/, vae/, model_index.json)"
            ) from err
    return load_parts(dirs["transformer"], dirs["vae"], RFlowConfig(), device, dtype)


def save(pipe: OpenSoraPipeline, folder: Path) -> None:
    """Write the folder layout above (safetensors, configs)."""
    from safetensors.torch import save_file

    for name, module, cfg in (
        ("transformer", pipe.transformer, pipe.transformer.config.to_dict()),
        ("vae", pipe.vae, pipe.vae.config.to_dict()),
    ):
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        save_file(state, str(folder / name / WEIGHTS))
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "config.json").write_text(
        json.dumps(pipe.scheduler.to_dict(), indent=2) + "\n"
    )
    (folder / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2) + "\n")


#: v1.2's inference config appends the aesthetic score ``aes = 6.5`` to every prompt
AES = 6.5


def embed_prompt(
    folder: Path, prompt: str, max_length: int, device: Any, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """T5 features ``(1, max_length, D)`` and mask ``(1, max_length)`` of ``prompt``, as v1.2.

    Uses ``folder/tokenizer`` and ``folder/text_encoder`` (T5-v1.1-XXL in the real model,
    safetensors only), padding to ``max_length`` (300) with the attention mask, special tokens
    added, after appending `` aesthetic score: 6.5.`` as ``append_score_to_prompts`` does. v1.2 also
    runs PixArt's ``clean_caption`` (URL/HTML/punctuation cleanup, lower case); we only lower-case
    and strip, so pass a plain prompt. T5 is loaded, used once without grad, and dropped.
    """
    if not ((folder / "text_encoder").is_dir() and (folder / "tokenizer").is_dir()):
        raise ModelError(
            f"{folder} has no text_encoder/ and tokenizer/ to embed the prompt {prompt!r}: add "
            "T5 (DeepFloyd/t5-v1_1-xxl, safetensors) there, or pass prompt_embeds= and "
            "prompt_mask=, or save prompt_embeds.safetensors in the folder"
        )
    from transformers import AutoTokenizer, T5EncoderModel

    try:
        tok = AutoTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
        t5 = T5EncoderModel.from_pretrained(
            str(folder / "text_encoder"), dtype=dtype, use_safetensors=True, local_files_only=True
        ).to(device)
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load the T5 text encoder of {folder}: {err}") from err
    text = f"{prompt.lower().strip()} aesthetic score: {AES:.1f}."
    ids = tok(
        [text], max_length=max_length, padding="max_length", truncation=True,
        return_attention_mask=True, add_special_tokens=True, return_tensors="pt",
    )  # fmt: skip
    with torch.no_grad():
        mask = ids["attention_mask"].to(device)
        y = t5(input_ids=ids["input_ids"].to(device), attention_mask=mask)["last_hidden_state"]
    return y, mask
