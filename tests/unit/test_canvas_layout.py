"""The canvas's plan graph layout: columns by longest dependency path, rows by system."""

from __future__ import annotations

from daemon.canvas.layout import INTERNAL, NODE_H, StepIn, depths, lane_of, layout


def test_depth_is_the_longest_path_from_a_root():
    deps = {"a": (), "b": ("a",), "c": ("a", "b"), "d": ("c", "unknown"), "e": ()}
    assert depths(deps) == {"a": 0, "b": 1, "c": 2, "d": 3, "e": 0}


def test_a_cycle_is_cut_rather_than_looping():
    assert set(depths({"a": ("b",), "b": ("a",)})) == {"a", "b"}


def test_steps_sit_in_their_systems_lane_right_of_what_they_wait_for():
    steps = [
        StepIn("check", INTERNAL, (), 1),
        StepIn("order", "erp", ("check",), 2),
        StepIn("bill1", "billing", ("order",), 3),
        StepIn("bill2", "billing", ("order",), 4),
        StepIn("done", INTERNAL, ("bill1", "bill2"), 5),
    ]
    graph = layout(steps)
    boxes = graph.boxes
    for step in steps:
        for dep in step.depends_on:
            assert boxes[dep].x < boxes[step.step_id].x
    assert [lane.name for lane in graph.lanes] == [INTERNAL, "erp", "billing"]
    billing = next(lane for lane in graph.lanes if lane.name == "billing")
    assert boxes["bill1"].x == boxes["bill2"].x, "one column, stacked in the lane"
    assert boxes["bill2"].y - boxes["bill1"].y >= NODE_H
    for name in ("bill1", "bill2"):
        assert billing.y <= boxes[name].y and boxes[name].y + NODE_H <= billing.y + billing.height
    assert len(graph.edges) == 5
    assert graph.width > boxes["done"].x and graph.height == sum(x.height for x in graph.lanes)


def test_only_callouts_get_a_system_lane():
    assert lane_of("callout", "erp") == "erp"
    assert lane_of("manual", None) == INTERNAL
    assert lane_of("auto", "erp") == INTERNAL
