"""The layering of the wings is a test: no import runs back up the data path.

Every module of `otelstream/` is parsed (not imported) and every import statement in it is
read: at module level, inside functions and methods, and under `if TYPE_CHECKING:`. All of
them count. An import inside a function runs as surely as one at the top, only later; one
under `TYPE_CHECKING` runs for no one, but it is still a wing knowing another's types, which
is the coupling the layering forbids (a hub that names capture's `SpanEvent` in an annotation
is as tied to it as one that imports it).

The rules are direct (what a wing's own modules import) and reached (what those imports
import in turn, through the root modules such as `settings.py` and through the packages'
`__init__` files an import runs), so a wing cannot reach a forbidden one by a detour.

`from otelstream import Name` counts as an import of the module the root loads `Name` from
(its `_WHERE` table); an import by a string (`importlib.import_module`) is not seen, and only
the root's lazy names are loaded so.

A wing is the first package under `otelstream` (`events`, `hubs`, `client` ...); the root's
own modules (`settings`, `_errors`, `sampling` ...) belong to no wing and have no rule of
their own, but what they import counts against every wing that imports them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import deque
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "otelstream"

EVERYTHING_ELSE = None
"""A rule's value that forbids every other part of otelstream (the root's modules too)."""

FORBIDDEN: dict[str, frozenset[str] | None] = {
    # the bottom of the house: the standard library and its own modules only
    "events": EVERYTHING_ELSE,
    "client": frozenset({"runs", "processors", "hubs", "_server", "_ingest"}),
    "cli": frozenset({"runs", "processors", "hubs", "_server", "_ingest"}),
    "hubs": frozenset({"processors", "runs", "_server", "_ingest", "telemetry"}),
    "processors": frozenset({"_ingest", "_server"}),
}
"""What each wing may not import, directly or through another module."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def wing(module: str) -> str | None:
    """The wing of an otelstream module (`otelstream.hubs.redis._codec` -> `hubs`); None for
    the root's own modules."""
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and MODULES[module].name == "__init__.py"):
        return parts[1]
    return None


def resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module of a `from ... import` (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    package = module.split(".")
    if MODULES[module].name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def lazy_names() -> dict[str, str]:
    """The root's names that load on first use (`otelstream._WHERE`: name -> module)."""
    tree = ast.parse(MODULES["otelstream"].read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "_WHERE":
            where: dict[str, str] = ast.literal_eval(node.value)
            return where
    return {}


LAZY = lazy_names()


def imports_in(module: str, source: str | None = None) -> Iterator[tuple[str, int]]:
    """Every module an otelstream module (or `source`, as if it were that module) imports,
    with the line: anywhere in the file; `from package import name` as the submodule when
    `name` is one, and `from otelstream import Name` as the module the name loads from."""
    text = MODULES[module].read_text(encoding="utf-8") if source is None else source
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            origin = resolve(module, node)
            yield origin, node.lineno
            for alias in node.names:
                if f"{origin}.{alias.name}" in MODULES:
                    yield f"{origin}.{alias.name}", node.lineno
                elif origin == "otelstream" and alias.name in LAZY:
                    yield LAZY[alias.name], node.lineno


@cache
def edges(module: str) -> tuple[tuple[str, int], ...]:
    """The otelstream modules importing this one runs: what it names, and the packages above
    each of them (whose `__init__` runs first). The root package itself is left out: its
    names load on first use."""
    found: dict[str, int] = {}
    for name, line in imports_in(module):
        if not name.startswith("otelstream."):
            continue
        parts = name.split(".")
        for end in range(2, len(parts) + 1):
            target = ".".join(parts[:end])
            if target in MODULES and target != module:
                found.setdefault(target, line)
    return tuple(found.items())


def reached(start: str) -> dict[str, list[str]]:
    """Every otelstream module importing `start` can run, each with the chain that reaches
    it (`a.py:12 -> b`), for the failure's message."""
    chains: dict[str, list[str]] = {start: []}
    todo = deque([start])  # breadth first: each chain is a shortest one
    while todo:
        module = todo.popleft()
        for target, line in edges(module):
            if target not in chains:
                chains[target] = [*chains[module], f"{module}:{line} -> {target}"]
                todo.append(target)
    return chains


def forbidden(source_wing: str, target: str) -> bool:
    """Whether a module of `source_wing` may not reach `target` (a module, or a chain's
    link `a.py:12 -> target`)."""
    target_wing = wing(target.rpartition(" -> ")[2])
    if target_wing == source_wing:
        return False
    rule = FORBIDDEN[source_wing]
    if rule is EVERYTHING_ELSE:
        return True
    return target_wing in rule


def test_the_walk_sees_every_wing_and_every_kind_of_import() -> None:
    assert {wing(module) for module in MODULES} >= set(FORBIDDEN)
    # a function's import and a TYPE_CHECKING one are seen (the hub selection has both)
    seen = {target for target, _ in edges("otelstream.hubs._select")}
    # a name of the root's lazy ones, and a relative import, are seen as their modules
    snippet = "def f():\n    from otelstream import MemoryHub\n    from .. import runs\n"
    named = {name for name, _ in imports_in("otelstream.client._base", snippet)}
    assert {"otelstream.hubs.memory", "otelstream.runs"} <= named
    assert {"otelstream.hubs.memory", "otelstream.hubs.redis", "otelstream.hubs._contract"} <= seen


@pytest.mark.parametrize("rule_wing", sorted(FORBIDDEN))
def test_no_import_runs_back_up(rule_wing: str) -> None:
    faults: dict[str, str] = {}  # the import that crosses the line -> a shortest chain to it
    for module in MODULES:
        if wing(module) != rule_wing:
            continue
        for target, chain in reached(module).items():
            if forbidden(rule_wing, target):
                # the first link into a forbidden module names the import to fix
                crossing = next(i for i, link in enumerate(chain) if forbidden(rule_wing, link))
                shown = " ; ".join(chain[: crossing + 1])
                if len(shown) < len(faults.get(chain[crossing], shown + "!")):
                    faults[chain[crossing]] = shown
    assert not faults, f"{rule_wing}/ reaches up the house:\n" + "\n".join(faults.values())


def test_the_client_imports_neither_the_sdk_nor_the_server() -> None:
    """At run time, in a fresh interpreter: the client is light (no OpenTelemetry at all,
    no web framework, no hub, no server side)."""
    code = (
        "import sys, otelstream.client\n"
        "heavy = sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'fastapi', "
        "'starlette', 'otelstream.hubs', 'otelstream.fastapi', 'otelstream._server', "
        "'otelstream.processors', 'otelstream.runs', 'otelstream._ingest')))\n"
        "print(heavy)\n"
        "assert not heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_hub_contract_is_a_leaf_and_the_hubs_face_only_re_exports() -> None:
    """`hubs/_contract.py` names no hub (implementations import it, never the other way), and
    `hubs/__init__.py` holds nothing but its docstring, re-exports and `__all__`."""
    named = {name for name, _ in imports_in("otelstream.hubs._contract")}
    assert {name for name in named if name.startswith("otelstream")} <= {
        "otelstream.events",
        "otelstream.settings",
    }
    face = ast.parse(MODULES["otelstream.hubs"].read_text(encoding="utf-8"))
    for node in face.body:
        docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        exported = isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "__all__"
        assert docstring or exported or isinstance(node, ast.ImportFrom), ast.unparse(node)
