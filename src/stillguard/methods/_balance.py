"""Per-term gradient balancing and the per-term diagnostic of multi-term losses (Anti-I2V).

The idea: a minimised loss ``sum_k w_k c_k`` made of terms ``c_k`` of unrelated scales lets the
term with the largest image-space gradient set the sign of every PGD step, whatever the paper
meant (measured on Anti-I2V with equal weights: the VAE anchor set 96-99 % of the signs). So at the
first ``balance_steps`` loss calls each term's gradient with respect to the candidate image is
computed on its own, and the weights become ``w_k = lambda_k / (n_g * mean_i ||grad c_k||_2)``
(the user's multiplier ``lambda_k`` over the term's mean gradient norm so far, shared among the
``n_g`` running parts of its group ``g``), then stay fixed for the rest of the run: every group
starts with the same gradient norm (times ``lambda``), split equally among its parts. A group is
one item of the paper's total (Anti-I2V: IRC, IRA = denoiser + VAE parts, aux = CLIP + LPIPS,
-L_DM), so a term the paper writes as a sum of parts is not counted once per part. This is plain
gradient-norm balancing; the papers give no weights.

The diagnostic, at the balancing calls and then every ``every`` calls, records per term:
    * ``share``: ``||w_k g_k||_2 / sum_j ||w_j g_j||_2``, its part of the step's gradient norm;
    * ``agree``: the fraction of pixels where ``sign(w_k g_k)`` equals the sign of the total
      ``G = sum_j w_j g_j`` (pixels where either is exactly 0 are left out): 1 means the term
      points where the step goes, 0.5 is chance; left out of the log (``None`` in the report)
      when the term's gradient is 0 on every pixel (it does not steer at all; its share says 0). Measured on the gradient with respect to the
      *image*; a non-RGB space maps it linearly to its own parameter before taking signs.

On a diagnostic call the returned loss is a surrogate with the true value and gradient ``G``
(``value + <x, G> - <x, G>.detach()``), so the per-term gradients are not computed twice.
With independent terms of equal norm, one term's expected sign agreement with the sum of ``n`` is
``1/2 + arcsin(1/sqrt(n))/pi`` (0.67 for 4 terms, 0.65 for 5): the ideal for a balanced loss; a
part of a group (half its group's norm) expects less (0.60 for one of two halves among 3 groups).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

BALANCE_MODES = ("grad-norm", "none")


@dataclass
class TermBalance:
    """The weights and the diagnostic of one image's run (kept in the method's state).

    Args:
        multipliers: ``lambda_k`` per term name (terms not named get 1).
        groups: term name -> its group (a term not named is a group of its own).
        mode: ``"grad-norm"`` (balance at the first calls) or ``"none"`` (``w_k = lambda_k``).
        balance_steps: loss calls that estimate the gradient norms (>= 1).
        every: diagnose every ``every`` calls after those (0: never again).
    """

    multipliers: dict[str, float]
    groups: dict[str, str] = field(default_factory=dict)
    mode: str = "grad-norm"
    balance_steps: int = 5
    every: int = 10
    calls: int = 0
    norms: dict[str, list[float]] = field(default_factory=dict)
    diag: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    diag_calls: list[int] = field(default_factory=list)

    def weight(self, name: str) -> float:
        """``w_k`` now: ``lambda_k`` over the group size and the mean gradient norm seen so far
        (or ``lambda_k``)."""
        lam = float(self.multipliers.get(name, 1.0))
        seen = self.norms.get(name)
        if self.mode == "none" or not seen:
            return lam
        group = self.groups.get(name, name)
        size = sum(1 for k in self.multipliers if self.groups.get(k, k) == group)
        return lam / (size * max(sum(seen) / len(seen), 1e-30))

    def weights(self) -> dict[str, float]:
        return {k: self.weight(k) for k in self.multipliers}

    def diagnose_now(self) -> bool:
        """Whether this call computes per-term gradients (balancing or diagnostic call)."""
        i = self.calls
        if self.mode == "grad-norm" and i < self.balance_steps:
            return True
        return (
            bool(self.every)
            and i >= self.balance_steps
            and (i - self.balance_steps) % self.every == 0
        )

    def combine(self, terms: dict[str, Tensor], x: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The weighted total of the (minimised) ``terms`` and the diagnostic entries of this call.

        ``terms`` maps a name to its contribution ``c_k`` (already signed: a maximised quantity
        enters negated); ``x`` is the leaf the loop differentiates with respect to.

        Returns:
            ``(loss, log)``: a 0-dim loss whose gradient is ``sum_k w_k grad c_k`` and the
            ``share.<k>``/``agree.<k>``/``weight.<k>`` entries (empty on a plain call).
        """
        diagnose = self.diagnose_now() and x.requires_grad
        self.calls += 1
        if not diagnose:
            total = sum(self.weight(k) * v for k, v in terms.items())
            return torch.as_tensor(total), {}
        names = list(terms)
        grads = {}
        for i, k in enumerate(names):
            (g,) = torch.autograd.grad(
                terms[k], x, retain_graph=i < len(names) - 1, allow_unused=True
            )
            grads[k] = torch.zeros_like(x) if g is None else g.detach()
        if self.mode == "grad-norm" and self.calls <= self.balance_steps:
            for k in names:
                self.norms.setdefault(k, []).append(float(grads[k].float().norm()))
        w = {k: self.weight(k) for k in names}
        parts = {k: w[k] * grads[k] for k in names}
        total_grad = sum(parts.values())
        value = sum(w[k] * float(terms[k].detach()) for k in names)
        norms = {k: float(p.float().norm()) for k, p in parts.items()}
        norm_sum = sum(norms.values()) or 1.0
        log: dict[str, float] = {}
        sign_total = total_grad.sign()
        for k in names:
            s = parts[k].sign()
            both = (s != 0) & (sign_total != 0)
            agree = float((s == sign_total)[both].float().mean()) if both.any() else math.nan
            share = norms[k] / norm_sum
            log[f"share.{k}"], log[f"weight.{k}"] = share, w[k]
            if not math.isnan(agree):  # a term with no gradient on the image has no sign to agree
                log[f"agree.{k}"] = agree
            self.diag.setdefault(k, {"share": [], "agree": []})
            self.diag[k]["share"].append(share)
            self.diag[k]["agree"].append(agree)
        self.diag_calls.append(self.calls - 1)
        inner = (x * total_grad.to(x.dtype)).sum()
        return inner - inner.detach() + value, log

    def report(self) -> dict[str, object]:
        """JSON-able summary for the sidecar: weights in use and the mean diagnostic per term."""
        out: dict[str, object] = {
            "balance": self.mode,
            "balance_steps": self.balance_steps if self.mode == "grad-norm" else 0,
            "multipliers": dict(self.multipliers),
            "groups": {k: self.groups.get(k, k) for k in self.multipliers},
            "weights": self.weights(),
            "diagnostic_calls": list(self.diag_calls),
        }
        per_term = {}
        for k, d in self.diag.items():
            agree = [a for a in d["agree"] if not math.isnan(a)]
            per_term[k] = {
                "share": sum(d["share"]) / len(d["share"]),
                "agree": sum(agree) / len(agree) if agree else None,
                "agree_min": min(agree) if agree else None,
            }
        out["terms"] = per_term
        return out
