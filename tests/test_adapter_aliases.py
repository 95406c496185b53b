"""The adapters' old public import paths keep working for one release: each imports, warns once
with a ``DeprecationWarning`` that names the new path (pointing at the importing line), and gives
the very objects of the new modules.

pytest's configuration ignores ``DeprecationWarning``; these tests record warnings explicitly.
"""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest

from stillguard.adapters import ADAPTERS

P = "stillguard.adapters"
#: old public module -> (a name it had, the new module that defines that name)
OLD = {
    f"{P}.cogvideox_i2v": ("CogVideoXI2V", f"{P}.cogvideox"),
    f"{P}.wan_i2v": ("WanI2V", f"{P}.wan"),
    f"{P}.ltx_i2v": ("SAMPLE_MODES", f"{P}.ltx"),
    f"{P}.hunyuan_i2v": ("HunyuanI2V", f"{P}.hunyuan"),
    f"{P}.dynamicrafter_convert": ("convert", f"{P}.dynamicrafter.convert"),
    f"{P}.nets.dc_attention": ("TemporalTransformer", f"{P}.dynamicrafter.nets.attention"),
    f"{P}.nets.dc_clip": ("antialiased_resize", f"{P}.dynamicrafter.nets.clip"),
    f"{P}.nets.dc_config": ("read_config", f"{P}.dynamicrafter.config"),
    f"{P}.nets.dc_ddim": ("ddim_timesteps", f"{P}.dynamicrafter.ddim"),
    f"{P}.nets.dc_layers": ("layer_names", f"{P}.dynamicrafter.capture"),
    f"{P}.nets.dc_load": ("guess_part", f"{P}.dynamicrafter.weights"),
    f"{P}.nets.dc_model": ("DCModel", f"{P}.dynamicrafter.nets.model"),
    f"{P}.nets.dc_unet": ("TemporalConvBlock", f"{P}.dynamicrafter.nets.unet"),
    f"{P}.nets.dc_vae": ("DCAutoencoderKL", f"{P}.dynamicrafter.nets.vae"),
    f"{P}.nets.opensora_capture": ("capture_stdit3", f"{P}.open_sora.capture"),
    f"{P}.nets.opensora_layers": ("Attention", f"{P}.open_sora.nets.layers"),
    f"{P}.nets.opensora_pipeline": ("read_configs", f"{P}.open_sora.pipeline"),
    f"{P}.nets.opensora_rflow": ("sample", f"{P}.open_sora.rflow"),
    f"{P}.nets.opensora_stdit3": ("STDiT3Config", f"{P}.open_sora.nets.stdit3"),
    f"{P}.nets.opensora_vae": ("VideoVAEConfig", f"{P}.open_sora.nets.vae"),
    f"{P}.nets.opensora_vae_temporal": ("CausalConv3d", f"{P}.open_sora.nets.vae_temporal"),
}
#: names that moved to a second module (the tiny configs went to the family's tiny.py)
SECOND = {
    f"{P}.nets.dc_config": ("TINY", f"{P}.dynamicrafter.tiny"),
    f"{P}.nets.opensora_pipeline": ("TINY_STDIT3", f"{P}.open_sora.tiny"),
}


def _forget(name: str) -> None:
    """Drop an alias (and its aliased sub-modules) so that the next import runs it again."""
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]
    parent, _, child = name.rpartition(".")
    if parent in sys.modules and child in vars(sys.modules[parent]):
        delattr(sys.modules[parent], child)


def _deprecations(caught: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    return [w for w in caught if issubclass(w.category, DeprecationWarning)]


@pytest.mark.parametrize("old", sorted(OLD))
def test_an_old_path_imports_warns_once_and_gives_the_same_objects(old):
    name, new = OLD[old]
    parent = old.rpartition(".")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        importlib.import_module(parent)  # "nets" warns for itself; checked below
    _forget(old)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
        again = importlib.import_module(old)
    found = _deprecations(caught)
    assert len(found) == 1, [str(w.message) for w in found]
    assert new in str(found[0].message) and "deprecated" in str(found[0].message)
    assert found[0].filename == __file__  # points at the import, not at importlib
    assert again is module
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
    if old in SECOND:
        other, home = SECOND[old]
        assert getattr(module, other) is getattr(importlib.import_module(home), other)
    with pytest.raises(AttributeError, match="moved to"):
        module.no_such_name  # noqa: B018


def test_import_statements_of_old_paths_work():
    """``from old import X`` and ``import old.sub`` (the two spellings users have), and the old
    ``nets`` package warns for itself too."""
    _forget(f"{P}.nets")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import stillguard.adapters.nets.opensora_rflow
        from stillguard.adapters.nets.dc_unet import DCUNet
    from stillguard.adapters.dynamicrafter.nets.unet import DCUNet as new_unet
    from stillguard.adapters.open_sora import rflow

    assert DCUNet is new_unet
    assert stillguard.adapters.nets.opensora_rflow.sample is rflow.sample
    messages = [str(w.message) for w in _deprecations(caught)]
    assert len(messages) == 3 and messages[0].startswith(f"{P}.nets moved to"), messages


@pytest.mark.parametrize(
    ("module", "cls_name", "target"),
    [("svd", "SVD", "svd"), ("open_sora", "OpenSora12", "open-sora-1.2")]
    + [("dynamicrafter", "DynamiCrafter", "dynamicrafter")],
)
def test_modules_that_became_packages_keep_their_names(module, cls_name, target):
    """``svd.py``, ``open_sora.py`` and ``dynamicrafter.py`` are now the family packages of the
    same name: the old path is the new one (no warning), with the same adapter class."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mod = importlib.import_module(f"{P}.{module}")
    assert not _deprecations(caught)
    assert getattr(mod, cls_name) is ADAPTERS.get(target)
