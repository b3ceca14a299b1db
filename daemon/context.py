"""What every phase of a cycle needs, built once by :mod:`daemon.app`."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from daemon.channels.stream import EventStream
from daemon.channels.webhook import Webhook
from daemon.cluster.instances import Membership
from daemon.store.models import Task
from downstream.protocol import DownstreamSystem, TaskRequest
from orchestration.auto import REGISTRY, AutoFunction
from orchestration.records import Order
from orchestration.rules import RuleSet
from salesforce.fields import StatusFields
from salesforce.gateway import SalesforceGateway
from salesforce.poller import PollFields


def _keep_order(_session: Session, order: Order) -> Order:
    return order


def _keep_request(request: TaskRequest, _now: datetime) -> TaskRequest:
    return request


def _ignore_answer(_session: Session, _order_id: str, _task: Task, _now: datetime) -> None:
    return None


@dataclass
class Context:
    """Everything a cycle needs."""

    sessions: sessionmaker[Session]
    gateway: SalesforceGateway
    systems: Mapping[str, DownstreamSystem]
    ruleset: RuleSet
    clock: Callable[[], datetime]
    statuses: list[str] = field(default_factory=lambda: ["Activated"])
    #: Order statuses that cancel a planned order (ORDERFLOW_SF_CANCELLED_STATUSES).
    cancelled_statuses: list[str] = field(default_factory=lambda: ["Cancelled", "Canceled"])
    #: How late a commit may land and still be polled (ORDERFLOW_SF_POLL_OVERLAP): see
    #: daemon.cycle.poll for the deep polls that reach back for it.
    overlap: timedelta = timedelta(minutes=10)
    #: When this instance last polled deep (None: not yet, so its first poll does).
    deep_polled_at: datetime | None = None
    #: The newest crosswalk entry the leader has tried held orders against (daemon.cycle.held).
    crosswalk_seen: int | None = None
    #: The rules digest the leader has tried held orders against (daemon.cycle.held).
    rules_seen: str | None = None
    #: When the leader last looked for Invoices to plan (daemon.cycle.invoices): the next look
    #: takes the records stored since (None: not yet, so its first look takes them all).
    invoices_seen: datetime | None = None
    #: When the leader's writeback last looked at every candidate (daemon.cycle.writeback): the
    #: next looks at the plans changed since, by index (None: every plan, once).
    written_seen: datetime | None = None
    #: The same for the Invoices' transfer status (daemon.cycle.invoices.transfers_to_write).
    invoices_written: datetime | None = None
    #: When a cycle's writeback pass last sent something: while cycles write, the jeopardy
    #: sweep leaves its writes (and its Late orders' refresh, ``late_due``) to the next
    #: cycle's pass, so one pass sends one batch (daemon.cycle.writeback).
    cycle_wrote_at: datetime | None = None
    late_due: bool = False
    settle: timedelta = timedelta(seconds=2)
    auto_actions: Mapping[str, AutoFunction] = field(default_factory=lambda: dict(REGISTRY))
    rng: random.Random = field(default_factory=random.Random)
    #: Calls in flight at once per downstream system (ORDERFLOW_DISPATCH_CONCURRENCY).
    concurrency: int = 8
    #: Resends of an interrupted dispatch, without an answer, before the task falls out
    #: (ORDERFLOW_MAX_RESENDS; daemon.cycle.claims).
    max_resends: int = 5
    #: The Salesforce fields polled per object (ORDERFLOW_SF_*_FIELDS).
    poll_fields: PollFields = field(default_factory=PollFields)
    #: The remap hooks (daemon.cycle.crosswalk.Remapper): legacy ids resolved before decomposition,
    #: payload ids in each system's language before a call, systems' keys learned after.
    inbound: Callable[[Session, Order], Order] = field(default=_keep_order)
    outbound: Callable[[TaskRequest, datetime], TaskRequest] = field(default=_keep_request)
    answered: Callable[[Session, str, Task, datetime], None] = field(default=_ignore_answer)
    #: This instance among others on the database: its id for leases, whether it leads
    #: (polls Salesforce and writes back); alone and leading unless daemon.app says otherwise.
    membership: Membership = field(default_factory=Membership)
    #: The Salesforce fields writeback sets (ORDERFLOW_SF_WRITEBACK_FIELDS renames them) and
    #: the webhook told of orders in jeopardy or fallout (ORDERFLOW_NOTIFY_WEBHOOK_URL).
    status_fields: StatusFields = field(default_factory=StatusFields)
    webhook: Webhook | None = None
    #: Go-live (daemon.store.cutover, daemon.cycle.adoption): the stored cut-over (None:
    #: none), the Order field that dates an order against it, and whether adopted orders are
    #: written back.
    cutover: datetime | None = None
    cutover_field: str = "ActivatedDate"
    cutover_writeback: bool = False
    #: ``live``, or ``shadow`` (daemon.cycle.shadow: nothing sent, nothing written to Salesforce).
    mode: str = "live"
    #: Change events (daemon.cycle.events; ORDERFLOW_SF_EVENTS): None while polling only.
    events: EventStream | None = None
