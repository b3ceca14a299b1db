"""Reading a crosswalk file: header-checked, every bad row named by its line (pure).

The file is CSV (UTF-8, a spreadsheet's byte-order mark allowed) with this header, columns
in any order::

    legacy_id,legacy_type,standard_id,standard_type
    a1X5g00000AbCdE,SBQQ__Subscription__c,8025g000000XyZ1AAK,OrderItem

The whole file is checked before anything is stored: one problem makes the import refuse
the file, with every problem on its own line as ``FILE:LINE: what is wrong``.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime

from orchestration.errors import ConfigError
from remap.config import CPQ_TYPES, STANDARD_TYPES
from remap.crosswalk import Candidate, Mapping, Source
from remap.ids import InvalidId, Prefixes, canonical

COLUMNS = ("legacy_id", "legacy_type", "standard_id", "standard_type")
MAX_PROBLEMS = 50


def parse_crosswalk(text: str, name: str, prefixes: Prefixes, now: datetime) -> list[Candidate]:
    """The file's mappings, or ConfigError with one line per problem."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header = next(reader, None)
    if header is None:
        raise ConfigError(f"{name}: empty file; the header is {','.join(COLUMNS)}")
    columns = [c.strip() for c in header]
    _check_header(name, columns)
    problems: list[str] = []
    out: list[Candidate] = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            problems.append(f"{name}:{line}: {len(row)} values, the header has {len(columns)}")
            continue
        values = {col: cell.strip() for col, cell in zip(columns, row, strict=True)}
        try:
            mapping = _mapping(values, prefixes, f"{name} line {line}", now)
        except ValueError as exc:
            problems.append(f"{name}:{line}: {exc}")
            continue
        out.append(Candidate(f"{name}:{line}", mapping))
    if problems:
        raise ConfigError("\n".join(_capped(problems)))
    return out


def _check_header(name: str, columns: list[str]) -> None:
    unknown = [c for c in columns if c not in COLUMNS]
    missing = [c for c in COLUMNS if c not in columns]
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if unknown or missing or twice:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown {', '.join(unknown)}")
        if twice:
            parts.append(f"repeated {', '.join(twice)}")
        raise ConfigError(
            f"{name}:1: bad header ({'; '.join(parts)}); it must be {','.join(COLUMNS)}"
        )


def _mapping(values: dict[str, str], prefixes: Prefixes, origin: str, now: datetime) -> Mapping:
    legacy_type, standard_type = values["legacy_type"], values["standard_type"]
    if standard_type not in STANDARD_TYPES:
        raise ValueError(
            f"standard_type {standard_type!r} is not one of {', '.join(STANDARD_TYPES)}"
        )
    known_legacy = (*CPQ_TYPES, *prefixes.custom, *STANDARD_TYPES)
    if legacy_type not in known_legacy:
        raise ValueError(f"legacy_type {legacy_type!r} is not one of {', '.join(known_legacy)}")
    legacy_id = _id("legacy_id", values["legacy_id"])
    standard_id = _id("standard_id", values["standard_id"])
    _check_type("standard_id", standard_id, standard_type, prefixes)
    _check_type("legacy_id", legacy_id, legacy_type, prefixes)
    if legacy_id == standard_id:
        raise ValueError(f"legacy_id and standard_id are the same id {standard_id}")
    return Mapping(
        legacy_id=legacy_id,
        legacy_type=legacy_type,
        standard_id=standard_id,
        standard_type=standard_type,
        source=Source.IMPORT,
        origin=origin,
        learned_at=now,
    )


def _id(column: str, value: str) -> str:
    if not value:
        raise ValueError(f"{column} is empty")
    try:
        return canonical(value)
    except InvalidId as exc:
        raise ValueError(f"{column}: {exc}") from None


def _check_type(column: str, value: str, sobject: str, prefixes: Prefixes) -> None:
    expected = prefixes.prefix_of(sobject)
    if expected is not None and not value.startswith(expected):
        actual = prefixes.object_of(value)
        article = "an" if actual and actual[0] in "AEIOU" else "a"
        what = f"{article} {actual} id" if actual else f"key prefix {value[:3]}"
        raise ValueError(f"{column} {value} is {what}, not {sobject} ({expected})")


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more problems"]
