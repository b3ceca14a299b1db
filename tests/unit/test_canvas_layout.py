"""The canvas's plan graph layout: columns by longest dependency path, one row per line."""

from __future__ import annotations

from daemon.web.canvas.layout import (
    INTERNAL,
    NODE_H,
    NODE_W,
    ORDER_ROW,
    ROW_PAD,
    StepIn,
    depths,
    lane_of,
    layout,
)


def test_depth_is_the_longest_path_from_a_root():
    deps = {"a": (), "b": ("a",), "c": ("a", "b"), "d": ("c", "unknown"), "e": ()}
    assert depths(deps) == {"a": 0, "b": 1, "c": 2, "d": 3, "e": 0}


def test_a_cycle_is_cut_rather_than_looping():
    assert set(depths({"a": ("b",), "b": ("a",)})) == {"a", "b"}


def overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return abs(a[0] - b[0]) < NODE_W and abs(a[1] - b[1]) < NODE_H


def test_each_line_is_one_row_right_of_what_it_waits_for():
    steps = [
        StepIn("check", INTERNAL, ORDER_ROW, (), 1),
        StepIn("order", "erp", ORDER_ROW, ("check",), 2),
        StepIn("bill1", "billing", "L1", (), 3),
        StepIn("prov1", "provisioning", "L1", ("bill1", "order"), 4),
        StepIn("bill2", "billing", "L2", (), 5),
        StepIn("prov2", "provisioning", "L2", ("bill2", "order"), 6),
        StepIn("call2", INTERNAL, "L2", ("bill2", "order"), 7),
        StepIn("done", INTERNAL, ORDER_ROW, ("prov1", "prov2", "call2"), 8),
    ]
    rows = {ORDER_ROW: ("Order", ""), "L1": ("#1", "PLAT"), "L2": ("#2", "SVC"), "L3": ("", "")}
    graph = layout(steps, rows)
    boxes = graph.boxes
    for step in steps:
        for dep in step.depends_on:
            assert boxes[dep].x < boxes[step.step_id].x
    assert [row.key for row in graph.rows] == [ORDER_ROW, "L1", "L2"], "no row without steps"
    by_key = {row.key: row for row in graph.rows}
    for step in steps:
        row, box = by_key[step.row], boxes[step.step_id]
        assert row.y <= box.y and box.y + NODE_H <= row.y + row.height
        assert box.lane == step.lane
    # A row holds one band of boxes unless two of its steps share a depth (then it stacks).
    assert by_key["L1"].height == 2 * ROW_PAD + NODE_H
    assert by_key["L2"].height > 2 * NODE_H
    assert boxes["prov2"].x == boxes["call2"].x
    placed = [(b.x, b.y) for b in boxes.values()]
    assert not [(a, b) for i, a in enumerate(placed) for b in placed[i + 1 :] if overlap(a, b)]
    assert len(graph.edges) == sum(len(s.depends_on) for s in steps)
    assert graph.height == sum(row.height for row in graph.rows)
    assert max(b.x + NODE_W for b in boxes.values()) < graph.width


def test_a_step_of_a_line_not_named_gets_its_own_row_last():
    steps = [StepIn("a", INTERNAL, ORDER_ROW, (), 1), StepIn("b", "erp", "L9", ("a",), 2)]
    graph = layout(steps, {ORDER_ROW: ("Order", "")})
    assert [(row.key, row.label) for row in graph.rows] == [(ORDER_ROW, "Order"), ("L9", "L9")]


def test_only_callouts_get_a_system_lane():
    assert lane_of("callout", "erp") == "erp"
    assert lane_of("manual", None) == INTERNAL
    assert lane_of("auto", "erp") == INTERNAL


def test_a_title_wraps_onto_two_lines_between_words_the_rest_clipped():
    from daemon.web.canvas.display import wrap

    assert wrap("Provisioning: activate licenses", 21) == ["Provisioning:", "activate licenses"]
    assert wrap("Check the order header", 21) == ["Check the order", "header"]
    assert wrap("Short", 21) == ["Short"]
    assert wrap("", 21) == []
    long = wrap("Usage metered (point of no return) and then some more words", 21)
    assert long == ["Usage metered (point", "of no return) and th…"]
    assert all(len(line) <= 21 for line in wrap("x" * 50, 21))
