"""Guards of the layout: imports point one way with no circles (imports inside functions counted too),
and no file of the package, the tests or bench/ is over 400 lines."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "visual_rft"
MAX_LINES = 400

ALLOWED = {  # package (or top-level module) -> the packages of visual_rft it may import
    "data": set(),
    "world": {"data"},
    "rewards": {"data"},
    "config": set(),
    "checks": set(),
    "models": {"data", "config"},
    "train": {"data", "config", "checks", "models"},
    "rl": {"data", "config", "checks", "models", "rewards", "train"},
    "sft": {"data", "config", "checks", "models", "train"},
    "eval": {"data", "config", "checks", "models", "rewards"},
    "report": {"data"},
    "recipes": {
        "data",
        "config",
        "checks",
        "models",
        "rewards",
        "world",
        "train",
        "rl",
        "sft",
        "eval",
        "report",
    },
    "demo": {"recipes"},
    "cli": {"data", "config", "models", "world", "rl", "sft", "eval", "recipes", "demo"},
}
"""`visual_rft/__init__.py` (the version) may be imported by anything."""

SHELLS = {"visual_rft.cli", "visual_rft.eval.cli"}
"""The command shells: the only modules that import visual_rft modules inside functions (torch and
transformers load only when a command runs, so `vrft --help` answers at once)."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def resolve(name: str) -> str | None:
    """The visual_rft module an imported name lives in (a module, or the package that defines it)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported visual_rft module, line, inside a function?) for every import of a file."""
    tree = ast.parse(path.read_text(), str(path))
    in_function = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function.update(id(n) for n in ast.walk(node) if n is not node)
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] == "visual_rft" and (target := resolve(name)):
                found.append((target, node.lineno, id(node) in in_function))
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the visual_rft modules it imports."""
    return {name: {t for t, _, _ in imports(path)} - {name} for name, path in MODULES.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def package_of(module: str) -> str:
    return module.split(".")[1] if module != "visual_rft" else ""


def test_no_import_circle_between_modules():
    assert find_cycle(graph()) is None, f"import circle: {' -> '.join(find_cycle(graph()))}"


def package_graph(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, deps in modules.items():
        edges.setdefault(package_of(module), set()).update(package_of(d) for d in deps)
    return {p: {d for d in ds if d and d != p} for p, ds in edges.items() if p}


def test_no_import_circle_between_packages():
    cycle = find_cycle(package_graph(graph()))
    assert cycle is None, f"package circle: {' -> '.join(cycle)}"


def test_imports_point_one_way():
    assert set(ALLOWED) == {package_of(m) for m in MODULES if m != "visual_rft"}, "a package has no rule"
    wrong = []
    for module, path in MODULES.items():
        package = package_of(module)
        for target, line, _ in imports(path):
            other = package_of(target)
            if other and other != package and other not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {package} imports {target}")
    assert not wrong, "upward imports:\n" + "\n".join(wrong)


def test_imports_inside_functions_only_in_the_command_shells():
    hidden = [
        f"{path.relative_to(ROOT)}:{line}: {target}"
        for module, path in MODULES.items()
        if module not in SHELLS
        for target, line, inside in imports(path)
        if inside
    ]
    assert not hidden, "imports hidden inside functions:\n" + "\n".join(hidden)


def test_the_guards_see_an_import_inside_a_function(tmp_path):
    """The checks above would have caught the circles of the old layout (models/lora.py imported
    rl.rollout inside a function, while rl imports models)."""
    source = tmp_path / "lora.py"
    source.write_text("def f():\n    from visual_rft.rl.rollout import sample_group\n")
    assert imports(source) == [("visual_rft.rl.rollout", 2, True)]
    edges = {**graph(), "visual_rft.models.lora": {"visual_rft.rl.rollout"}}
    assert find_cycle(package_graph(edges)) is not None
    assert "rl" not in ALLOWED["models"]


@pytest.mark.parametrize("folder", ["visual_rft", "tests", "bench"])
def test_no_file_over_400_lines(folder):
    long = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for p in sorted((ROOT / folder).rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    ]
    assert not long, f"files over {MAX_LINES} lines:\n" + "\n".join(long)
