"""The adapters' house rules, checked from the source: the registry is pinned, no family imports
another family, shared code imports no family, and nothing outside ``adapters/`` imports a
private adapters module (only ``stillguard.adapters`` and its public modules ``base``,
``captured`` and ``official``).
"""

from __future__ import annotations

import ast
import importlib
import types
from pathlib import Path

import stillguard
from stillguard.adapters import ADAPTERS

SRC = Path(stillguard.__file__).resolve().parent
ROOT = SRC.parent.parent
PREFIX = "stillguard.adapters"

#: registry name -> (adapter class name, the public module it is importable from)
PINNED = {
    "cogvideox-i2v": ("CogVideoXI2V", "stillguard.adapters.cogvideox"),
    "svd": ("SVD", "stillguard.adapters.svd"),
    "wan-i2v": ("WanI2V", "stillguard.adapters.wan"),
    "ltx-i2v": ("LTXI2V", "stillguard.adapters.ltx"),
    "hunyuan-i2v": ("HunyuanI2V", "stillguard.adapters.hunyuan"),
    "hunyuan15-i2v": ("HunyuanVideo15I2V", "stillguard.adapters.hunyuan15"),
    "sana-video-i2v": ("SanaVideoI2V", "stillguard.adapters.sana_video"),
    "open-sora-1.2": ("OpenSora12", "stillguard.adapters.open_sora"),
    "dynamicrafter": ("DynamiCrafter", "stillguard.adapters.dynamicrafter"),
    "ltx2-i2v": ("LTX2I2V", "stillguard.adapters.ltx2"),
    "cosmos2-i2v": ("Cosmos2I2V", "stillguard.adapters.cosmos2"),
    "skyreels-v2-i2v": ("SkyReelsV2I2V", "stillguard.adapters.skyreels"),
    "kandinsky5-i2v": ("Kandinsky5I2V", "stillguard.adapters.kandinsky5"),
}
FAMILIES = ("cogvideox", "svd", "wan", "ltx", "hunyuan", "open_sora", "dynamicrafter", "ltx2",
            "cosmos2", "skyreels", "kandinsky5", "hunyuan15", "sana_video")  # fmt: skip
#: what code outside ``adapters/`` may import
PUBLIC = {PREFIX, *(f"{PREFIX}.{m}" for m in ("base", "captured", "official"))}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, package: str = "") -> set[str]:
    """Absolute names of the ``stillguard`` modules (or names) ``path`` imports; relative imports
    are resolved against ``package``; ``from X import y`` counts ``X`` and ``X.y``."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("stillguard"))
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            if target.startswith("stillguard"):
                out.add(target)
                out.update(f"{target}.{a.name}" for a in node.names)
    return out


def _src_graph() -> dict[str, set[str]]:
    graph = {}
    for p in SRC.rglob("*.py"):
        module = _module_name(p)
        package = module if p.name == "__init__.py" else module.rsplit(".", 1)[0]
        graph[module] = _imports(p, package)
    return graph


def _family(module: str) -> str | None:
    """The family a module of ``stillguard.adapters`` belongs to, or ``None`` (shared code)."""
    if not module.startswith(PREFIX + "."):
        return None
    rest = module[len(PREFIX) + 1 :]
    head = rest.split(".")[0]
    return head if head in FAMILIES else None


def test_the_registry_is_pinned():
    assert set(ADAPTERS.names()) == set(PINNED)
    for name, (cls_name, module) in PINNED.items():
        cls = ADAPTERS.get(name)
        assert cls.__name__ == cls_name
        assert cls.registry_name == name
        assert getattr(importlib.import_module(module), cls_name) is cls


def test_every_family_is_a_folder_that_registers_its_targets():
    """A family is a sub-package of ``adapters/``; each registered adapter class lives in one, and
    each family folder registers at least one target."""
    folders = {
        p.name
        for p in (SRC / "adapters").iterdir()
        if (p / "__init__.py").is_file() and not p.name.startswith("_")
    }
    assert folders == set(FAMILIES)
    homes = {ADAPTERS.get(n).__module__.split(".")[2] for n in ADAPTERS.names()}
    assert homes == set(FAMILIES)


def test_no_family_imports_another_family():
    bad = []
    for module, deps in _src_graph().items():
        mine = _family(module)
        if mine is None:
            continue
        for dep in deps:
            theirs = _family(dep)
            if theirs is not None and theirs != mine:
                bad.append(f"{module} ({mine}) imports {dep} ({theirs})")
    assert not bad, "\n".join(sorted(bad))


def test_shared_adapter_code_imports_no_family():
    bad = []
    for module, deps in _src_graph().items():
        if module == PREFIX or not module.startswith(PREFIX + ".") or _family(module):
            continue  # the package itself is the registry: it imports every family
        bad += [f"{module} imports {d} ({_family(d)})" for d in deps if _family(d)]
    assert not bad, "\n".join(sorted(bad))


def test_nothing_outside_adapters_imports_a_private_adapters_module():
    files = [(p, _module_name(p)) for p in SRC.rglob("*.py")]
    files = [(p, m) for p, m in files if not (m == PREFIX or m.startswith(PREFIX + "."))]
    files += [(p, "") for d in ("benchmarks", "scripts") for p in (ROOT / d).rglob("*.py")]
    bad = []
    for path, module in files:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for dep in _imports(path, package):
            if not dep.startswith(PREFIX + "."):
                continue
            if not _public(dep):
                bad.append(f"{path.relative_to(ROOT)} imports {dep}")
    assert not bad, "\n".join(sorted(bad))


def _public(name: str) -> bool:
    """True for a public module of :data:`PUBLIC`, or a name (not a module) defined in one."""
    if name in PUBLIC:
        return True
    parent, _, last = name.rpartition(".")
    if parent not in PUBLIC:
        return False
    obj = getattr(importlib.import_module(parent), last, None)
    return obj is not None and not isinstance(obj, types.ModuleType)
