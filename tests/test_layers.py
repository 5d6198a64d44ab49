"""Import layering: a module imports only from its own layer or lower ones (DESIGN.md "Layout").

Every ``import`` / ``from ... import`` in the package sources is checked, absolute and relative, at module
level or inside functions (a lazy import is still a dependency). The repository's top-level ``export/``,
``calibration/``, ``android_bench/`` and ``configs/`` folders are the installed ``mtnet.export`` etc.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {"mtnet": "mtnet", "export": "mtnet.export", "calibration": "mtnet.calibration",
                "android_bench": "mtnet.android_bench", "configs": "mtnet.configs"}

# Lowest first. A module may import from its own layer and the layers above it in this table, never from
# a layer below. An entry names a module or package and everything in it (the longest match wins); the
# bare "mtnet" is the package's own __init__ (the public API), so a new top-level module needs an entry.
LAYERS: list[tuple[str, ...]] = [
    # foundations: no mtnet imports besides each other
    ("mtnet.errors", "mtnet.fileio", "mtnet.plotting", "mtnet.configs", "mtnet.modeljson", "mtnet.version",
     "mtnet.sideenv"),
    # shared definitions every part relies on: the sample, data-set metadata, the input convention, decoding
    ("mtnet.data.sample", "mtnet.data.meta", "mtnet.data.preprocess", "mtnet.decode",
     "mtnet.decode_masks"),
    # the library: what a trained model needs to be built, fed, trained against, run and scored. Tasks are
    # plug-ins that tie config, data, models, losses and metrics together, so these import each other.
    ("mtnet.config", "mtnet.data", "mtnet.models", "mtnet.losses", "mtnet.tasks", "mtnet.infer", "mtnet.eval",
     "mtnet.checkpoint_io"),
    # tools built on the library
    ("mtnet.engine", "mtnet.calibration", "mtnet.bench", "mtnet.cascade"),
    ("mtnet.export", "mtnet.android_bench", "mtnet.serve"),
    # entry points
    ("mtnet.workflows", "mtnet.api", "mtnet.commands", "mtnet.cli", "mtnet.__main__", "mtnet"),
]
RANK = {prefix: rank for rank, names in enumerate(LAYERS) for prefix in names}


def layer_of(module: str) -> int | None:
    """Rank of ``module`` (longest listed entry containing it), None when no entry covers it."""
    if module == "mtnet":
        return RANK["mtnet"]
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        rank = RANK.get(".".join(parts[:n]))
        if rank is not None:
            return rank
    return None


def package_modules() -> dict[str, Path]:
    """Dotted name -> file of every Python module of the installed package."""
    out = {}
    for folder, package in PACKAGE_DIRS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder).with_suffix("").parts
            out[".".join([package, *(p for p in rel if p != "__init__")])] = path
    return out


def imports(module: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported mtnet module, line) for every import statement in ``path``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from pkg import submodule` depends on the submodule
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in known else target, node.lineno))
    return [(name, line) for name, line in found if name == "mtnet" or name.startswith("mtnet.")]


def upward_imports() -> list[str]:
    modules = package_modules()
    known = set(modules)
    problems = []
    for module, path in modules.items():
        rank = layer_of(module)
        if rank is None:
            problems.append(f"{path.relative_to(REPO)}: module {module} is in no layer of tests/test_layers.py")
            continue
        for target, line in imports(module, path, known):
            target_rank = layer_of(target)
            if target_rank is not None and target_rank > rank:
                problems.append(f"{path.relative_to(REPO)}:{line}: {module} (layer {rank}) imports {target} "
                                f"(layer {target_rank})")
    return problems


def test_no_module_imports_a_higher_layer():
    problems = upward_imports()
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_library_sits_below_tools_and_entry_points():
    library = ["mtnet.models", "mtnet.data", "mtnet.losses", "mtnet.decode", "mtnet.infer", "mtnet.eval",
               "mtnet.tasks", "mtnet.data.preprocess", "mtnet.modeljson", "mtnet.checkpoint_io", "mtnet.config"]
    tools = ["mtnet.engine", "mtnet.export", "mtnet.calibration", "mtnet.android_bench", "mtnet.cli",
             "mtnet.commands", "mtnet.workflows"]
    assert max(layer_of(m) for m in library) < min(layer_of(m) for m in tools)
    assert layer_of("mtnet.newmodule") is None  # not silently given the root package's layer


def test_checker_sees_relative_function_level_and_submodule_imports(tmp_path):
    path = tmp_path / "predictor.py"
    path.write_text("def f():\n    from ..engine.checkpoint import load\n    from .. import workflows\n")
    known = {"mtnet.engine.checkpoint", "mtnet.workflows"}
    assert imports("mtnet.infer.predictor", path, known) == [("mtnet.engine.checkpoint", 2), ("mtnet.workflows", 3)]
