"""The store's tables (SQLAlchemy 2.0). The schema itself is made by Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from daemon.logs import redact


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Masked(TypeDecorator[str]):
    """Text stored with its secrets masked (daemon.logs.redact), whoever wrote it."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else redact(value)


class MaskedText(Masked):
    impl = Text
    cache_ok = True


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON, list[str]: JSON}


class SourceRecord(Base):
    """A Salesforce record as last seen: the hash of the fields that matter decides echoes."""

    __tablename__ = "source_records"
    #: What the cycle stored since it last looked (daemon.cycle.invoices), by index.
    __table_args__ = (Index("ix_source_records_seen", "sobject", "seen_at"),)

    sobject: Mapped[str] = mapped_column(String(40), primary_key=True)
    sf_id: Mapped[str] = mapped_column(String(18), primary_key=True)
    system_modstamp: Mapped[datetime]
    content_hash: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[datetime]
    data: Mapped[dict[str, Any]]


class Watermark(Base):
    """Per object, the SystemModstamp up to which every record is committed in the store."""

    __tablename__ = "watermarks"

    sobject: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[datetime]
    updated_at: Mapped[datetime]


class EventReplay(Base):
    """Per Pub/Sub topic, the last change event whose records are committed
    (daemon.cycle.events)."""

    __tablename__ = "event_replays"

    topic: Mapped[str] = mapped_column(String(80), primary_key=True)
    replay_id: Mapped[bytes] = mapped_column(LargeBinary)
    #: The event's commitTimestamp: a gap is polled from shortly before it.
    committed_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Plan(Base):
    """One order's plan: its steps are tasks; its status is derived from them."""

    __tablename__ = "plans"
    #: Housekeeping finds the plans settled long ago and not pruned yet (daemon.service.retention).
    __table_args__ = (Index("ix_plans_pruned_updated", "pruned_at", "updated_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[str] = mapped_column(String(18), unique=True)
    order_number: Mapped[str] = mapped_column(String(40), index=True)
    account_id: Mapped[str | None] = mapped_column(String(18))
    revision: Mapped[int] = mapped_column(default=1)
    rules_version: Mapped[str] = mapped_column(String(80))
    #: The rules file the plan was built from (its digest, see RuleVersion): pinned for life.
    rules_digest: Mapped[str | None] = mapped_column(String(12))
    state: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), index=True)
    progress: Mapped[int] = mapped_column(default=0)
    written_status: Mapped[str | None] = mapped_column(String(20))
    writeback_error: Mapped[str | None] = mapped_column(Text)
    #: When the Order was seen deleted in Salesforce (its plan cancelled or flagged).
    sf_deleted_at: Mapped[datetime | None]
    #: Something a person must look at, shown on the Order and in ``orderflow status``.
    flag: Mapped[str | None] = mapped_column(String(255))
    #: What the plan fulfils: an ``order`` (keyed by Order id) or an ``invoice`` transfer to
    #: the ERP (keyed by Invoice id; written back onto the Invoice, see daemon.cycle.invoices).
    kind: Mapped[str] = mapped_column(String(20), default="order", server_default="order")
    #: The worst jeopardy of the open steps (On Track, At Risk, Late; None once settled),
    #: and the last condition a notification was sent for (daemon.cycle.jeopardy).
    jeopardy: Mapped[str | None] = mapped_column(String(10), index=True)
    notified: Mapped[str | None] = mapped_column(String(20))
    #: Amendments (daemon.cycle.amend): the order as the current revision was decomposed from it
    #: (lines merged with every change applied), the order this plan took over from and the
    #: change order that took over from it (this Order then shows Superseded), when a
    #: cancellation was applied, and the lines a change was refused for (line id → reason).
    snapshot: Mapped[dict[str, Any] | None]
    supersedes: Mapped[str | None] = mapped_column(String(18))
    superseded_by: Mapped[str | None] = mapped_column(String(18), index=True)
    cancelled_at: Mapped[datetime | None]
    line_flags: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    #: Indexed: writeback looks at the plans changed since it last looked (daemon.cycle.writeback).
    updated_at: Mapped[datetime] = mapped_column(index=True)
    #: When the plan must next be looked at (daemon.cycle.advance.advance_plans): now, when one of
    #: its steps changed; later, the first retry, planned start or SLA threshold to come;
    #: None, when only an answer from outside can move it. Passes take the due plans only,
    #: so a cycle's cost follows what changed, not everything in flight.
    wake_at: Mapped[datetime | None] = mapped_column(index=True)
    #: Counts the moves of ``updated_at`` (daemon.store.touch): writeback compares it
    #: with the count it last looked at (``SfWriteback.plan_seq``), not times taken by
    #: different instances, which a change committed late could fall behind.
    change_seq: Mapped[int] = mapped_column(default=0, server_default="0")
    #: Go-live (daemon.cycle.adoption): when the plan was adopted (an order fulfilled before the
    #: cut-over: every step Completed by ``cutover``, nothing sent), and the revision
    #: writeback leaves alone (unset under ORDERFLOW_CUTOVER_WRITEBACK=true).
    adopted_at: Mapped[datetime | None]
    adopted_revision: Mapped[int | None]
    #: When housekeeping pruned the settled plan's history (events, source record copies);
    #: None: not yet (ORDERFLOW_RETENTION_DAYS after it settled).
    pruned_at: Mapped[datetime | None]

    tasks: Mapped[list[Task]] = relationship(back_populates="plan", order_by="Task.id")


class Task(Base):
    """One step of a plan and everything about its execution."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_state_next", "state", "next_attempt_at"),
        #: A lane's claim reads its system's Ready tasks in id order (daemon.cycle.claims).
        Index("ix_tasks_system_state", "system", "state", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"), index=True)
    revision: Mapped[int]
    step_id: Mapped[str] = mapped_column(String(200))
    rule: Mapped[str] = mapped_column(String(80))
    key: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20))
    system: Mapped[str | None] = mapped_column(String(40))
    action: Mapped[str | None] = mapped_column(String(80))
    title: Mapped[str] = mapped_column(String(255))
    line_id: Mapped[str | None] = mapped_column(String(18))
    depends_on: Mapped[list[str]]
    payload: Mapped[dict[str, Any]]
    ponr: Mapped[bool] = mapped_column(default=False)
    line_action: Mapped[str | None] = mapped_column(String(20))
    #: What the task needs from the rules at run time (retry policies by error code, SLA,
    #: compensation), pinned when the plan is made: later rules changes do not reach it.
    definition: Mapped[dict[str, Any] | None]
    state: Mapped[str] = mapped_column(String(20))
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    attempts: Mapped[int] = mapped_column(default=0)
    external_ref: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Masked(255), default="")
    not_before: Mapped[datetime | None]
    delay_seconds: Mapped[float | None]
    next_attempt_at: Mapped[datetime | None]
    #: Set when a dispatch is about to be sent, cleared when its result is committed: a task
    #: In Progress with this set after a crash is resent with the same idempotency key.
    dispatch_started_at: Mapped[datetime | None]
    #: The instance that claimed the dispatch (daemon.cycle.claims) and until when its heartbeat
    #: keeps the lease; only a dead holder's lease is taken back (daemon.cluster.instances).
    lease_owner: Mapped[str | None] = mapped_column(String(36), index=True)
    lease_expires_at: Mapped[datetime | None]
    #: Resends of an interrupted dispatch since the task's last answer (daemon.cycle.claims): past
    #: ORDERFLOW_MAX_RESENDS the task falls out instead of being sent again.
    resends: Mapped[int] = mapped_column(default=0, server_default="0")
    #: Sent with the task; the system's callback names the task by it (daemon.web.callbacks).
    correlation_token: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    #: Against the SLA pinned in ``definition`` (orchestration.jeopardy): None once finished.
    jeopardy: Mapped[str | None] = mapped_column(String(10), index=True)
    due_at: Mapped[datetime | None]
    #: The task of an earlier revision this one replaces (an amended, undone or changed step).
    replaces_task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    plan: Mapped[Plan] = relationship(back_populates="tasks")


class SfWriteback(Base):
    """Per Salesforce record, the field values Orderflow last wrote (or gave up on).

    Writeback sends only what differs from ``written``. A transient refusal
    (UNABLE_TO_LOCK_ROW) sets ``retry_at``; a permanent one is kept in ``error`` with the
    values it refused (``failed_values``), which are not sent again until they change.
    """

    __tablename__ = "sf_writebacks"

    sobject: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: The record's Id, or its external id for upserted records (Fulfillment_Task__c).
    sf_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(String(18), index=True)
    written: Mapped[dict[str, Any]]
    error_code: Mapped[str | None] = mapped_column(String(80), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    failed_values: Mapped[dict[str, Any] | None]
    attempts: Mapped[int] = mapped_column(default=0)
    retry_at: Mapped[datetime | None] = mapped_column(index=True)
    updated_at: Mapped[datetime]
    #: On an Order's or an Invoice's row: its plan's ``change_seq`` when writeback last
    #: looked at it.
    plan_seq: Mapped[int | None]


class SfBudget(Base):
    """The Salesforce API budget as the daemon last saw it, for ``orderflow status``."""

    __tablename__ = "sf_budget"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    data: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class RuleVersion(Base):
    """A rules file as plans were built from it, by digest: what an in-flight plan keeps."""

    __tablename__ = "rule_versions"

    digest: Mapped[str] = mapped_column(String(12), primary_key=True)
    version: Mapped[str] = mapped_column(String(80))
    definition: Mapped[dict[str, Any]]
    first_used_at: Mapped[datetime]


class TaskEvent(Base):
    """The audit trail: one row per state change of a task, with who and why."""

    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    at: Mapped[datetime]
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(MaskedText())
    actor: Mapped[str] = mapped_column(String(80), default="orderflow")

    task: Mapped[Task] = relationship()


class CrosswalkEntry(Base):
    """Legacy CPQ id ↔ standard id (canonical 18-character ids), with where it was learned."""

    __tablename__ = "remap_crosswalk"
    __table_args__ = (
        # One standard id per legacy id; one legacy id per standard id and legacy type.
        Index("ux_remap_crosswalk_legacy", "legacy_id", unique=True),
        Index("ux_remap_crosswalk_standard", "standard_id", "legacy_type", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    legacy_id: Mapped[str] = mapped_column(String(18))
    legacy_type: Mapped[str] = mapped_column(String(80))
    standard_id: Mapped[str] = mapped_column(String(18))
    standard_type: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(20))
    origin: Mapped[str] = mapped_column(String(255))
    learned_at: Mapped[datetime]


class ExternalKeyEntry(Base):
    """The key a downstream system uses for a Salesforce record (an ERP order number)."""

    __tablename__ = "remap_external_keys"
    __table_args__ = (
        Index("ux_remap_external_keys", "system", "sf_id", "kind", unique=True),
        Index("ix_remap_external_keys_key", "system", "key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    system: Mapped[str] = mapped_column(String(40))
    sf_id: Mapped[str] = mapped_column(String(18))
    sf_type: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(80))
    key: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(20))
    origin: Mapped[str] = mapped_column(String(255))
    learned_at: Mapped[datetime]


class SystemState(Base):
    """A downstream system's recorded state: offline (by an operator or by the daemon after
    connection failures, then probed) and when its accepted tasks were last polled."""

    __tablename__ = "system_states"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    offline: Mapped[bool] = mapped_column(default=False)
    mode: Mapped[str] = mapped_column(String(10), default="")  # manual | auto | ""
    reason: Mapped[str] = mapped_column(Text, default="")
    since: Mapped[datetime | None]
    next_probe_at: Mapped[datetime | None]
    last_status_poll_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class CallbackReceipt(Base):
    """A callback accepted from a system, by signature: the same one again is a replay."""

    __tablename__ = "callback_receipts"
    __table_args__ = (
        UniqueConstraint("system", "signature", name="ux_callback_receipts_signature"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    system: Mapped[str] = mapped_column(String(40))
    signature: Mapped[str] = mapped_column(String(80))
    task_id: Mapped[int | None]
    outcome: Mapped[str] = mapped_column(String(80))
    received_at: Mapped[datetime]


class Instance(Base):
    """A running Orderflow instance: its heartbeat keeps its leases (daemon.cluster.instances)."""

    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    #: ``leader`` (polls Salesforce and writes back) or ``worker`` (dispatches only).
    role: Mapped[str] = mapped_column(String(20))


class Cutover(Base):
    """The cut-over, one row per setting of it: the newest row holds; the earlier ones are
    its audit trail (daemon.store.cutover). ``adopted_at``: when the history before it was
    adopted in full (None: adoption not finished, resumed at the next start)."""

    __tablename__ = "cutovers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    set_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(Text)
    adopted_at: Mapped[datetime | None]


class ShadowSend(Base):
    """A callout shadow mode did not make (daemon.cycle.shadow): what would have been sent, with
    its idempotency key, for ``orderflow shadow report`` and the switch to live."""

    __tablename__ = "shadow_sends"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    system: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(80))
    #: The Order (or Invoice) the step belongs to, from the request's step reference.
    order_id: Mapped[str] = mapped_column(String(18), index=True)
    step_ref: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]]
    recorded_at: Mapped[datetime] = mapped_column(index=True)
    #: When the switch to live (daemon.ops.golive) took this would-send into account.
    switched_at: Mapped[datetime | None]
