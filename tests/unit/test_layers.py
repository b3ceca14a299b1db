"""The daemon's imports run one way: down the layers of docs/ARCHITECTURE.md, never in a circle.

Every ``import`` and ``from ... import`` in daemon/ counts, inside functions and under
``TYPE_CHECKING`` too: a lazy import hides a circle from Python, not from a reader.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "daemon"

#: daemon/'s parts, top first: a module imports from its own layer or the ones below it.
#: A new module or sub-package belongs in one (the test below says so).
LAYERS: list[set[str]] = [
    {"daemon.__main__", "daemon.commands"},  # the CLI
    {"daemon.ops", "daemon.web", "daemon.service"},  # run on demand, the listener, the process
    {"daemon.app", "daemon.connectors"},  # the wiring: adapters and context from the settings
    {"daemon.settings", "daemon.http"},
    {"daemon.cycle"},  # the cycle and its phases
    {"daemon.context"},  # what every phase is given
    {"daemon.cluster", "daemon.channels"},  # several instances; the stream and the webhook
    {"daemon.store"},  # the database, its tables, the calls that change them
    {"daemon.logs", "daemon"},  # logging and redaction, which every layer uses
]


def modules() -> dict[str, Path]:
    """The package's modules by dotted name (Alembic's revision scripts are not code)."""
    found: dict[str, Path] = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        if "versions" in path.parts:
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The package's modules that ``name`` imports: ``from a import b`` names ``a.b`` when
    that is a module, else ``a``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in known:
                    yield target
                elif base in known:
                    yield base


def graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: {t for t in imported(name, path, known) if t != name} for name, path in known.items()
    }


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts of more than one node (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                part = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    part.append(member)
                    if member == node:
                        break
                if len(part) > 1:
                    found.append(sorted(part))
    return found


def part_of(module: str) -> str:
    """The entry of :data:`LAYERS` that holds ``module`` (its longest dotted prefix)."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if any(name in layer for layer in LAYERS):
            return name
    raise LookupError(f"{module} is in no layer of LAYERS")


def depth(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Each import of a module from a layer above its own."""
    return [
        f"{module} -> {target}"
        for module, targets in sorted(edges.items())
        for target in sorted(targets)
        if depth(part_of(target)) < depth(part_of(module))
    ]


def between_parts(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """The imports between the parts of :data:`LAYERS` (a sub-package, or a top module)."""
    parts: dict[str, set[str]] = {}
    for module, targets in edges.items():
        mine = part_of(module)
        parts.setdefault(mine, set()).update(part_of(t) for t in targets if part_of(t) != mine)
    return parts


def test_every_module_of_the_daemon_is_in_a_layer() -> None:
    for module in modules():
        part_of(module)  # raises, naming the module, when it is in none


def test_imports_go_down_the_layers() -> None:
    found = upward(graph())
    assert not found, "imports from a layer above:\n" + "\n".join(found)


def test_the_sub_packages_do_not_import_each_other_in_a_circle() -> None:
    found = circles(between_parts(graph()))
    assert not found, "circles between parts:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_phase_imports_the_cycle_that_calls_it() -> None:
    edges = graph()
    phases = [m for m in edges if m.startswith("daemon.cycle.") and m != "daemon.cycle.run"]
    assert "daemon.cycle.poll" in phases and "daemon.cycle.writeback" in phases
    found = [m for m in phases if "daemon.cycle.run" in edges[m]]
    assert not found, f"phases importing daemon.cycle.run: {found}"


def test_an_upward_import_is_found() -> None:
    edges = {"daemon.store.models": {"daemon.cycle.poll"}, "daemon.cycle.poll": set()}
    assert upward(edges) == ["daemon.store.models -> daemon.cycle.poll"]
    assert upward({"daemon.cycle.poll": {"daemon.store.models"}}) == []


def test_no_module_of_the_daemon_imports_one_that_imports_it_back() -> None:
    found = circles(graph())
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_circle_finder_finds_a_circle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(edges) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
