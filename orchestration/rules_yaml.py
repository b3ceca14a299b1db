"""The rules file as YAML text: read with anchors and aliases refused, each problem placed.

- **No anchors, no aliases.** They are refused from the parser's events, before anything
  expands them: a few nested ones in 400 bytes took seconds and gigabytes to check.
- **Every problem at its line.** :func:`line_index` maps each path in the document to its
  line, and :func:`report` writes one ``FILE:LINE: path: problem`` line per problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from orchestration.errors import ConfigError

#: A problem of a rules file: its path in the document and what is wrong.
Problem = tuple[tuple[Any, ...], str]


def read_document(path: Path, text: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """The data of the YAML ``text`` read from ``path``, and the line of each of its paths."""
    try:
        _refuse_aliases(path, text)
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    return data, line_index(node)


def _refuse_aliases(path: Path, text: str) -> None:
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            line = event.start_mark.line + 1 if event.start_mark else 1
            raise ConfigError(
                f"{path}:{line}: YAML anchors and aliases are not allowed "
                f"in a rules file (&{anchor} / *{anchor}): write the value out"
            )


def line_index(node: yaml.Node | None) -> dict[tuple[Any, ...], int]:
    """Map each path in the YAML document to its 1-based line number."""
    index: dict[tuple[Any, ...], int] = {}

    def walk(n: yaml.Node, path: tuple[Any, ...]) -> None:
        index[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                walk(value, (*path, key.value))
                index[(*path, key.value)] = key.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*path, i))

    if node is not None:
        walk(node, ())
    return index


def report(path: Path, problems: list[Problem], lines: dict[tuple[Any, ...], int]) -> str:
    """One line per problem: the file, the nearest line known for its path, the path, what."""
    out = []
    for loc, msg in problems:
        place = loc
        while place and place not in lines:
            place = place[:-1]
        where = ".".join(str(p) for p in loc if not str(p).startswith("function-")) or "(top)"
        out.append(f"{path}:{lines.get(place, 1)}: {where}: {msg}")
    return "\n".join(out)
