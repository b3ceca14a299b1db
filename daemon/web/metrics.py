"""Prometheus metrics: read from the store at scrape time, plus the dispatch latency.

Gauges that describe the store (orders, steps, jeopardy, poll lag) are computed when
``/metrics`` is scraped, so they are right after a restart and cost nothing between
scrapes. The dispatch latency is a histogram observed as calls happen (process-wide).

    orderflow_orders{status}                       Orders by fulfillment status
    orderflow_invoices{status}                     Invoice transfers to the ERP by status
    orderflow_steps{system,state}                  tasks by system ("internal": none) and state
    orderflow_steps_in_jeopardy{level}             At Risk / Late steps (tasks.jeopardy)
    orderflow_salesforce_api_calls_used            from the last Sforce-Limit-Info seen
    orderflow_salesforce_api_calls_limit
    orderflow_salesforce_api_calls_left
    orderflow_poll_lag_seconds{sobject}            now - the object's watermark
    orderflow_cycles_total                         cycles started by this process
    orderflow_dispatch_latency_seconds{system}     duration of each downstream submit
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from daemon import store
from daemon.context import Context
from daemon.cycle.dispatch import DISPATCH_LATENCY
from daemon.service.health import Heartbeat
from daemon.store.models import Task, Watermark

JEOPARDY_LEVELS = ("At Risk", "Late")


class StoreCollector(Collector):
    """The store's counts and the Salesforce budget, read at each scrape."""

    def __init__(self, ctx: Context, heartbeat: Heartbeat | None = None) -> None:
        self.ctx = ctx
        self.heartbeat = heartbeat

    def collect(self) -> Iterator[Metric]:
        with self.ctx.sessions() as session:
            counts = store.counts(session)
            jeopardy = _jeopardy(session)
            marks = list(session.scalars(select(Watermark)))
        orders = GaugeMetricFamily(
            "orderflow_orders", "Orders by fulfillment status.", labels=["status"]
        )
        for status, n in sorted(counts["orders_by_status"].items()):
            orders.add_metric([status], n)
        yield orders
        invoices = GaugeMetricFamily(
            "orderflow_invoices", "Invoice transfers to the ERP by status.", labels=["status"]
        )
        for status, n in sorted(counts["invoices_by_status"].items()):
            invoices.add_metric([status], n)
        yield invoices
        steps = GaugeMetricFamily(
            "orderflow_steps", "Steps (tasks) by system and state.", labels=["system", "state"]
        )
        for system, states in sorted(counts["tasks_by_system"].items()):
            for state, n in sorted(states.items()):
                steps.add_metric([system, state], n)
        yield steps
        risk = GaugeMetricFamily(
            "orderflow_steps_in_jeopardy", "Open steps At Risk or Late.", labels=["level"]
        )
        for level in JEOPARDY_LEVELS:
            risk.add_metric([level], jeopardy.get(level, 0))
        yield risk
        yield from self._api_usage()
        lag = GaugeMetricFamily(
            "orderflow_poll_lag_seconds",
            "Seconds between now and the object's poll watermark.",
            labels=["sobject"],
        )
        now = self.ctx.clock()
        for mark in marks:
            lag.add_metric([mark.sobject], max(0.0, (now - mark.value).total_seconds()))
        yield lag
        if self.heartbeat is not None:
            yield CounterMetricFamily(
                "orderflow_cycles", "Cycles started by this process.", value=self.heartbeat.cycles
            )

    def _api_usage(self) -> Iterator[Metric]:
        usage = self.ctx.gateway.api_usage
        if usage is None:
            return  # no Salesforce answer seen yet: no figure rather than a wrong one
        for name, value, text in (
            ("used", usage.used, "Salesforce API calls used in the rolling 24 hours."),
            ("limit", usage.limit, "Salesforce API calls allowed in 24 hours."),
            ("left", max(0, usage.limit - usage.used), "Salesforce API calls left."),
        ):
            yield GaugeMetricFamily(f"orderflow_salesforce_api_calls_{name}", text, value=value)


def _jeopardy(session: Any) -> dict[str, int]:
    # As the last jeopardy sweep left them (daemon.cycle.jeopardy); finished steps have none.
    rows = session.execute(
        select(Task.jeopardy, func.count())
        .where(Task.jeopardy.in_(JEOPARDY_LEVELS))
        .group_by(Task.jeopardy)
    ).all()
    return {str(level): int(n) for level, n in rows}


def registry(ctx: Context, heartbeat: Heartbeat | None = None) -> CollectorRegistry:
    """A registry with the store's gauges and the dispatch latency (one per app)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StoreCollector(ctx, heartbeat))
    reg.register(DISPATCH_LATENCY)
    return reg
