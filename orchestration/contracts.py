"""Payload contracts: what each system takes, declared in the rules file as JSON Schema.

- **Declared, never hidden.** ``contracts: {SYSTEM: {ACTION: SCHEMA}}`` in the rules file, or
  ``contract: SCHEMA`` on a step (it wins for that step). A schema is written inline or is
  the path of a JSON file relative to the rules file. No contract: no check.
- **JSON Schema, draft 2020-12** (the ``jsonschema`` package), formats asserted (``date``).
- **Nothing is fetched.** ``$ref`` may only point inside its schema (``#/$defs/line``);
  any other reference is refused at load, and validators resolve nothing from outside.
- **Checked at load.** :func:`schema_problems` (a valid schema), :func:`mapping_problems`
  (a step's mapping against its schema: fields a closed schema does not allow, required
  properties no mapping fills, constants and transforms of a type the schema refuses).
- **Checked at send.** :func:`check_payload`: a payload that does not validate is a
  :class:`PayloadError` naming the JSON pointer, the rule and the step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from orchestration.errors import RecordError
from orchestration.mapping import Payload, Value

Schema = dict[str, Any]
#: A schema inline, or the path of a JSON file holding one (relative to the rules file).
Contract = Schema | str
DIALECT = "https://json-schema.org/draft/2020-12/schema"
REFS = ("$ref", "$dynamicRef")
#: What a transform makes, as JSON types (``scale`` gives a whole number when it can).
TRANSFORM_TYPES = {
    "upper": {"string"},
    "lower": {"string"},
    "str": {"string"},
    "date": {"string"},
    "int": {"integer"},
    "scale": {"integer", "number"},
}

Place = tuple[str | int, ...]


class PayloadError(RecordError):
    """A task's payload does not fit its system's contract."""


def read_schema(ref: str, base: Path) -> tuple[Schema, str]:
    """The schema in file ``ref`` (relative to ``base``) and its text; ValueError says why not."""
    path = base / ref
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"schema file {ref!r} not found (looked for {path})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"schema file {ref!r} cannot be read ({exc})") from None
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"schema file {ref!r} line {exc.lineno}: not JSON: {exc.msg}") from None
    if not isinstance(schema, dict):
        raise ValueError(f"schema file {ref!r}: a schema must be a JSON object")
    return schema, text


def schema_problems(schema: Schema) -> list[str]:
    """Why ``schema`` cannot serve as a contract: not draft 2020-12 JSON Schema, or a
    ``$ref`` that points outside it or nowhere."""
    dialect = schema.get("$schema", DIALECT)
    if str(dialect).rstrip("#") != DIALECT:
        return [f"$schema {dialect!r}: only JSON Schema draft 2020-12 ({DIALECT}) is supported"]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [f"not valid JSON Schema: {_short(exc.message)}{_at(exc.absolute_path)}"]
    problems: list[str] = []
    resolver = Registry().resolver_with_root(DRAFT202012.create_resource(schema))
    for ref in _refs(schema):
        if not ref.startswith("#"):
            problems.append(
                f"$ref {ref!r} points outside the schema: only references inside it "
                "(#/...) are allowed, nothing is fetched"
            )
            continue
        try:
            resolver.lookup(ref)
        except Unresolvable:
            problems.append(f"$ref {ref!r} does not resolve inside the schema")
    return problems


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in REFS and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def validator(schema: Schema) -> Draft202012Validator:
    """A validator that asserts formats and resolves references only inside ``schema``."""
    return Draft202012Validator(
        schema, registry=Registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def check_payload(check: Draft202012Validator, payload: Any, rule: str, step: str) -> None:
    """Raise PayloadError naming the JSON pointer when ``payload`` does not validate."""
    errors = list(check.iter_errors(payload))
    if not errors:
        return
    worst = best_match(errors)
    assert isinstance(worst, ValidationError)  # errors is not empty
    pointer = "".join(f"/{_escape(p)}" for p in worst.absolute_path) or "/"
    more = f"; and {len(errors) - 1} more" if len(errors) > 1 else ""
    raise PayloadError(
        f"payload {pointer}: {_short(worst.message)} (rule {rule}, step {step}{more})"
    )


def mapping_problems(
    payload: Payload, schema: Schema, root: Schema | None = None
) -> list[tuple[Place, str]]:
    """What a payload mapping gets wrong against ``schema`` as far as can be told without
    data, each with its place under the mapping (``("lines", "each_line", "qty")``)."""
    root = schema if root is None else root
    schema = _deref(schema, root)
    properties = _mapping(schema.get("properties"))
    patterns = list(_mapping(schema.get("patternProperties")))
    closed = schema.get("additionalProperties") is False
    problems: list[tuple[Place, str]] = []
    for name, value in payload.items():
        sub = properties.get(name)
        if sub is None:
            if closed and not any(re.search(p, name) for p in patterns):
                problems.append(
                    (
                        (name,),
                        f"field {name!r} is not in the contract (additionalProperties: false)",
                    )
                )
            continue
        if isinstance(sub, dict):
            problems.extend(_value_problems(name, value, _deref(sub, root), root))
    for name in schema.get("required", []) if isinstance(schema.get("required"), list) else []:
        if name not in payload:
            problems.append(((), f"the contract requires {name!r}, which no mapping fills"))
    return problems


def _value_problems(name: str, value: Value, sub: Schema, root: Schema) -> list[tuple[Place, str]]:
    made, wanted = _made(value), _types(sub)
    if (
        made
        and wanted
        and not any(t in wanted or (t == "integer" and "number" in wanted) for t in made)
    ):
        what = " or ".join(sorted(made))
        return [
            ((name,), f"field {name!r} is {what}; the contract wants {' or '.join(sorted(wanted))}")
        ]
    items = sub.get("items")
    if value.each_line is not None and isinstance(items, dict):
        return [
            ((name, "each_line", *place), message)
            for place, message in mapping_problems(value.each_line, items, root)
        ]
    return []


def _made(value: Value) -> set[str]:
    """The JSON types a mapping entry can make (empty: cannot tell without the data)."""
    if value.each_line is not None:
        return {"array"}
    if value.source is None:
        return _json_types(value.const)
    return set(TRANSFORM_TYPES.get(value.transform or "", set()))


def _json_types(const: Any) -> set[str]:
    if isinstance(const, bool):
        return {"boolean"}
    if isinstance(const, int):
        return {"integer"}
    if isinstance(const, float):
        return {"integer", "number"} if const.is_integer() else {"number"}
    names = {str: "string", list: "array", dict: "object"}
    return {name for kind, name in names.items() if isinstance(const, kind)}


def _types(schema: Schema) -> set[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    return set(declared) if isinstance(declared, list) else set()


def _deref(schema: Schema, root: Schema) -> Schema:
    """A local ``$ref`` followed (once, as deep as it goes) for the static check."""
    seen = 0
    while isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#/") and seen < 10:
        node: Any = root
        for part in schema["$ref"][2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            break
        schema, seen = node, seen + 1
    return schema


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _escape(part: str | int) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def _at(path: Iterable[str | int]) -> str:
    pointer = "".join(f"/{_escape(p)}" for p in path)
    return f" (at {pointer})" if pointer else ""


def _short(message: str, limit: int = 120) -> str:
    """A message fit for a step's 255 characters: a long value is cut in its middle, so what
    is wrong with it ("... is too long") still shows."""
    message = " ".join(message.split())
    if len(message) <= limit:
        return message
    half = (limit - 3) // 2
    return f"{message[:half]}...{message[-half:]}"
