"""Probe: tiny random builds of the 2026 image-to-video pipelines of diffusers 0.42.1, offline.

Run: OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/probes/tiny_new_targets.py [name ...]
(names: ltx2 hunyuan15 skyreels skyreels-df kandinsky5 sana cosmos2)

For each pipeline: (1) build it from tiny random components (no hub: no tokenizer, no text
encoder; prompt embeddings of the right width are passed instead), (2) run a 2-step generation,
(3) run one differentiable forward from a photo ``x`` (1, 3, H, W) in [0, 1] to a loss
(mean square of the denoiser output) and report ``|d loss / d x|``, with the photo's latent
preparation redone in torch where the pipeline's own helper is not differentiable (PIL
preprocessing, ``torch.no_grad``), and (4) list the attention processor classes of the
transformer. Where the photo reaches the denoiser by two roads (VAE latent and an image
encoder), the gradient of each road alone is reported too (the other one detached).
Everything here is documentation of facts for docs/research/new-targets.md; nothing is a test.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from tiny_builds_a import hunyuan15, ltx2  # noqa: E402
from tiny_builds_b import skyreels, skyreels_df  # noqa: E402
from tiny_builds_c import cosmos2, kandinsky5, sana  # noqa: E402
from tiny_common import grad_norm, photo, processors, torchvision_shim  # noqa: E402

BUILDERS = {
    "ltx2": ltx2,
    "hunyuan15": hunyuan15,
    "skyreels": skyreels,
    "skyreels-df": skyreels_df,
    "kandinsky5": kandinsky5,
    "sana": sana,
    "cosmos2": cosmos2,
}


def main(names: list[str]) -> None:
    warnings.filterwarnings("ignore")
    from diffusers.utils import logging as dlog

    dlog.set_verbosity_error()
    dlog.disable_progress_bar()
    torchvision_shim()
    for name in names or BUILDERS:
        t0 = time.perf_counter()
        pipe, tr, gen, losses = BUILDERS[name]()
        pipe.set_progress_bar_config(disable=True)
        t1 = time.perf_counter()
        frames = gen(photo())
        t2 = time.perf_counter()
        print(
            f"== {name}: {type(pipe).__name__}; transformer {sum(p.numel() for p in tr.parameters())}"
            f" params; build {t1 - t0:.2f} s; 2-step generation {t2 - t1:.2f} s -> frames "
            f"{tuple(frames.shape)}"
        )
        for label, fn in losses.items():
            t3 = time.perf_counter()
            g = grad_norm(fn, photo())
            print(f"   grad |dL/dx|_1 via {label}: {g:.6e} ({time.perf_counter() - t3:.2f} s)")
        for mod, proc in processors(tr).items():
            print(f"   {mod}: {proc}")


if __name__ == "__main__":
    main(sys.argv[1:])
