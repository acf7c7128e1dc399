"""mkdocs hook: the reference pages that restate the code are written from it at build time.

A page holds a marker (`<!-- generated: settings -->`, `events`, `http`, `cli`, `wings`) where the
generated part goes, so the prose around it stays hand-written and the tables cannot drift:
settings from `Settings`' fields and the docstring under each, events from `JSON_SCHEMA`, the
HTTP API from the router's own OpenAPI document, the CLI from its argument parser.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import json
import re
from typing import Any

MARKER = re.compile(r"<!-- generated: (\w+) -->")


def on_page_markdown(markdown: str, **_: Any) -> str:
    if "<!-- generated: events -->" in markdown:
        check_events_prose(markdown)
    return MARKER.sub(lambda m: GENERATORS[m.group(1)](), markdown)


def check_events_prose(markdown: str) -> None:
    """The events page's hand-written field table may not drift from `JSON_SCHEMA`: every field it
    names is in the schema, and every field of the schema is either described there or in it."""
    from mkdocs.exceptions import PluginError

    from otelstream.events import JSON_SCHEMA

    properties = JSON_SCHEMA["properties"]
    lines = markdown.splitlines()
    table = lines.index("| field | in | meaning |")
    rows = itertools.takewhile(lambda line: line.startswith("|"), lines[table + 2 :])
    written = {name for line in rows for name in re.findall(r"`(\w+)`", line.split("|")[1])}
    stale = sorted(written - set(properties))
    missing = sorted(
        k for k, v in properties.items() if k not in written and not v.get("description")
    )
    if stale or missing:
        raise PluginError(
            f"events page vs JSON_SCHEMA: not in the schema {stale}, undescribed {missing}"
        )


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def settings_table() -> str:
    from otelstream import settings

    docs: dict[str, str] = {}
    body = ast.parse(inspect.getsource(settings.Settings)).body[0]
    assert isinstance(body, ast.ClassDef)
    for node, after in zip(body.body, body.body[1:], strict=False):
        documented = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and documented:
            assert isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
            docs[node.target.id] = str(after.value.value)
    rows = ["| variable | type | default | what it is |", "| --- | --- | --- | --- |"]
    for name, field in settings.Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "" if default is None else f"`{_cell(json.dumps(default, default=str))}`"
        env = f"`OTELSTREAM_{name.upper()}`"
        kind = _cell(_kind(field.annotation, field.metadata))
        rows.append(
            f"| {env} | {kind} | {shown} | {_cell(docs.get(name, field.description or ''))} |"
        )
    return "\n".join(rows)


def _kind(annotation: object, metadata: list[Any]) -> str:
    """A field's type as a reader writes it in an environment variable, with its bounds."""
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation).replace("pydantic.types.", "").replace("typing.", "")
    if text.startswith(("frozenset[str]", "tuple[str")):
        text = "comma-separated list"
    bounds = [
        f"{sign} {getattr(rule, attr)}"
        for rule in metadata
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))
        if getattr(rule, attr, None) is not None
    ]
    return " ".join([f"`{text}`", *bounds])


def wings_table() -> str:
    """Every module of every wing, with the first sentence of its docstring: the tree as it is."""
    import importlib
    import pkgutil

    import otelstream

    rows = ["| module | why it is there |", "| --- | --- |"]
    for info in sorted(
        pkgutil.walk_packages(otelstream.__path__, "otelstream."), key=lambda i: i.name
    ):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        first = (inspect.getdoc(module) or "").split("\n\n")[0]
        shown = info.name.removeprefix("otelstream.").replace(".", "/")
        shown += "/" if info.ispkg else ".py"
        rows.append(f"| `{shown}` | {_cell(first)} |")
    return "\n".join(rows)


def events_table() -> str:
    from otelstream.events import JSON_SCHEMA

    rows = ["| field | type | what it is |", "| --- | --- | --- |"]
    for key, schema in JSON_SCHEMA["properties"].items():
        about = schema.get("description", "")
        rows.append(f"| `{key}` | {_cell(_schema_kind(schema))} | {_cell(about)} |")
    required = ", ".join(f"`{key}`" for key in JSON_SCHEMA.get("required", []))
    return f"{_cell(JSON_SCHEMA['description'])} Always present: {required}.\n\n" + "\n".join(rows)


def _schema_kind(schema: dict[str, Any]) -> str:
    """A JSON Schema as a reader says it: `string (16 hex)`, `string or null`, one of …"""
    if "anyOf" in schema:
        return " or ".join(_schema_kind(part) for part in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    kind = schema.get("type", "any")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    if schema.get("pattern") == "^[0-9a-f]+$":
        size = schema.get("minLength")
        kind += (
            f" ({size} hex characters)" if size and size == schema.get("maxLength") else " (hex)"
        )
    elif schema.get("format"):
        kind += f" ({schema['format']})"
    return kind


def http_table() -> str:
    """Every route of the router's own OpenAPI document (the receiver's too): a table, then each
    route with its docstring's first paragraph, its parameters and every answer it documents."""
    from fastapi import FastAPI

    from otelstream import MemoryHub
    from otelstream.fastapi import create_router

    def example(seconds: float = 1.0) -> None:
        """A pipeline, so that the document shows a run's parameters."""

    app = FastAPI()
    router = create_router(hub=MemoryHub(), pipelines={"example": example}, otlp_ingest=True)
    app.include_router(router)
    document = app.openapi()
    rows = ["| method | path | what it does | answers |", "| --- | --- | --- | --- |"]
    sections: list[str] = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            text = operation.get("description") or operation.get("summary", "")
            first = " ".join(text.split("\n\n")[0].split())
            if path.startswith("/v1/"):
                first += " (with `otlp_ingest`)"
            responses = operation.get("responses", {})
            rows.append(
                f"| {method.upper()} | [`{path}`](#{_anchor(method, path)}) | {_cell(first)} "
                f"| {', '.join(sorted(responses))} |"
            )
            lines = [f"### {method.upper()} `{path}` {{ #{_anchor(method, path)} }}", "", first, ""]
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                about = parameter.get("description") or schema.get("description", "")
                where = parameter["in"] + (", required" if parameter.get("required") else "")
                enum = [
                    v for part in [schema, *schema.get("anyOf", [])] for v in part.get("enum", [])
                ]
                if enum:
                    where += ": " + ", ".join(f"`{value}`" for value in enum)
                if schema.get("default") not in (None, ""):
                    where += f", default `{schema['default']}`"
                lines.append(f"- `{parameter['name']}` ({where}) {_cell(about)}".rstrip())
            lines += [
                f"- **{code}** {_cell(answer.get('description', ''))}"
                for code, answer in sorted(responses.items())
            ]
            sections.append("\n".join(lines))
    return "\n".join(rows) + "\n\n" + "\n\n".join(sections)


def _anchor(method: str, path: str) -> str:
    return "-".join([method, *re.findall(r"[a-z0-9_]+", path)]).replace("_", "-")


def cli_help() -> str:
    from otelstream.cli._main import build_parser

    parser = build_parser()
    parts = [parser.format_help()]
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for name, sub in getattr(action, "choices", {}).items():
            parts.append(f"$ otelstream {name} --help\n{sub.format_help()}")
    return "\n".join(parts).strip()


GENERATORS = {
    "settings": settings_table,
    "events": events_table,
    "http": http_table,
    "cli": cli_help,
    "wings": wings_table,
}
