"""The operations canvas over real HTTP, on a store the real cycle filled."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import requests
from pydantic import SecretStr
from sqlalchemy import func, select

from daemon.context import Context
from daemon.cycle.org_state import salesforce_status
from daemon.cycle.run import run_cycle
from daemon.store.models import CrosswalkEntry, Plan, SystemState, Task, TaskEvent
from daemon.web.listener import Listener, create_app, daemon_routes
from remap.ids import to15, to18
from tests.integration.test_engine_operator import reject_sso
from tests.integration.world import World, run_until_settled

TOKEN = "canvas-operator-token"


@pytest.fixture
def served(world: World, monkeypatch):
    """A fallout order (provisioning refuses the SSO add-on), a completed one, and one
    still in flight; the canvas served as `orderflow run` serves it."""
    reject_sso(world)
    fallout = world.add_order("PLAT-PRO", "ADD-SSO")
    done = world.add_order("PLAT-PRO")
    ctx = world.context(monkeypatch)
    run_until_settled(ctx, world)
    routes = daemon_routes(ctx, operator_token=SecretStr(TOKEN))
    listener = Listener(create_app(ctx, extra_routes=routes), "127.0.0.1", 0)
    listener.start()
    yield listener.url, ctx, {"fallout": fallout, "done": done}
    listener.stop()


def get(url: str, path: str, **params) -> requests.Response:
    answer = requests.get(f"{url}{path}", params=params, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer


def fatal_task(ctx: Context) -> Task:
    with ctx.sessions() as session:
        (task,) = session.scalars(select(Task).where(Task.state == "Fatally Failed"))
    return task


def test_orders_worst_first_with_tabs(served):
    url, _, ids = served
    listing = get(url, "/canvas/api/orders").json()
    assert [r["order_id"] for r in listing["rows"]] == [ids["fallout"], ids["done"]]
    first = listing["rows"][0]
    assert first["status"] == "Fallout"
    assert "unknown SKU LIC-ADDON-SSO" in first["attention"]
    assert listing["tab_counts"]["fallout"] == 1
    assert listing["tab_counts"]["completed"] == 1
    fallout = get(url, "/canvas/api/orders", tab="fallout").json()
    assert [r["order_id"] for r in fallout["rows"]] == [ids["fallout"]]
    completed = get(url, "/canvas/api/orders", tab="completed").json()
    assert [r["order_id"] for r in completed["rows"]] == [ids["done"]]
    assert get(url, "/canvas/api/orders", tab="manual").json()["total"] == 0
    page = get(url, "/canvas/", tab="fallout").text
    assert first["order_number"] in page
    assert "unknown SKU LIC-ADDON-SSO" in page
    assert "data-live" in page and "/canvas/static/canvas.js" in page


def test_at_risk_and_late_follow_the_jeopardy_column_when_there_is_one(served):
    url, ctx, ids = served
    at_risk = get(url, "/canvas/api/orders", tab="at-risk").json()
    if "jeopardy" not in Plan.__table__.c:
        assert (at_risk["total"], at_risk["jeopardy_tracked"]) == (0, False)
        return
    with ctx.sessions.begin() as session:
        plan = session.scalars(select(Plan).where(Plan.order_id == ids["fallout"])).one()
        plan.jeopardy = "At Risk"
    at_risk = get(url, "/canvas/api/orders", tab="at-risk").json()
    assert [r["order_id"] for r in at_risk["rows"]] == [ids["fallout"]]
    assert at_risk["rows"][0]["jeopardy"] == "At Risk"


def test_search_by_number_ids_account_and_legacy_id(served):
    url, ctx, ids = served
    with ctx.sessions.begin() as session:
        plan = session.scalars(select(Plan).where(Plan.order_id == ids["done"])).one()
        line_id = session.scalars(
            select(Task.line_id).where(Task.plan_id == plan.id, Task.line_id.is_not(None))
        ).first()
        number, account = plan.order_number, plan.account_id
        legacy = to18("a0q5g0000012345")  # a CPQ quote line, migrated to that order line
        session.add(
            CrosswalkEntry(
                legacy_id=legacy,
                legacy_type="SBQQ__QuoteLine__c",
                standard_id=str(line_id),
                standard_type="OrderItem",
                source="import",
                origin="test",
                learned_at=datetime.now(UTC),
            )
        )

    def found(q: str) -> set[str]:
        return {r["order_id"] for r in get(url, "/canvas/api/orders", q=q).json()["rows"]}

    assert found(number) == {ids["done"]}
    assert found(number.lstrip("0")) == {ids["done"]}
    assert found(to15(ids["done"])) == {ids["done"]}
    assert found(str(line_id)) == {ids["done"]}
    assert found(to15(legacy)) == {ids["done"]}, "a legacy id, through the crosswalk"
    assert found(str(account)) == {ids["done"], ids["fallout"]}
    assert found("nothing-like-it") == set()


def test_plan_view_lays_steps_out_by_dependency_and_system(served):
    url, ctx, ids = served
    with ctx.sessions() as session:
        plan = session.scalars(select(Plan).where(Plan.order_id == ids["fallout"])).one()
        tasks = {t.step_id: t for t in plan.tasks}
    view = get(url, f"/canvas/api/plans/{plan.id}").json()
    boxes = view["graph"]["boxes"]
    assert set(boxes) == set(tasks)
    for step_id, task in tasks.items():
        for dep in task.depends_on:
            assert boxes[dep]["x"] < boxes[step_id]["x"], f"{dep} left of {step_id}"
        lane = task.system if task.kind == "callout" else "internal"
        assert boxes[step_id]["lane"] == lane
        assert boxes[step_id]["row"] == (task.line_id or "order"), "one row per line"
    rows = view["graph"]["rows"]
    assert [row["key"] for row in rows] == [
        "order",
        *(line["line_id"] for line in view["lines"][1:]),
    ]
    assert [row["label"] for row in rows] == ["Order", "#1 \u00d7 5", "#2 \u00d7 5"]
    assert [row["title"] for row in rows][1:] == ["PLAT-PRO", "ADD-SSO"]
    products = {line["product"].split(" ")[0]: line for line in view["lines"]}
    assert {"PLAT-PRO", "ADD-SSO"} <= set(products)
    sso = {s["key"]: s for s in products["ADD-SSO"]["steps"]}
    assert sso["provision"]["state"] == "Fatally Failed"
    assert sso["provision"]["payload"] == tasks[sso["provision"]["step_id"]].payload
    assert sso["provision"]["actions"] == ["retry", "complete", "skip"]
    page = get(url, f"/canvas/plans/{plan.id}", task=sso["provision"]["id"]).text
    assert "<svg" in page and "st-fatally-failed" in page
    assert "unknown SKU LIC-ADDON-SSO" in page
    assert 'data-actions="retry complete skip"' in page
    assert requests.get(f"{url}/canvas/plans/999999", timeout=10).status_code == 404


def test_a_steps_details_carry_its_audit_trail(served):
    url, ctx, _ = served
    task = fatal_task(ctx)
    detail = get(url, f"/canvas/api/tasks/{task.id}").json()
    assert detail["step"]["state"] == "Fatally Failed"
    assert [e["to_state"] for e in detail["events"]][-1] == "Fatally Failed"
    assert detail["events"][0]["from_state"] in (None, "Pending")


def events_of(ctx: Context, task_id: int) -> int:
    with ctx.sessions() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(TaskEvent).where(TaskEvent.task_id == task_id)
            )
            or 0
        )


def test_retry_needs_the_operator_token_and_is_audited(served):
    url, ctx, _ = served
    task = fatal_task(ctx)
    before = events_of(ctx, task.id)
    action = f"{url}/canvas/api/tasks/{task.id}/retry"
    form = {"reason": "SKU added to the catalogue", "actor": "ana"}
    missing = requests.post(action, data=form, timeout=10)
    assert (missing.status_code, missing.json()["error"]) == (
        401,
        "the operator token is needed for this action",
    )
    wrong = requests.post(action, data=form, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401
    assert fatal_task(ctx).state == "Fatally Failed"
    assert events_of(ctx, task.id) == before, "a refused action changes nothing"

    no_reason = requests.post(action, data={"token": TOKEN}, timeout=10)
    assert no_reason.status_code == 400
    done = requests.post(
        action, data=form, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "Ready"
    with ctx.sessions() as session:
        fresh = session.get(Task, task.id)
        assert fresh is not None
        assert (fresh.state, fresh.attempts) == ("Ready", 0)
        last = session.scalars(
            select(TaskEvent).where(TaskEvent.task_id == task.id).order_by(TaskEvent.id.desc())
        ).first()
    assert last is not None
    assert (last.actor, last.reason) == (
        "ana (canvas)",
        "operator retry: SKU added to the catalogue",
    )
    again = requests.post(action, json={**form, "token": TOKEN}, timeout=10)
    assert again.status_code == 409
    assert "cannot retry a task that is Ready" in again.json()["error"]
    unknown = requests.post(f"{url}/canvas/api/tasks/999999/skip", json={**form, "token": TOKEN})
    assert unknown.status_code == 404


def test_actions_are_off_without_a_configured_token(world: World, monkeypatch):
    world.add_order("PLAT-PRO")
    ctx = world.context(monkeypatch)
    run_cycle(ctx)
    listener = Listener(create_app(ctx, extra_routes=daemon_routes(ctx)), "127.0.0.1", 0)
    listener.start()
    try:
        answer = requests.post(
            f"{listener.url}/canvas/api/systems/erp/offline",
            headers={"Authorization": "Bearer anything"},
            timeout=10,
        )
        page = requests.get(f"{listener.url}/canvas/", timeout=10).text
    finally:
        listener.stop()
    assert answer.status_code == 403
    assert "ORDERFLOW_OPERATOR_TOKEN" in answer.json()["error"]
    assert "read-only" in page
    with ctx.sessions() as session:
        row = session.get(SystemState, "erp")
        assert row is None or not row.offline


def test_systems_view_and_taking_a_system_offline(served):
    url, ctx, _ = served
    view = get(url, "/canvas/api/systems").json()
    systems = {s["name"]: s for s in view["systems"]}
    assert set(systems) >= {"erp", "billing", "provisioning"}
    assert not any(s["offline"] for s in systems.values())
    assert systems["provisioning"]["fallout"] == 1
    assert systems["provisioning"]["failures"] >= 1
    assert systems["erp"]["outcomes"] >= 2 and systems["erp"]["failures"] == 0
    with ctx.sessions() as session:
        assert view["salesforce"] == json.loads(json.dumps(salesforce_status(session)))
    assert view["salesforce"]["budget"] is not None

    auth = {"Authorization": f"Bearer {TOKEN}"}
    refused = requests.post(f"{url}/canvas/api/systems/erp/offline", timeout=10)
    assert refused.status_code == 401
    off = requests.post(
        f"{url}/canvas/api/systems/erp/offline", data={"reason": "ERP upgrade"}, headers=auth
    )
    assert off.json() == {"system": "erp", "offline": True, "changed": True}
    with ctx.sessions() as session:
        row = session.get(SystemState, "erp")
        assert row is not None
        assert (row.offline, row.mode, row.reason) == (True, "manual", "ERP upgrade")
    assert "Offline" in get(url, "/canvas/systems").text
    back = requests.post(f"{url}/canvas/api/systems/erp/online", headers=auth, timeout=10)
    assert back.json()["offline"] is False
    nowhere = requests.post(f"{url}/canvas/api/systems/nowhere/offline", headers=auth)
    assert nowhere.status_code == 404


def test_action_buttons_only_with_a_token_and_a_legend_for_every_state(served):
    from orchestration.states import StepState

    url, ctx, _ = served
    task = fatal_task(ctx)
    with_token = get(url, f"/canvas/plans/{task.plan_id}", task=task.id).text
    assert 'data-verb="retry"' in with_token
    legend = with_token.split('class="legend"', 1)[1].split("</p>", 1)[0]
    for state in StepState:
        assert f">{state.value}</span>" in legend
    read_only = Listener(create_app(ctx, extra_routes=daemon_routes(ctx)), "127.0.0.1", 0)
    read_only.start()
    try:
        page = get(read_only.url, f"/canvas/plans/{task.plan_id}", task=task.id).text
    finally:
        read_only.stop()
    assert "data-verb=" not in page
    assert 'data-actions-on="no"' in page
