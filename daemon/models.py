"""The store's tables (SQLAlchemy 2.0). The schema itself is made by Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


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


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON, list[str]: JSON}


class SourceRecord(Base):
    """A Salesforce record as last seen: the hash of the fields that matter decides echoes."""

    __tablename__ = "source_records"

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


class Plan(Base):
    """One order's plan: its steps are tasks; its status is derived from them."""

    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[str] = mapped_column(String(18), unique=True)
    order_number: Mapped[str] = mapped_column(String(40), index=True)
    account_id: Mapped[str | None] = mapped_column(String(18))
    revision: Mapped[int] = mapped_column(default=1)
    rules_version: Mapped[str] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), index=True)
    progress: Mapped[int] = mapped_column(default=0)
    written_status: Mapped[str | None] = mapped_column(String(20))
    writeback_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    tasks: Mapped[list[Task]] = relationship(back_populates="plan", order_by="Task.id")


class Task(Base):
    """One step of a plan and everything about its execution."""

    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_state_next", "state", "next_attempt_at"),)

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
    state: Mapped[str] = mapped_column(String(20))
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    attempts: Mapped[int] = mapped_column(default=0)
    external_ref: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(String(255), default="")
    not_before: Mapped[datetime | None]
    delay_seconds: Mapped[float | None]
    next_attempt_at: Mapped[datetime | None]
    #: Set when a dispatch is about to be sent, cleared when its result is committed: a task
    #: In Progress with this set after a crash is resent with the same idempotency key.
    dispatch_started_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    plan: Mapped[Plan] = relationship(back_populates="tasks")


class TaskEvent(Base):
    """The audit trail: one row per state change of a task, with who and why."""

    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    at: Mapped[datetime]
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(80), default="orderflow")

    task: Mapped[Task] = relationship()
