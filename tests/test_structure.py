"""The code's structure, checked: no import cycles (imports inside functions counted), every
import level or down the layers docs/architecture.md draws, the CLI calls only what ``import aelab``
exports, nothing outside ``families/`` branches on the family of a
model or probes a model for what it can do, and ``aelab --help`` loads no torch."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import aelab

SRC = Path(aelab.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def imports(name: str, path: Path) -> set[str]:
    """The aelab modules that ``name`` imports anywhere in its file, inside functions too."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in MODULES and m != name}


def cycles() -> list[list[str]]:
    graph = {name: imports(name, path) for name, path in MODULES.items()}
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles() == []


def layers() -> dict[str, int]:
    """docs/architecture.md's layer block: each name's line, 0 the highest ("pkg/": a package)."""
    text = (SRC.parents[1] / "docs" / "architecture.md").read_text()
    block = text.split("```")[1]
    found = {}
    for index, line in enumerate(row for row in block.splitlines() if "|" in row):
        for name in line.split("|")[0].split():
            found[name] = index
    return found


def layer_of(module: str, placed: dict[str, int]) -> int | None:
    parts = module.split(".")[1:]
    if not parts:
        return placed.get("__init__")
    return placed[parts[0] + "/"] if parts[0] + "/" in placed else placed.get(parts[0])


def test_every_import_goes_level_or_down_the_layers_the_architecture_page_draws():
    placed = layers()
    assert len(placed) > 30
    unplaced = sorted(m for m in MODULES if layer_of(m, placed) is None)
    assert not unplaced, f"modules missing from docs/architecture.md's layers: {unplaced}"
    upward = []
    for name, path in MODULES.items():
        mine = layer_of(name, placed)
        for target in imports(name, path):
            if layer_of(target, placed) < mine:
                upward.append(f"{name} -> {target}")
    assert not upward, upward


def test_the_layer_check_finds_an_upward_import(monkeypatch):
    """An import from a lower layer up (errors importing training) is caught."""
    original = imports
    monkeypatch.setattr(
        sys.modules[__name__],
        "imports",
        lambda name, path: original(name, path) | ({"aelab.training"} if name == "aelab.errors" else set()),
    )
    with pytest.raises(AssertionError, match="aelab.errors -> aelab.training"):
        test_every_import_goes_level_or_down_the_layers_the_architecture_page_draws()


def test_the_check_finds_a_cycle(monkeypatch):
    """The walk sees an import inside a function: the check would fail on one."""
    monkeypatch.setitem(MODULES, "aelab.errors", SRC / "errors.py")
    original = imports

    def with_a_loop(name, path):
        found = original(name, path)
        return found | {"aelab.cli"} if name == "aelab.errors" else found

    monkeypatch.setattr(sys.modules[__name__], "imports", with_a_loop)
    assert any("aelab.errors" in c and "aelab.cli" in c for c in cycles())


# what the CLI may import of aelab beside its exports: process set-up no library call should make,
# messages in flags' words, a --param's parsing, and the rules by which a study's trials read (shared
# with the summary.md the tuning writes)
CLI_INTERNALS = {
    ("cli/__init__.py", "aelab.accel"): {"keep_freed_memory"},
    ("cli/__init__.py", "aelab.errors"): {"from_cli"},
    ("cli/options.py", "aelab.models"): {"parse_param"},
    ("cli/options.py", "aelab.values"): {"from_text"},
    ("cli/tables.py", "aelab.tuning"): {"params_text", "study_trials"},
}


def public_names(namespace: str) -> set[str]:
    """The names a public namespace of aelab offers (its ``__all__``)."""
    return set(importlib.import_module(f"aelab.{namespace}").__all__)


def test_the_cli_imports_only_what_aelab_exports():
    """The CLI (the cli/ package) calls aelab's exported names, the names of its public
    namespaces (``aelab.settings.X``, ``aelab.inference.X``, ...) and its own modules, nothing else."""
    files = sorted((SRC / "cli").glob("*.py"))
    assert len(files) > 3
    used, reached = set(), set()
    for path in files:
        where = str(path.relative_to(SRC))
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:  # the package's own modules
                assert node.level == 1 and (node.module is None or f"aelab.cli.{node.module}" in MODULES), (
                    f"{where}: {ast.unparse(node)}"
                )
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aelab"):
                names = {alias.name for alias in node.names}
                if node.module == "aelab":
                    assert names <= set(aelab.__all__), f"{where}: {ast.unparse(node)}"
                else:
                    assert names <= CLI_INTERNALS.get((where, node.module), set()), f"{where}: {ast.unparse(node)}"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("aelab.") for a in node.names), f"{where}: {ast.unparse(node)}"
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "aelab":
                used.add(node.attr)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "aelab"
            ):
                reached.add((node.value.attr, node.attr))
    allowed = set(aelab.__all__) | set(aelab.NAMESPACES)
    assert used and used <= allowed, sorted(used - allowed)
    outside = {f"aelab.{ns}.{name}" for ns, name in reached if ns in aelab.NAMESPACES and name not in public_names(ns)}
    assert reached and not outside, sorted(outside)


def test_the_top_level_is_small_and_each_namespace_lists_what_it_offers():
    """About 40 names a first-hour user types; the rest in public namespaces, each with __all__."""
    assert len(aelab.__all__) <= 40
    for namespace in aelab.NAMESPACES:
        module = getattr(aelab, namespace)
        assert module.__all__ and all(hasattr(module, name) for name in module.__all__), namespace
    exported = set(aelab.__all__) - {"__version__"}
    source = (SRC / "__init__.py").read_text()
    checked = {
        alias.asname or alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module not in (None, "lazy", "version")
        for alias in node.names
    }
    assert exported <= checked, sorted(exported - checked)  # the type checkers' block names every export


def test_no_exported_name_is_also_a_module():
    """``aelab.X`` must mean one thing: a submodule of the same name would replace the function once imported."""
    assert not {m.name for m in pkgutil.iter_modules(aelab.__path__)} & set(aelab.__all__)


def test_only_families_branch_on_the_family_and_nothing_probes_a_model():
    branching = re.compile(r"kind ==|kind in \(|\.family ==|family in \(")
    probing = re.compile(r"hasattr\((self\.)?model\b|getattr\((self\.)?model\b|getattr\(\w+, \"conditional\"")
    for name, path in MODULES.items():
        text = path.read_text()
        if not name.startswith("aelab.families"):
            assert not branching.search(text), f"{path} branches on the family"
        assert not probing.search(text), f"{path} probes a model instead of asking its interface"


def test_aelab_help_loads_no_torch():
    code = (
        "import sys\nfrom aelab.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\nmain(['models'])\n"
        "assert 'torch' not in sys.modules, 'aelab models imported torch'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_readme_is_a_manual_whose_links_resolve():
    readme = SRC.parent.parent / "README.md"
    text = readme.read_text()
    assert len(text.splitlines()) <= 300
    for target in re.findall(r"\]\(([^)#:]+)\)", text):  # relative links and images
        assert (readme.parent / target).exists(), target


def test_the_pictures_in_the_docs_are_made_by_docs_figures_py():
    """Every PNG in docs/ is one docs/figures.py makes (so it is made again, not drawn by hand
    and left to drift), and every picture README.md and docs/*.md show exists."""
    root = SRC.parent.parent
    sys.path.insert(0, str(root / "docs"))
    try:
        import figures as maker
    finally:
        sys.path.remove(str(root / "docs"))
    assert {p.name for p in (root / "docs").glob("*.png")} == set(maker.FIGURES.values())
    for page in [root / "README.md", *(root / "docs").glob("*.md")]:
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", page.read_text()):
            assert (page.parent / target).is_file(), f"{page.name} shows {target}, which does not exist"
