"""The plan graph's layout, done in Python and drawn as SVG by the template (no JS library).

Columns are dependency depth (the longest path from a root, so every arrow points right);
rows are swimlanes, one per downstream system plus ``internal`` for steps Orderflow runs
itself (auto, manual, milestone, pause, scheduled, fallout). Steps of one lane in one column
stack inside the lane. Pure: steps in, coordinates out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

INTERNAL = "internal"
NODE_W, NODE_H = 224, 66
COL_GAP, ROW_GAP = 54, 12
LANE_LABEL_W, LANE_PAD = 104, 14


@dataclass(frozen=True)
class StepIn:
    """What the layout needs of a step."""

    step_id: str
    lane: str
    depends_on: tuple[str, ...]
    order: int  # a stable tie-break (the task id)


@dataclass(frozen=True)
class Box:
    step_id: str
    lane: str
    depth: int
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: str  # an SVG path


@dataclass(frozen=True)
class Lane:
    name: str
    y: int
    height: int


@dataclass(frozen=True)
class Graph:
    boxes: dict[str, Box]
    edges: list[Edge]
    lanes: list[Lane]
    width: int
    height: int


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


def layout(steps: Sequence[StepIn]) -> Graph:
    """Place every step: x by depth, y by lane, stacked within a lane's column."""
    deps = {s.step_id: s.depends_on for s in steps}
    depth = depths(deps)
    # Lanes in the order work reaches them (the earliest column a lane is used in).
    first: dict[str, tuple[int, int]] = {}
    for s in steps:
        key = (depth[s.step_id], s.order)
        first[s.lane] = min(first.get(s.lane, key), key)
    names = sorted(first, key=lambda name: first[name])
    cells: dict[tuple[str, int], list[StepIn]] = {}
    for s in sorted(steps, key=lambda s: s.order):
        cells.setdefault((s.lane, depth[s.step_id]), []).append(s)
    lanes: list[Lane] = []
    boxes: dict[str, Box] = {}
    y = 0
    for name in names:
        rows = max(len(v) for (lane, _), v in cells.items() if lane == name)
        height = 2 * LANE_PAD + rows * NODE_H + (rows - 1) * ROW_GAP
        lanes.append(Lane(name, y, height))
        for (lane, col), members in cells.items():
            if lane != name:
                continue
            for i, s in enumerate(members):
                x = LANE_LABEL_W + COL_GAP // 2 + col * (NODE_W + COL_GAP)
                top = y + LANE_PAD + i * (NODE_H + ROW_GAP)
                boxes[s.step_id] = Box(s.step_id, name, col, x, top)
        y += height
    columns = 1 + max(depth.values(), default=-1)
    width = LANE_LABEL_W + COL_GAP // 2 + columns * (NODE_W + COL_GAP)
    edges = [
        Edge(d, s.step_id, _curve(boxes[d], boxes[s.step_id]))
        for s in steps
        for d in s.depends_on
        if d in boxes
    ]
    return Graph(boxes, edges, lanes, width, y)


def _curve(a: Box, b: Box) -> str:
    """From the right edge of ``a`` to the left edge of ``b``, a horizontal S-curve."""
    x1, y1 = a.x + NODE_W, a.y + NODE_H // 2
    x2, y2 = b.x, b.y + NODE_H // 2
    bend = max(24, (x2 - x1) // 2)
    return f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2 - 6},{y2}"
