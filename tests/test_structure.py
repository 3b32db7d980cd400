"""The package's shape, checked by walking the source tree's AST so that it stays true (issue 20).

Targets of issue 20:
- no import cycle among first-party modules, counting imports inside functions;
- no function takes more than 8 parameters (self/cls not counted);
- at most 30 first-party imports inside functions (laziness on purpose: CLI dispatch, heavy model families);
- the core (matbench/ except its CLI: matbench/cli.py, matbench/commands/) imports nothing from reports/.

All four hold and are enforced (2026-12-02). The CLI's dispatch (cli.COMMANDS) is the one deliberate lazy
import of a command module.
`python tests/test_structure.py` prints the figures.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# repo folder -> installed package name (baselines/ and reports/ install inside matbench)
PACKAGES = {"matbench": "matbench", "baselines": "matbench.baselines", "reports": "matbench.reports"}
ALIASES = {"baselines": "matbench.baselines", "reports": "matbench.reports"}  # old spellings of the same modules
MAX_PARAMS = 8
MAX_LOCAL_IMPORTS = 30


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported first-party module
    line: int
    in_function: bool


def module_files() -> dict[str, Path]:
    """Installed module name -> file, for every first-party module."""
    out: dict[str, Path] = {}
    for folder, pkg in PACKAGES.items():
        base = ROOT / folder
        if not base.is_dir():
            continue
        for p in sorted(base.rglob("*.py")):
            if "__pycache__" in p.parts or (pkg == "matbench" and p.relative_to(base).parts[0] in PACKAGES):
                continue
            rel = p.relative_to(base).with_suffix("").parts
            parts = rel[:-1] if rel[-1] == "__init__" else rel
            out[".".join((pkg, *parts))] = p
    return out


def _canonical(name: str) -> str:
    head, _, rest = name.partition(".")
    if head in ALIASES:
        return ALIASES[head] + ("." + rest if rest else "")
    return name


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for sub in child.orelse:  # only the `else` branch runs
                yield from _walk_stmt(sub, in_function)
            continue
        yield child, in_function
        inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield from _walk(child, inner)


def _walk_stmt(stmt: ast.AST, in_function: bool) -> Iterator[tuple[ast.AST, bool]]:
    yield stmt, in_function
    yield from _walk(stmt, in_function or isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef))


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(files: dict[str, Path] | None = None) -> list[Import]:
    files = files or module_files()
    known = set(files)
    out: list[Import] = []
    for mod, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_pkg = path.name == "__init__.py"
        for node, in_fn in _walk(tree, False):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [_canonical(a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _canonical(_resolve(mod, is_pkg, node))
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    targets.append(sub if sub in known else base)
            for t in targets:
                # `import a.b.c` runs a.b.c; keep the longest first-party prefix
                while t and t not in known:
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    out.append(Import(mod, t, node.lineno, in_fn))
    return out


def cycles(edges: list[Import]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
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
    return out


def wide_functions(files: dict[str, Path] | None = None, limit: int = MAX_PARAMS) -> list[tuple[str, int, int]]:
    """(module:function, line, parameters) for every function with more than `limit` parameters."""
    files = files or module_files()
    out = []
    for mod, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                a = node.args
                names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
                if names and names[0] in ("self", "cls"):
                    names = names[1:]
                n = len(names) + (a.vararg is not None) + (a.kwarg is not None)
                if n > limit:
                    out.append((f"{mod}:{node.name}", node.lineno, n))
    return sorted(out, key=lambda t: -t[2])


def is_core(module: str) -> bool:
    return module.startswith("matbench") and not module.startswith(("matbench.commands", "matbench.reports",
                                                                      "matbench.baselines")) \
        and module != "matbench.cli"


def core_report_imports(edges: list[Import]) -> list[Import]:
    return [e for e in edges if is_core(e.source) and e.target.startswith("matbench.reports")]


# ---------------------------------------------------------------------------------------------- tests

def test_the_walk_sees_what_it_should(tmp_path):
    """The checker itself: a cycle through a function-level import, a wide function, a TYPE_CHECKING import."""
    (tmp_path / "a.py").write_text("def f():\n    from pkg import b\n")
    (tmp_path / "b.py").write_text("import pkg.a\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                   "    from pkg import c\n"
                                   "def g(self, a, b, c, d, e, f, g, h, *rest):\n    pass\n")
    (tmp_path / "c.py").write_text("from . import a\n")
    files = {f"pkg.{n}": tmp_path / f"{n}.py" for n in "abc"}
    edges = imports(files)
    assert {(e.source, e.target, e.in_function) for e in edges} == {
        ("pkg.a", "pkg.b", True), ("pkg.b", "pkg.a", False), ("pkg.c", "pkg.a", False)}
    assert cycles(edges) == [["pkg.a", "pkg.b"]]
    assert wide_functions(files) == [("pkg.b:g", 5, 9)]


def test_no_import_cycles():
    found = cycles(imports())
    assert not found, "import cycles (counting imports inside functions): " + "; ".join(" <-> ".join(c) for c in found)


def test_no_function_over_eight_parameters():
    wide = wide_functions()
    assert not wide, "functions over 8 parameters: " + ", ".join(f"{n} ({k})" for n, _, k in wide)


def test_first_party_imports_inside_functions_at_most_30():
    local = [e for e in imports() if e.in_function]
    assert len(local) <= MAX_LOCAL_IMPORTS, (
        f"{len(local)} first-party imports inside functions (at most {MAX_LOCAL_IMPORTS}: laziness only where it is "
        "the point, e.g. optional model families); " + ", ".join(f"{e.source}:{e.line}" for e in local[:10]))


def test_core_does_not_import_reports():
    bad = core_report_imports(imports())
    assert not bad, "core modules importing reports/: " + ", ".join(f"{e.source}:{e.line}" for e in bad)


def summary() -> dict:
    files = module_files()
    edges = imports(files)
    lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in files.values())
    wide = wide_functions(files, 0)
    return {"modules": len(files), "lines": lines, "cycles": cycles(edges),
            "imports_inside_functions": sum(e.in_function for e in edges),
            "functions_over_8_params": [w for w in wide if w[2] > MAX_PARAMS],
            "widest": wide[:5], "core_imports_of_reports": [f"{e.source}:{e.line}" for e in core_report_imports(edges)]}


if __name__ == "__main__":
    import json

    if len(sys.argv) > 1:
        ROOT = Path(sys.argv[1]).resolve()
    print(json.dumps(summary(), indent=1))
