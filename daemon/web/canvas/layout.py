"""The plan graph's layout, done in Python and drawn as SVG by the template (no JS library).

Rows are the order's commercial lines (the order as a whole first, then each line by its
number), so a line's steps read left to right on one band; columns are dependency depth
(the longest path from a root, so every arrow points right). A row is as tall as its
tallest cell (most lines hold one step per depth) and a row without steps is not drawn.
Each step keeps its system (``lane``: a downstream system, or ``internal`` for the steps
Orderflow runs itself), which the box names. Pure: steps in, coordinates out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

INTERNAL = "internal"
ORDER_ROW = "order"  # the row of the steps made for the order as a whole
NODE_W, NODE_H = 156, 68
COL_GAP, ROW_GAP = 30, 8
ROW_LABEL_W, ROW_PAD = 92, 7


@dataclass(frozen=True)
class StepIn:
    """What the layout needs of a step."""

    step_id: str
    lane: str  # its system, or ``internal``
    row: str  # its commercial line's id, or ORDER_ROW
    depends_on: tuple[str, ...]
    order: int  # a stable tie-break (the task id)


@dataclass(frozen=True)
class Box:
    step_id: str
    lane: str
    row: str
    depth: int
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: str  # an SVG path


@dataclass(frozen=True)
class Row:
    """A band of the graph: one commercial line's steps (or the order's)."""

    key: str
    label: str  # short, drawn at the left: "#2", "order"
    title: str  # longer, drawn under it and in full on hover: the product
    y: int
    height: int


@dataclass(frozen=True)
class Graph:
    boxes: dict[str, Box]
    edges: list[Edge]
    rows: list[Row]
    width: int
    height: int
    node_w: int = NODE_W
    node_h: int = NODE_H


def lane_of(kind: str, system: str | None) -> str:
    """A callout's system, or ``internal`` for the steps Orderflow runs itself."""
    return system if kind == "callout" and system else INTERNAL


def depths(deps: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Longest path from a root for each step. Unknown dependencies are ignored; a cycle
    (which the rules check refuses) is cut where it closes rather than looping."""
    out: dict[str, int] = {}

    def visit(step: str, seen: frozenset[str]) -> int:
        if step in out:
            return out[step]
        ups = [d for d in deps[step] if d in deps and d not in seen]
        out[step] = 1 + max((visit(d, seen | {step}) for d in ups), default=-1)
        return out[step]

    for step in deps:
        visit(step, frozenset())
    return out


def layout(steps: Sequence[StepIn], rows: Mapping[str, tuple[str, str]]) -> Graph:
    """Place every step: x by depth, y by row, stacked when a row has two at one depth.

    ``rows``: each row's (label, title) in the order to draw them; a step whose row is not
    named gets a row of its own after them, labelled with its key."""
    deps = {s.step_id: s.depends_on for s in steps}
    depth = depths(deps)
    cells: dict[str, dict[int, list[StepIn]]] = {}
    for s in sorted(steps, key=lambda s: s.order):
        cells.setdefault(s.row, {}).setdefault(depth[s.step_id], []).append(s)
    keys = [k for k in rows if k in cells] + sorted(k for k in cells if k not in rows)
    drawn: list[Row] = []
    boxes: dict[str, Box] = {}
    y = 0
    for key in keys:
        stack = max(len(members) for members in cells[key].values())
        height = 2 * ROW_PAD + stack * NODE_H + (stack - 1) * ROW_GAP
        label, title = rows.get(key, (key, ""))
        drawn.append(Row(key, label, title, y, height))
        for col, members in cells[key].items():
            for i, s in enumerate(members):
                x = ROW_LABEL_W + COL_GAP // 2 + col * (NODE_W + COL_GAP)
                top = y + ROW_PAD + i * (NODE_H + ROW_GAP)
                boxes[s.step_id] = Box(s.step_id, s.lane, key, col, x, top)
        y += height
    columns = 1 + max(depth.values(), default=-1)
    width = ROW_LABEL_W + columns * (NODE_W + COL_GAP)
    edges = [
        Edge(d, s.step_id, _curve(boxes[d], boxes[s.step_id]))
        for s in steps
        for d in s.depends_on
        if d in boxes
    ]
    return Graph(boxes, edges, drawn, width, y)


def _curve(a: Box, b: Box) -> str:
    """From the right edge of ``a`` to the left edge of ``b``, a horizontal S-curve (it
    stays within the two boxes' span, so inside the frame)."""
    x1, y1 = a.x + NODE_W, a.y + NODE_H // 2
    x2, y2 = b.x, b.y + NODE_H // 2
    bend = max(12, (x2 - x1) // 2)
    return f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2 - 6},{y2}"
