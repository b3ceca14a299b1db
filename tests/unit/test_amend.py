"""The pure side of amendments: changes recognised and merged, the diff against a plan."""

from __future__ import annotations

from daemon.settings import DEFAULT_RULES
from orchestration import changes
from orchestration.amend import (
    Orders,
    TaskView,
    desired_steps,
    line_status,
    reconcile,
    refusals,
)
from orchestration.decompose import PlannedStep
from orchestration.records import LineAction, Order
from orchestration.rules import RuleSet, load_rules
from orchestration.states import FulfillmentStatus, StepState
from tests.unit.factories import order, order_record

RULES = load_rules(DEFAULT_RULES)
PLAT, SSO = "802000000000001AAA", "802000000000002AAA"


def change(*lines: tuple[str | None, float, str], **fields: object) -> Order:
    """A change order: (original line or None, quantity, product code) per line."""
    record = order_record(*(code for _, _, code in lines), order_id="801000000000009AAA")
    for row, (original, qty, _) in zip(record["OrderItems"]["records"], lines, strict=True):
        row["Id"] = row["Id"].replace("802000000000", "802000000009")
        row["Quantity"], row["OriginalOrderItemId"] = qty, original
    record.update(fields)
    return Order.from_record(record)


def views(steps: list[PlannedStep], state: StepState, *, started: bool = True) -> list[TaskView]:
    return [
        TaskView(
            id=n,
            step_id=s.step_id,
            rule=s.rule,
            key=s.key,
            kind=s.kind,
            state=state,
            started=started,
            title=s.title,
            system=s.system,
            line_id=s.line_id,
            depends_on=s.depends_on,
            ponr=s.ponr,
            policy=s.policy,
        )
        for n, s in enumerate(steps, start=1)
    ]


def diff(old: Order, new: Order, state: StepState, rules: RuleSet = RULES, started: bool = True):
    old_steps, new_steps = desired_steps(old, rules), desired_steps(new, rules)
    tasks = views(old_steps, state, started=started)
    return reconcile(old_steps, new_steps, tasks, Orders(old, new, rules.tables), 2), tasks


def test_a_change_order_merges_deltas_removals_and_new_lines_into_actions():
    base = order("PLAT-ENT", "ADD-SSO")  # quantities 10 and 20
    merged = changes.merge_change_order(
        base, change((PLAT, 5, "PLAT-ENT"), (SSO, -20, "ADD-SSO"), (None, 3, "PS-ONBOARD"))
    )
    actions = {line.product_label: (line.action, line.fields["Quantity"]) for line in merged.lines}
    assert actions == {
        "PLAT-ENT": (LineAction.AMEND, 15.0),
        "ADD-SSO": (LineAction.CANCEL, 20.0),
        "PS-ONBOARD": (LineAction.ADD, 3),
    }
    assert merged.fields["Id"] == base.id, "the plan's header stays"


def test_a_line_points_to_its_original_directly_or_by_a_resolved_legacy_subscription():
    direct = change((PLAT, 1, "PLAT-ENT")).lines[0]
    assert direct.action is LineAction.AMEND
    assert changes.original_line(direct, set()) == PLAT
    legacy = order("PLAT-ENT").lines[0]
    legacy = legacy.model_copy(update={"fields": {**legacy.fields, "SBQQ__Subscription__c": SSO}})
    assert changes.original_line(legacy, {SSO}) == SSO
    assert changes.original_line(legacy, set()) is None
    assert not changes.is_change_order(order("PLAT-ENT"), set())


def test_changed_in_place_and_cancelled_orders_are_compared_line_by_line():
    base = order("PLAT-ENT", "ADD-SSO")
    record = order_record("PLAT-ENT")
    record["OrderItems"]["records"][0]["Quantity"] = 12.0
    merged = changes.merge_in_place(base, Order.from_record(record))
    assert [(ln.id, ln.action) for ln in merged.lines] == [
        (PLAT, LineAction.AMEND),
        (SSO, LineAction.CANCEL),
    ]
    assert changes.everything_cancelled(changes.cancel_all(base))
    assert desired_steps(changes.cancel_all(base), RULES) == []


def test_steps_not_started_are_amended_and_replaced_or_discarded():
    base = order("PLAT-ENT", "ADD-SSO")
    new = changes.merge_change_order(base, change((PLAT, 5, "PLAT-ENT"), (SSO, -20, "ADD-SSO")))
    result, tasks = diff(base, new, StepState.PENDING, started=False)
    by_id = {t.id: t.step_id for t in tasks}
    moved = {by_id[m.task_id]: m.to for m in result.moves}
    assert moved[f"subscription.billing@{PLAT}"] is StepState.AMENDED
    assert moved[f"license.provision@{SSO}"] is StepState.DISCARDED
    replaced = {n.step.step_id: n.replaces for n in result.new}
    billing = next(t.id for t in tasks if t.step_id == f"subscription.billing@{PLAT}")
    assert replaced[f"subscription.billing@{PLAT}"] == billing
    assert not any("~" in step_id for step_id in replaced), "nothing ran: nothing to undo"


def test_completed_steps_get_compensations_in_reverse_order_and_amends():
    base = order("PLAT-ENT", "ADD-SSO")
    new = changes.merge_change_order(base, change((PLAT, 5, "PLAT-ENT"), (SSO, -20, "ADD-SSO")))
    result, _ = diff(base, new, StepState.COMPLETED)
    steps = {n.step.step_id: n.step for n in result.new}
    undo_provision = steps[f"license.provision@{SSO}~undo.r2"]
    undo_billing = steps[f"subscription.billing@{SSO}~undo.r2"]
    assert (undo_provision.action, undo_billing.action) == ("deactivations", "subscription-stops")
    assert undo_billing.depends_on == (undo_provision.step_id,), "deprovision first"
    assert steps[f"subscription.billing@{PLAT}~amend.r2"].payload["quantity"] == 15.0
    erp = steps["erp_order.sales_order~amend.r2"]
    assert [(li["line_id"], li["action"]) for li in erp.payload["lines"]] == [
        (PLAT, "Amend"),
        (SSO, "Cancel"),
    ]
    canceled = {m.to for m in result.moves}
    assert canceled == {StepState.CANCELED}


def test_running_steps_are_kept_and_undone_after_they_finish():
    base = order("ADD-SSO")
    result, tasks = diff(base, changes.cancel_all(base), StepState.IN_PROGRESS)
    provision = next(t for t in tasks if t.step_id.startswith("license.provision"))
    assert provision.id in result.carried
    undo = next(n.step for n in result.new if n.step.step_id.startswith("license.provision"))
    assert provision.step_id in undo.depends_on


def test_a_line_past_its_point_of_no_return_is_refused_with_the_reason():
    base = order("PLAT-ENT", "ADD-SSO")
    done = views(desired_steps(base, RULES), StepState.COMPLETED)
    refused = refusals(done, changes.cancel_all(base))
    assert refused == {
        PLAT: "line 1 (PLAT-ENT) is past its point of no return: cancellation refused"
    }


def test_the_same_change_again_changes_nothing():
    base = order("PLAT-ENT")
    new = changes.merge_change_order(base, change((PLAT, 5, "PLAT-ENT")))
    again = changes.merge_in_place(new, changes.live(new))
    result, _ = diff(changes.live(new), again, StepState.COMPLETED)
    assert not result.changes_anything


def test_a_line_shows_cancelled_once_only_its_undoing_is_left():
    undone = [("a~undo.r2", StepState.COMPLETED), ("b", StepState.CANCELED)]
    assert line_status(undone) is FulfillmentStatus.CANCELLED
    assert line_status([("a", StepState.COMPLETED)]) is FulfillmentStatus.COMPLETED
