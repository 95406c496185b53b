"""Q-Align-style quality score (Wu et al., arXiv 2312.17090) over a local vision-language model.

Q-Align asks a multimodal LLM "How would you rate the quality of this image?", lets it begin the
answer "The quality of the image is", and reads its next-token probabilities of the five rating
words; the score is their softmax-weighted level: ``sum_i p_i w_i`` over ("excellent", "good",
"fair", "poor", "bad") with ``w = (1, 0.75, 0.5, 0.25, 0)``. Anti-I2V reports it on frames and
videos (0.793 clean -> 0.378 protected, a 0..1 scale), so this score is on 0..1 too (Q-Align's own
1..5 scale is ``1 + 4 * score``). The image is padded to a square with its mean colour and resized,
as Q-Align does, in torch: the score is differentiable in the image.

What is faithful and what is not: the prompt, the rating words and weights, the pad-to-square
preprocessing and the scoring rule are Q-Align's. The network is NOT: the released Q-Align weights
are mPLUG-Owl2 (a visual abstractor and a modality-adaptive LLaMA) that transformers has no class for,
and they are not ported here. This module loads a transformers ``LlavaForConditionalGeneration``
folder (``config.json`` with ``model_type: llava``, safetensors weights, its tokenizer files) and
applies the Q-Align rule to it. Its numbers are "Q-Align-style with <that model>", not the paper's
Q-Align, and the bench labels them so. A faithful Q-Align needs an mPLUG-Owl2 port (not done).

Supplied by ``--qalign DIR`` or ``STILLGUARD_QALIGN``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ModelError
from . import _folder, _prep

KIND, WHAT = "qalign", "Q-Align-style scorer (a LLaVA vision-language model)"
LEVELS = ("excellent", "good", "fair", "poor", "bad")
WEIGHTS = (1.0, 0.75, 0.5, 0.25, 0.0)
PROMPT = ("USER: {image}How would you rate the quality of this image?\nASSISTANT: The quality of "
          "the image is")  # fmt: skip


class QAlign:
    """``QAlign.from_folder(dir)(x) -> (B,)`` quality in [0, 1] (1 = "excellent").

    Shape:
        ``x``: ``(B, 3, H, W)`` in [0, 1] -> ``(B,)``.
    """

    def __init__(
        self, model: torch.nn.Module, tokenizer: object, folder: Path | None = None
    ) -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenizer, self.folder = tokenizer, folder
        cfg = model.config
        vis = cfg.vision_config
        self.size = int(vis.image_size)
        n = (vis.image_size // vis.patch_size) ** 2
        self.n_image_tokens = n + (1 if cfg.vision_feature_select_strategy == "full" else 0)
        self.image_token_id = int(cfg.image_token_id)
        self.level_ids = [self._first_id(w) for w in LEVELS]
        if len(set(self.level_ids)) != len(LEVELS):
            raise ModelError(f"--{KIND}: the tokenizer does not tell the five rating words apart")
        before, after = PROMPT.split("{image}")
        self.prefix = self._ids(before, special=True)
        self.suffix = self._ids(after, special=False)

    def _ids(self, text: str, special: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"]) if text else []

    def _first_id(self, word: str) -> int:
        ids = self._ids(word, special=False)
        if not ids:
            raise ModelError(f"--{KIND}: the tokenizer gives no token for {word!r}")
        return int(ids[0])

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str] | None = None, device: str = "cpu",
                    dtype: torch.dtype = torch.float32) -> QAlign:  # fmt: skip
        from transformers import AutoTokenizer, LlavaForConditionalGeneration

        path = _folder.resolve(KIND, folder, WHAT)
        mtype = _folder.read_config(path, WHAT, KIND).get("model_type")
        if mtype != "llava":
            raise ModelError(
                f"--{KIND} {path}: config.json has model_type {mtype!r}; this scorer loads a "
                "'llava' (LlavaForConditionalGeneration) folder (see stillguard.encoders.qalign)"
            )
        model = _folder.hf_load(LlavaForConditionalGeneration, path, KIND, WHAT, dtype)
        try:
            tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as err:
            raise ModelError(f"--{KIND} {path}: cannot load its tokenizer ({err})") from None
        return cls(model.to(device), tok, path)

    @classmethod
    def tiny(cls, seed: int = 0) -> QAlign:
        """A LLaVA of the same classes (CLIP vision tower, projector, Llama), tiny and random,
        with a word-level tokenizer that knows the prompt and the rating words."""
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import (
            CLIPVisionConfig,
            LlamaConfig,
            LlavaConfig,
            LlavaForConditionalGeneration,
            PreTrainedTokenizerFast,
        )

        words = sorted(
            set(re.findall(r"\w+|[^\w\s]+", PROMPT.replace("{image}", " "))) | set(LEVELS)
        )
        vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", "<image>", *words])}
        core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
        core.pre_tokenizer = pre_tokenizers.Whitespace()
        tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token="<s>",
                                      eos_token="</s>")  # fmt: skip
        torch.manual_seed(seed)
        vis = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=2, image_size=32, patch_size=8)  # fmt: skip
        txt = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                          num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2)  # fmt: skip
        cfg = LlavaConfig(vision_config=vis, text_config=txt, image_token_id=vocab["<image>"])
        return cls(LlavaForConditionalGeneration(cfg), tok)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        path = Path(folder)
        self.model.save_pretrained(str(path), safe_serialization=True)
        self.tokenizer.save_pretrained(str(path))
        return path

    def _pixels(self, x: Tensor) -> Tensor:
        """Pad to a square with the image's mean colour, resize, CLIP-normalise (Q-Align's way)."""
        _prep.check(x)
        h, w = x.shape[-2:]
        d = max(h, w)
        top, left = (d - h) // 2, (d - w) // 2
        mean = x.mean(dim=(2, 3), keepdim=True)
        canvas = mean.expand(x.shape[0], 3, d, d)
        sq = canvas + F.pad(x - mean, (left, d - w - left, top, d - h - top))
        return _prep.normalise(_prep.squash(sq, self.size), _prep.CLIP_MEAN, _prep.CLIP_STD)

    def level_probs(self, x: Tensor) -> Tensor:
        """Softmax over the five rating words at the answer's next token. Shape: -> ``(B, 5)``."""
        p = next(self.model.parameters())
        ids = self.prefix + [self.image_token_id] * self.n_image_tokens + self.suffix
        input_ids = torch.tensor([ids] * x.shape[0], device=p.device)
        logits = self.model(input_ids=input_ids, pixel_values=self._pixels(x).to(p)).logits
        return logits[:, -1, self.level_ids].float().softmax(-1)

    def __call__(self, x: Tensor) -> Tensor:
        probs = self.level_probs(x)
        return probs @ torch.tensor(WEIGHTS, dtype=probs.dtype, device=probs.device)
