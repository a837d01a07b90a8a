"""The package's shape, checked statically (ast, no imports run): no import cycles, pure parts free of file I/O.

Every `import` counts, also those inside functions: a lazy import only hides a cycle.
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "facevae"

# the math: models, losses, decoder distributions, latent-space math, samplers
PURE = ("facevae.models", "facevae.losses", "facevae.decoders", "facevae.latent", "facevae.sampling",
        "facevae.sharp_losses")
# modules that read or write files, load checkpoints or draw pictures
FILE_IO = ("facevae.io", "facevae.data", "facevae.training", "facevae.modelfiles", "facevae.tasks", "facevae.viz", "facevae.cli",
           "facevae.web", "facevae.metrics.fid", "safetensors", "PIL", "imageio",
           "matplotlib", "shutil", "tempfile", "pathlib", "os", "io", "yaml", "pickle")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def dynamic_import(node: ast.AST) -> str | None:
    """The module of `importlib.import_module("a.b")`, `import_module("a.b")` or `__import__("a.b")`.

    Only a literal name can be seen; a runtime import hides a cycle as well as a lazy one does.
    """
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func, arg = node.func, node.args[0]
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called not in ("import_module", "__import__"):
        return None
    return arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """Modules `path` imports: `from a.b import c` is a.b.c when that is a module, else a.b."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if dynamic_import(node):
            out.add(dynamic_import(node))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            subs = {f"{base}.{a.name}" for a in node.names} & known
            out.update(subs or {base})
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: {i for i in imported(p, m, known) if i in known and i != m} for m, p in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_checker_sees_a_cycle_and_resolves_submodule_imports():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    g = graph()
    assert "facevae.modelfiles.checkpoint" in g["facevae.training.run"]


def test_the_checker_sees_imports_made_at_run_time(tmp_path):
    src = tmp_path / "mod.py"
    src.write_text("import importlib\nfrom importlib import import_module\n"
                   "def f(name):\n"
                   "    importlib.import_module('facevae.models.vae')\n"
                   "    import_module('facevae.decoders')\n"
                   "    __import__('facevae.training.options')\n"
                   "    import_module(name)  # not a literal: cannot be seen\n")
    found = imported(src, "facevae.mod", set(modules()))
    assert {"facevae.models.vae", "facevae.decoders", "facevae.training.options"} <= found


def test_config_imports_only_the_bottom_layer():
    assert graph()["facevae.config"] <= {"facevae.errors", "facevae.io"}


def test_no_import_cycle_among_the_package_modules():
    assert cycles(graph()) == []


def test_pure_packages_import_no_file_io_module():
    mods = modules()
    known = set(mods)
    bad = {m: sorted(i for i in imported(p, m, known) if under(i, FILE_IO))
           for m, p in mods.items() if under(m, PURE)}
    assert {m: v for m, v in bad.items() if v} == {}


def test_inference_reaches_no_training_module():
    """Everything `facevae.load()` imports, transitively: never the trainer (a static twin of test_api's check)."""
    g = graph()
    seen, todo = set(), ["facevae.api"]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(g.get(m, ()))
    assert not [m for m in seen if under(m, ("facevae.training", "facevae.tasks", "facevae.cli", "facevae.web"))]
    assert "facevae.modelfiles.checkpoint" in seen  # the walk does follow the imports
