"""Probe: build every component of the new shipped config folders on the meta device and count
parameters (no weights, no network).

Run: PYTHONPATH=src python scripts/probes/config_sizes.py [folder ...]

Each model component of ``adapters/configs/<folder>`` is built through the class its
``model_index.json`` names, under ``torch.device("meta")``; schedulers and guiders are built
from their config to prove the config is accepted. Components whose library is a diffusers
pipeline package (LTX-2's ``["ltx2", "LTX2TextConnectors"]``) are looked up in
``diffusers.pipelines.<library>``. Tokenizers, processors and the Cosmos guardrail have no
weights here and are listed as skipped. Prints one line per component and the sum.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import warnings
from pathlib import Path

import torch

from stillguard.adapters._tiny import build_model
from stillguard.adapters.official import configs_root

NEW = (
    "ltx-2-19b",
    "hunyuan-video-1.5-480p-i2v",
    "skyreels-v2-i2v-14b-540p",
    "skyreels-v2-i2v-1.3b-540p",
    "skyreels-v2-df-14b-540p",
    "skyreels-v2-df-1.3b-540p",
    "kandinsky-5.0-i2v-pro-sft-5s",
    "sana-video-2b-480p",
    "cosmos-predict2-2b-video2world",
)
FILES = ("config.json", "scheduler_config.json", "guider_config.json", "preprocessor_config.json")


def component_class(library: str, name: str) -> type | None:
    """diffusers/transformers classes, or a class of a diffusers pipeline package; None if absent."""
    for module in (library, f"diffusers.pipelines.{library}"):
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    return None


def count(module: torch.nn.Module) -> int:
    seen: set[int] = set()
    total = 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def sizes(folder: Path) -> list[tuple[str, str, str]]:
    """(component, class, parameters or what happened) for every entry of model_index.json."""
    index = json.loads((folder / "model_index.json").read_text())
    rows = []
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, list) or entry[0] is None:
            continue
        cls = component_class(*entry)
        files = [folder / name / f for f in FILES if (folder / name / f).is_file()]
        if not files:
            rows.append((name, entry[1], "skipped (no config: tokenizer/guardrail)"))
            continue
        if cls is None:
            rows.append((name, entry[1], f"class not found in {entry[0]}"))
            continue
        config = json.loads(files[0].read_text())
        if hasattr(cls, "set_timesteps") or files[0].name == "guider_config.json":
            cls.from_config(config)
            rows.append((name, entry[1], "config accepted"))
        elif files[0].name == "preprocessor_config.json":
            # a ProcessorMixin (SkyReels' CLIPProcessor) also needs its tokenizer: build the
            # image part the JSON names instead
            image_cls = component_class("transformers", config["image_processor_type"])
            image_cls.from_dict({k: v for k, v in config.items() if not k.startswith("_")})
            rows.append((name, entry[1], f"config accepted ({image_cls.__name__})"))
        else:
            start = time.perf_counter()
            model = build_model(cls, config, device="meta", dtype=torch.bfloat16)
            took = time.perf_counter() - start
            rows.append((name, entry[1], f"{count(model) / 1e9:8.4f} B params  ({took:.1f} s)"))
    return rows


def main(names: list[str]) -> None:
    warnings.filterwarnings("ignore")
    root = configs_root()
    for name in names or NEW:
        print(f"== {name}")
        for component, cls, what in sizes(root / name):
            print(f"  {component:18s} {cls:38s} {what}")


if __name__ == "__main__":
    main(sys.argv[1:])
