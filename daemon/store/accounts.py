"""Account names for people to read, as Salesforce gave them with each Order.

The poll reads ``Account.Name`` through the Order's relationship when the integration user
can read Account (daemon.app.account_names); it is kept with the polled Order
(``source_records``), never compared for changes, never sent downstream. Where there is no
name (no Account read, an Order polled before names were read, a null relationship), the
canvas and ``orderflow status`` show the Account id as before.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.store.models import SourceRecord


def name_in(record: dict[str, Any]) -> str | None:
    """The Account name a polled Order carries, or None."""
    account = record.get("Account")
    name = account.get("Name") if isinstance(account, dict) else None
    return (name.strip() or None) if isinstance(name, str) else None


def account_names(session: Session, order_ids: Collection[str]) -> dict[str, str]:
    """Order id -> its Account's name, for the orders that have one."""
    if not order_ids:
        return {}
    rows = session.scalars(
        select(SourceRecord).where(
            SourceRecord.sobject == "Order", SourceRecord.sf_id.in_(list(order_ids))
        )
    )
    return {row.sf_id: name for row in rows if (name := name_in(row.data)) is not None}
