"""Each step's Sequence__c: no step comes before a step it waits for."""

from __future__ import annotations

from daemon.cycle.writeback_values import sequence
from daemon.store.models import Task


def _task(step: str, *deps: str, revision: int = 1) -> Task:
    return Task(revision=revision, step_id=step, depends_on=list(deps))


def test_a_step_is_one_after_the_latest_step_it_waits_for():
    tasks = [
        _task("invoice", "order", "activate"),
        _task("activate", "provision"),
        _task("order"),
        _task("provision"),
        _task("notify"),
    ]
    assert sequence(tasks) == [3, 2, 1, 1, 1]


def test_revisions_are_ordered_apart_and_unknown_steps_are_ignored():
    tasks = [
        _task("a"),
        _task("b", "a"),
        _task("b", "a", revision=2),  # revision 2 has no step a: it waits for nothing
        _task("c", "gone"),
    ]
    assert sequence(tasks) == [1, 2, 1, 1]


def test_a_cycle_does_not_stop_it():
    tasks = [_task("a", "b"), _task("b", "a"), _task("c")]
    assert sequence(tasks) == [2, 2, 1]
