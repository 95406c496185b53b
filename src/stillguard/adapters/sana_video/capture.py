"""Layer names and capture of the ``sana-video-i2v`` adapter (a mixin): the attention map that
SANA-Video's **linear** self-attention implies.

``SanaLinearAttnProcessor3_0`` has no softmax and never forms an N×N map. With ``φ = ReLU`` on the
QK-normed projections and ``R`` the interleaved 3D RoPE (applied to ``φ(q)``, ``φ(k)`` in the
numerator only), token ``i`` of a head outputs

    ``o_i = Σ_j A_ij v_j``,   ``A_ij = ⟨R φ(q_i), R φ(k_j)⟩ / (Σ_j' ⟨φ(q_i), φ(k_j')⟩ + 1e-15)``.

Vid-Freeze's loss (arXiv 2509.23279) is defined on softmax attention probabilities (rows summing
to 1, smallest when uniform). **Using it on linear attention is our extension beyond the paper**,
and "attention map" means, by the setting ``linear_map``:

* ``"kernel"`` (default): ``P_ij = ⟨φ(q_i), φ(k_j)⟩ / (Σ_j' ⟨φ(q_i), φ(k_j')⟩ + 1e-15)``, the
  row-normalised kernel map: the model's own normaliser, rows summing to 1 (0 for a query whose
  ReLU features are all 0, which attends to nothing), entries ≥ 0, so Vid-Freeze's floor and
  optimum (uniform rows) keep their meaning. It is the implied map with the RoPE left out:
  ``P·V`` is the processor's output without RoPE, exactly;
* ``"implied"``: ``A`` itself, the exact linear operator of the layer: ``A·V`` is the processor's
  output (before ``to_out``), exactly. RoPE in the numerator only makes its rows sum to
  ``Σ_j ⟨Rφ(q_i), Rφ(k_j)⟩ / Σ_j ⟨φ(q_i), φ(k_j)⟩`` (not 1) and lets entries go negative, so
  the Frobenius loss can also fall by cancellation, not only by spreading the attention.

``tests/test_adapter_sana_video.py`` checks both identities on the tiny model. The modes:
``exact`` forms every row (``B × heads × N × N``; at 480×832×81, N = 21·30·52 = 32,760: tiny
models only); ``sampled`` forms ``max_queries`` exact rows against all keys (the normaliser uses
all keys); ``pooled`` uses the per-latent-frame means of ``φ(q)`` and ``φ(k)`` (rotated ones in the
numerator for ``"implied"``): because the kernel is bilinear this is **exact** aggregation, not an
estimate as with softmax: entry ``(f, g)`` is the key-frame-``g`` sum of the rows of frame ``f``,
averaged over its queries weighted by their normalisers ``Σ_j ⟨φ(q_i), φ(k_j)⟩``. Maps are
``(B, heads, Q, N)`` over the video tokens only (Gemma enters through ``attn2``, a softmax
cross-attention not recorded): layout ``{"text": 0, "frames": F_lat, "per_frame": h/2·w/2}``.

The stock processor computes the output (bit-identical); the recording processor keeps its
``rotary_emb`` keyword (``Attention.forward`` drops keywords a processor does not declare).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._shared.capture import (
    CaptureOptions,
    Capturing,
    capture_stock,
    frames_hook,
    joint_layer_names,
)
from .._shared.processors import StockOutputProcessor, interleaved_rope
from .._shared.recorder import own_saved_tensors

LINEAR_MAPS = ("kernel", "implied")


def features(attn: Any, hidden: Tensor, rope: tuple[Tensor, Tensor] | None) -> tuple[Tensor, ...]:
    """``φ(q)``, ``φ(k)`` and their rotated copies, as the stock processor forms them; float32
    ``(B, heads, N, d)``. Without ``rope`` the rotated copies are the plain ones."""
    q, k = attn.to_q(hidden), attn.to_k(hidden)
    q = q if attn.norm_q is None else attn.norm_q(q)
    k = k if attn.norm_k is None else attn.norm_k(k)
    q = F.relu(q.unflatten(2, (attn.heads, -1)))
    k = F.relu(k.unflatten(2, (attn.heads, -1)))
    qr, kr = (q, k) if rope is None else (interleaved_rope(q, *rope), interleaved_rope(k, *rope))
    return tuple(t.transpose(1, 2).float() for t in (q, k, qr, kr))


def linear_map(
    q: Tensor, k: Tensor, qr: Tensor, kr: Tensor, implied: bool, rows: Tensor | None = None
) -> Tensor:
    """The map of the module docstring for query ``rows`` (all when ``None``).

    Shape: features ``(B, heads, N, d)`` -> ``(B, heads, Q, N)`` (float32).
    """
    if rows is not None:
        q, qr = q[:, :, rows], qr[:, :, rows]
    den = q @ k.sum(2, keepdim=True).transpose(-1, -2) + 1e-15  # (B, heads, Q, 1)
    num = qr @ kr.transpose(-1, -2) if implied else q @ k.transpose(-1, -2)
    return num / den


def pooled_map(q: Tensor, k: Tensor, qr: Tensor, kr: Tensor, implied: bool, frames: int) -> Tensor:
    """The frame-aggregated map (exact for a bilinear kernel). Shape -> ``(B, heads, F, F)``."""

    def pool(t: Tensor) -> Tensor:
        return t.unflatten(2, (frames, -1)).mean(3)

    return linear_map(pool(q), pool(k), pool(qr), pool(kr), implied)


class RecordingSanaLinearProcessor(StockOutputProcessor):
    """``SanaLinearAttnProcessor3_0`` plus recording of its implied map (see the module docstring)."""

    def __init__(self, recorder: Any, name: str, stock: Any, implied: bool) -> None:
        super().__init__(recorder, name, stock)
        self.implied = implied

    def __call__(
        self,
        attn: Any,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        rotary_emb: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        if self.recorder.active:
            with own_saved_tensors():
                self._record(attn, hidden_states, None, None, rotary_emb)
        return self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)

    def _record(self, attn: Any, hidden: Tensor, _ctx: Any, _mask: Any, rope: Any) -> None:
        rec = self.recorder
        n = hidden.shape[1]
        frames = rec.context.get("token_frames", 1)
        q, k, qr, kr = features(attn, hidden, rope)
        if rec.mode == "pooled":
            probs = pooled_map(q, k, qr, kr, self.implied, frames)
            rows = torch.arange(frames, device=hidden.device)
            layout = {"text": 0, "frames": frames, "per_frame": 1}
        else:
            rows = rec.rows(n, hidden.device) if rec.mode == "sampled" else None
            probs = linear_map(q, k, qr, kr, self.implied, rows)
            rows = torch.arange(n, device=hidden.device) if rows is None else rows
            layout = {"text": 0, "frames": frames, "per_frame": n // frames}
        rec.add_attention(self.name, probs.to(hidden.dtype), rows, layout)


class SanaCapture(Capturing):
    """``layer_names`` and ``capture`` of :class:`~.adapter.SanaVideoI2V` (needs ``self.pipe``)."""

    pipe: Any
    registry_name: str
    linear_map: str

    def layer_names(self, kind: str) -> list[str]:
        what = "linear spatio-temporal video self-attention"
        return joint_layer_names(self, kind, "transformer_blocks", "attn1", what)

    def _capture(
        self, hidden: Sequence[str], attention: Sequence[str], options: CaptureOptions
    ) -> Any:
        """Record block outputs ``(B, N, D)`` and the implied maps of ``attn1``."""
        from diffusers.models.transformers.transformer_sana_video import SanaLinearAttnProcessor3_0

        tr = self.pipe.transformer
        p_t = tr.config.patch_size[0]
        implied = self.linear_map == "implied"
        return capture_stock(
            self,
            tr,
            hidden,
            attention,
            options,
            stock=SanaLinearAttnProcessor3_0,
            make=lambda rec, n, m: RecordingSanaLinearProcessor(rec, n, m.processor, implied),
            hooks=lambda rec: [(tr, frames_hook(rec, axis=2, patch=p_t))],
        )
