"""The package's layers, checked from the source: no module imports upward and there is no cycle.

Layers (``docs/architecture.md``), lowest first:

* **core**: ``stillguard.{errors, registry, versions, tensors, settings, images, files, losses,
  spaces, transforms, plugins, loop}``, ``stillguard.adapters``, ``stillguard.methods`` and
  ``stillguard.toy`` (the toy loader and weights);
* **measure**: ``stillguard.measure`` (may import core);
* **app**: ``stillguard.app``, ``stillguard.plan`` (real-size planning reads presets) and
  ``stillguard.toy.training`` (may import core and measure);
* **fronts**: ``stillguard.cli`` (and other fronts) may import everything.

``stillguard/__init__.py`` is the public facade and may import any layer. Every import is counted,
at module level or inside a function, since a lazy upward import is still an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import stillguard

SRC = Path(stillguard.__file__).resolve().parent
LAYERS = {"core": 0, "measure": 1, "app": 2, "front": 3}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    sub = parts[1] if len(parts) > 1 else ""
    if sub == "measure":
        return "measure"
    if sub in ("app", "plan") or module.startswith("stillguard.toy.training"):
        return "app"
    if sub in ("cli", "web"):
        return "front"
    return "core"


def _imports(path: Path) -> set[str]:
    """Absolute names of the stillguard modules ``path`` imports (relative imports resolved)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("stillguard"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("stillguard"):
                continue
            if node.module or not node.level:
                out.add(target)
            for a in node.names:  # "from . import x" names a submodule
                if (
                    (SRC.parent / (target + "." + a.name).replace(".", "/"))
                    .with_suffix(".py")
                    .exists()
                ):
                    out.add(f"{target}.{a.name}")
    return out


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in SRC.rglob("*.py")}


def test_no_module_imports_a_higher_layer() -> None:
    bad = []
    for module, deps in _graph().items():
        if module == "stillguard":
            continue  # the facade
        for dep in deps:
            if dep == "stillguard":
                bad.append(f"{module} imports the facade 'stillguard' (import the submodule)")
            elif LAYERS[_layer(dep)] > LAYERS[_layer(module)]:
                bad.append(f"{module} ({_layer(module)}) imports {dep} ({_layer(dep)})")
    assert not bad, "\n".join(sorted(bad))


def test_the_loop_never_touches_files() -> None:
    deps = _graph()["stillguard.loop"]
    assert not {"stillguard.files", "stillguard.images"} & deps
    assert not {"stillguard.app", "stillguard.measure"} & {".".join(d.split(".")[:2]) for d in deps}


def test_no_import_cycles_between_modules() -> None:
    graph = _graph()
    known = set(graph)

    def resolve(dep: str) -> str | None:
        while dep and dep not in known:
            dep = dep.rpartition(".")[0]
        return dep or None

    edges = {m: {r for d in deps if (r := resolve(d)) and r != m} for m, deps in graph.items()}
    # a package's __init__ re-exporting its own submodules is not a cycle of responsibilities
    for m in edges:
        edges[m] = {d for d in edges[m] if not d.startswith(m + ".") and not m.startswith(d + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                cycle = stack[stack.index(d) :] + [d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if not state.get(d):
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if not state.get(m):
            visit(m)


def test_no_method_imports_another_method() -> None:
    graph = _graph()
    plugins = {
        m
        for m in graph
        if m.startswith("stillguard.methods.") and not m.split(".")[-1].startswith(("_", "base"))
    }
    for m in plugins:
        assert not (graph[m] & plugins), f"{m} imports another method: {graph[m] & plugins}"


def test_modules_stay_small() -> None:
    big = {
        _module_name(p): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 300
    }
    assert not big, f"modules over 300 lines (split them by responsibility): {big}"


def test_public_api_is_never_shadowed_by_a_submodule() -> None:
    import importlib
    import pkgutil

    for info in pkgutil.walk_packages(stillguard.__path__, "stillguard."):
        if ".training" in info.name or info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
    for name in stillguard.__all__:
        assert not (SRC / f"{name}.py").exists() and not (SRC / name).is_dir(), name
    from stillguard import evaluate, protect

    assert callable(protect) and callable(evaluate)
    assert stillguard.protect is protect and stillguard.evaluate is evaluate


def test_every_public_name_resolves_to_its_module() -> None:
    import importlib

    for name, module in stillguard._PUBLIC.items():
        assert getattr(stillguard, name) is getattr(
            importlib.import_module(f"stillguard.{module}"), name
        )
    assert set(stillguard._PUBLIC) | {"__version__"} == set(stillguard.__all__)
    with pytest.raises(AttributeError):
        stillguard.no_such_name  # noqa: B018


def test_the_cli_starts_without_torch() -> None:
    """`stillguard --help` stays fast: importing the package and the CLI loads no torch."""
    import subprocess
    import sys

    code = "import sys, stillguard, stillguard.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_public_functions_work_every_time_after_importing_everything(tiny_cog, image) -> None:
    from helpers import FakeAdapter

    import stillguard.app.run  # noqa: F401
    import stillguard.cli  # noqa: F401
    from stillguard import Protected, Report, evaluate, load_adapter, protect

    assert load_adapter("cogvideox-i2v", model="tiny").registry_name == "cogvideox-i2v"
    results = [protect(image, tiny_cog, "vid-freeze", steps=1, seed=0) for _ in range(2)]
    results.append(stillguard.protect(image, tiny_cog, "vid-freeze", steps=1, seed=0))
    assert all(isinstance(r, Protected) for r in results)
    assert torch.equal(results[0].image, results[2].image)
    reports = [
        f(r.original, r.image, FakeAdapter(), seeds=(0,), transforms=("identity",))
        for f in (evaluate, evaluate, stillguard.evaluate)
        for r in results[:1]
    ]
    assert all(isinstance(r, Report) for r in reports)
    assert reports[0].summary == reports[2].summary
