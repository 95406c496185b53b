"""Perturbation spaces: where the protection loop takes its sign-gradient steps.

A space owns the optimisation variable ``param`` in its own units and maps it to a perturbed image.
Whatever the space, :meth:`Space.to_image` always returns an image inside the RGB L-infinity box
``clamp(x + clamp(x' - x, -eps, eps), 0, 1)``, so ``eps`` (RGB, ``[0, 1]`` units) is the one budget
a user can rely on. Each space also has its own budget (``eps`` for ``rgb``, ``eps_ab`` for ``lab``,
``eps_coef`` for ``dct``); ``step(frac=...)`` moves by ``frac`` times that own budget.

* ``rgb``  -- plain PGD in pixels (Madry et al., arXiv 1706.06083).
* ``lab``  -- perturb only the chrominance a*, b* of CIE L*a*b* (kornia's differentiable
  conversion), leaving lightness L* untouched; the Lab stage of Anti-I2V's Dual-Space Perturbation
  (arXiv 2603.24570).
* ``dct``  -- perturb low-frequency DCT coefficients (u + v < keep) of 8x8 blocks; the frequency
  stage of Anti-I2V's Dual-Space Perturbation.
* ``dual`` -- both, updated alternately, composed and clipped into the RGB box (Anti-I2V's
  Dual-Space Perturbation; what is the paper's and what is ours is listed on :class:`Dual`).

Choices where the papers are silent (Anti-I2V publishes no code nor per-space budgets):

* ``eps_ab`` default ``None`` = ``128 * eps`` (4.0 Lab units for 8/255). Measured on random colours
  (float64, 64x64, worst corner ``(+-e, +-e)`` of the a*b* square), the largest RGB change per pixel
  has median 7/255 at e=2 and 15/255 at e=4; 44% of pixels can reach the 8/255 box at e=2, 92% at
  e=4. So 4.0 lets nearly every pixel reach the box; on colour-sensitive (dark, saturated) pixels
  the box, not eps_ab, is the binding limit.
* ``dct`` works on 8x8 blocks of the **RGB** channels by default (option ``color="ycbcr"``): 8x8 is
  JPEG's own grid, so low-frequency block coefficients are the ones JPEG quantises least and the
  perturbation lives where JPEG cannot remove it; the full-image DCT is ``block=None`` (then pick a
  larger ``keep``). ``keep=4`` frees 10 of a block's 64 coefficients (``u + v < keep``). Images whose
  sides are not multiples of the block are handled by a padded coefficient grid, cropped after the
  inverse DCT (so only the last partial blocks leak outside the mask).
* ``eps_coef`` default ``None`` = ``eps * sqrt(bh * bw)``: the DC value that shifts a whole block by
  exactly ``eps`` (0.251 for 8x8 and 8/255).
* ``project`` also shrinks the space's own perturbation until it fits the RGB box (per pixel for
  ``lab``, including the ``[0, 1]`` gamut, by three fixed-point rounds since lab -> rgb is
  nonlinear; per block for ``dct``, box only, exact since the DCT is linear), so the parameter does
  not drift where the final clamp would zero its gradient. ``to_image`` still clamps, so the box
  holds whatever ``param`` is.
* random starts are drawn on the generator's own device in float64, then moved to ``x``: a CPU
  generator can drive a GPU run, and the start does not depend on ``x``'s dtype.
"""

from __future__ import annotations

from . import dct, dual, lab, rgb  # noqa: F401  (registers the spaces)
from .base import Space, rgb_box
from .dct import Dct, block_dct, dct_matrix
from .dual import Dual
from .lab import Lab
from .rgb import Rgb

__all__ = ["Dct", "Dual", "Lab", "Rgb", "Space", "block_dct", "dct_matrix", "rgb_box"]
