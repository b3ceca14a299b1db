"""Secrets never leave: a URL with credentials is refused at start, and one masking function
(daemon.logs.redact) runs before a message is stored, written back or printed."""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon import logs, store
from daemon.commands.main import main
from daemon.cycle.writeback_values import desired
from daemon.settings import system_settings
from daemon.store import db
from daemon.store.models import Plan, Task
from orchestration.errors import ConfigError
from orchestration.states import StepState
from salesforce.fields import StatusFields

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PASSWORD = "hunter2-pass"


@pytest.fixture(autouse=True)
def _quiet_logging():
    yield
    logging.basicConfig(force=True, handlers=[logging.NullHandler()])


def test_a_system_url_with_credentials_is_refused_at_start_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv("ORDERFLOW_BILLING_URL", f"http://svc:{PASSWORD}@billing.test/")
    assert main(["sync", "--once"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "orderflow: setting ORDERFLOW_BILLING_URL: put credentials in "
        "ORDERFLOW_BILLING_USERNAME/PASSWORD, not in the URL"
    ]


def test_a_system_the_rules_name_is_refused_too(monkeypatch):
    monkeypatch.setenv("ORDERFLOW_CRM_URL", f"https://svc:{PASSWORD}@crm.test/")
    with pytest.raises(ConfigError, match="put credentials in ORDERFLOW_CRM_USERNAME/PASSWORD"):
        system_settings("crm")


def test_doctor_prints_the_refusal_without_the_password(monkeypatch, capsys):
    monkeypatch.setenv("ORDERFLOW_ERP_URL", f"http://svc:{PASSWORD}@127.0.0.1:9/")
    assert main(["doctor", "--json"]) == 1
    out = capsys.readouterr().out
    (settings,) = [c for c in json.loads(out)["checks"] if c["name"] == "settings"]
    assert settings["status"] == "fail"
    assert "put credentials in ORDERFLOW_ERP_USERNAME/PASSWORD" in settings["detail"]
    assert PASSWORD not in out


def plan_with_task(sessions) -> int:
    with sessions.begin() as session:
        plan = Plan(
            order_id="801000000000001AAA",
            order_number="1",
            rules_version="1",
            state="In Progress",
            status="In Progress",
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(plan)
        session.flush()
        task = Task(plan_id=plan.id, revision=1, step_id="s0", rule="r", key="k", kind="callout",
                    system="erp", title="Send", depends_on=[], payload={}, state="In Progress",
                    idempotency_key="key-0", created_at=NOW, updated_at=NOW)  # fmt: skip
        session.add(task)
        session.flush()
        return task.id


def test_messages_are_masked_before_they_are_stored(tmp_path: Path):
    logs.add_secrets(["registered-token-77"])
    engine = db.make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    db.upgrade(engine)
    sessions = db.sessions(engine)
    task_id = plan_with_task(sessions)
    leak = f"cannot connect to http://svc:{PASSWORD}@erp.test with registered-token-77"
    with sessions.begin() as session:
        task = session.get(Task, task_id)
        assert task is not None
        task.message = leak
        store.transition(session, task, StepState.FAILED, leak, NOW)
    engine.dispose()

    with sqlite3.connect(tmp_path / "store.db") as con:
        (message,) = con.execute("SELECT message FROM tasks").fetchone()
        reasons = [r[0] for r in con.execute("SELECT reason FROM task_events")]
    for text in (message, *reasons):
        assert text == "cannot connect to http://svc:**********@erp.test with **********"


def test_messages_are_masked_before_they_are_written_back():
    plan = Plan(order_id="801000000000001AAA", status="Fallout", revision=1, progress=0)
    task = Task(step_id="s0", revision=1, title="Send", system="erp", attempts=1,
                state=StepState.FATALLY_FAILED.value,
                message=f"erp: redirected to https://u:{PASSWORD}@sso.test/login")  # fmt: skip
    plan.tasks = [task]
    names = StatusFields()
    fields = desired(plan, NOW, names)

    texts = [f.get(names.order_message) or f.get(names.task_message) for f in fields.values()]
    assert any("https://u:**********@sso.test/login" in (t or "") for t in texts)
    assert PASSWORD not in repr(fields)
