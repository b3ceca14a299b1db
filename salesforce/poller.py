"""Incremental polling: which window of SystemModstamp to read, and the SOQL that reads it.

Peers lose records three ways: a transaction that commits after the cursor moved past its
timestamp, many rows sharing one timestamp, and a ``>=`` cursor with LIMIT that loops. So a
window can reach back ``overlap`` before the watermark (late commits land inside it; the
daemon's deep polls do, daemon.cycle.poll), ends a few seconds before the query starts (rows
still committing are read next time), reads every page instead of LIMIT, and the caller
processes rows idempotently on (Id, content).

Each object (Order, OrderItem, Invoice, InvoiceLine) has its own watermark. Queries go to
``queryAll`` so deleted rows (``IsDeleted = true``) come back too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from salesforce.batches import in_chunks

ORDER_FIELDS = (
    "Id",
    "OrderNumber",
    "AccountId",
    "Status",
    "Type",
    "EffectiveDate",
    "EndDate",
    "ActivatedDate",
    "Description",
    "OriginalOrderId",  # a change order's original (amendments, daemon.cycle.amend)
    "IsReductionOrder",
    "SystemModstamp",
)
LINE_FIELDS = (
    "Id",
    "Product2Id",
    "PricebookEntryId",
    "Quantity",
    "UnitPrice",
    "ServiceDate",
    "EndDate",
    "OriginalOrderItemId",  # the line a change order's line changes
)
PRODUCT_FIELDS = ("ProductCode", "Family", "Name")
INVOICE_FIELDS = (
    "Id",
    "DocumentNumber",
    "Status",
    "BillingAccountId",
    "Balance",
    "TotalAmount",
    "InvoiceDate",
    "DueDate",
    "ReferenceEntityId",
)
INVOICE_LINE_FIELDS = (
    "Id",
    "InvoiceId",
    "Product2Id",
    "Quantity",
    "ChargeAmount",
    "ReferenceEntityItemId",
)
#: The Order's Account name through its relationship: for people to read, never a change
#: to the order (daemon.store leaves it out of the content hash).
ACCOUNT_NAME = "Account.Name"
#: Fields every poll needs whatever the settings say: the key, the cursor, deletions.
SYSTEM_FIELDS = ("Id", "SystemModstamp", "IsDeleted")
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

ORDER, ORDER_ITEM, INVOICE, INVOICE_LINE = "Order", "OrderItem", "Invoice", "InvoiceLine"
OBJECTS = (ORDER, ORDER_ITEM, INVOICE, INVOICE_LINE)
#: Fields of type date (compared with date literals); the others are datetimes.
DATE_FIELDS = frozenset({"EffectiveDate", "EndDate", "InvoiceDate", "DueDate"})


@dataclass(frozen=True)
class Window:
    """Rows with ``after < SystemModstamp <= until``."""

    after: datetime
    until: datetime

    def soql(self) -> str:
        return (
            f"SystemModstamp > {soql_datetime(self.after)} "
            f"AND SystemModstamp <= {soql_datetime(self.until)}"
        )


@dataclass(frozen=True)
class DateRange:
    """Rows whose ``field`` falls on a day from ``since`` to ``until``, both included (UTC)."""

    field: str
    since: date
    until: date

    def soql(self) -> str:
        name = self.field
        if name in DATE_FIELDS:
            return f"{name} >= {self.since.isoformat()} AND {name} <= {self.until.isoformat()}"
        start = datetime.combine(self.since, time(), UTC)
        end = datetime.combine(self.until + timedelta(days=1), time(), UTC)
        return f"{name} >= {soql_datetime(start)} AND {name} < {soql_datetime(end)}"


def next_window(
    watermark: datetime | None, now: datetime, *, overlap: timedelta, settle: timedelta
) -> Window:
    """The window to poll at ``now``; its ``until`` is the next watermark once it is done.

    ``until`` never passes ``now - settle`` (the query's start), so the watermark never
    moves past a moment whose rows could still be committing.
    """
    until = (now - settle).replace(microsecond=0)
    after = EPOCH if watermark is None else min(watermark - overlap, until)
    return Window(after=after.replace(microsecond=0), until=until)


def soql_datetime(value: datetime) -> str:
    """A SOQL datetime literal (unquoted, UTC)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def soql_string(value: str) -> str:
    """A SOQL string literal, quoted and escaped."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _select(*groups: Iterable[str]) -> str:
    seen: dict[str, None] = {}
    for group in groups:
        for name in group:
            seen.setdefault(name, None)
    return ", ".join(seen)


@dataclass(frozen=True)
class PollFields:
    """The fields polled per object and the Order status filter (all settings)."""

    statuses: Sequence[str] = ("Activated",)
    order: Sequence[str] = ORDER_FIELDS
    line: Sequence[str] = LINE_FIELDS
    product: Sequence[str] = PRODUCT_FIELDS
    invoice: Sequence[str] = INVOICE_FIELDS
    invoice_line: Sequence[str] = INVOICE_LINE_FIELDS
    #: Whether Invoice and InvoiceLine are read (ORDERFLOW_SF_INVOICES; not every org has
    #: Revenue Cloud Billing's Invoice objects).
    invoices: bool = True
    #: Whether the Order's Account.Name is read (shown to operators; only when the user
    #: can read Account: without it the relationship is an INVALID_FIELD).
    account_names: bool = False

    @property
    def objects(self) -> tuple[str, ...]:
        """The objects polled, each from its own watermark."""
        return OBJECTS if self.invoices else (ORDER, ORDER_ITEM)

    def _status_filter(self) -> str:
        return f"Status IN ({', '.join(soql_string(s) for s in self.statuses)})"

    def _order_select(self) -> str:
        lines = _select(("Id",), self.line, (f"Product2.{f}" for f in self.product))
        account = (ACCOUNT_NAME,) if self.account_names else ()
        return (
            f"SELECT {_select(SYSTEM_FIELDS, self.order, account)}, "
            f"(SELECT {lines} FROM OrderItems WHERE IsDeleted = false ORDER BY Id) FROM Order"
        )

    def window_query(self, sobject: str, window: Window) -> str:
        """The queryAll SOQL for one object's window, in cursor order."""
        order_by = " ORDER BY SystemModstamp, Id"
        if sobject == ORDER:
            # Deleted orders are read whatever their status, to cancel or flag their plans.
            return (
                f"{self._order_select()} WHERE {window.soql()} "
                f"AND (IsDeleted = true OR {self._status_filter()}){order_by}"
            )
        fields = {
            ORDER_ITEM: ("OrderId", *self.line),
            INVOICE: self.invoice,
            INVOICE_LINE: ("InvoiceId", *self.invoice_line),
        }[sobject]
        return (
            f"SELECT {_select(SYSTEM_FIELDS, fields)} FROM {sobject} "
            f"WHERE {window.soql()}{order_by}"
        )

    def range_query(self, sobject: str, days: DateRange) -> str:
        """The queryAll SOQL re-reading one object's rows in a date range (a resync): Orders
        with their lines as a poll reads them, Invoices with their lines as a child query."""
        where = f"WHERE {days.soql()}"
        order_by = f" ORDER BY {days.field}, Id"
        if sobject == ORDER:
            return (
                f"{self._order_select()} {where} "
                f"AND (IsDeleted = true OR {self._status_filter()}){order_by}"
            )
        if sobject == INVOICE:
            lines = _select(SYSTEM_FIELDS, ("InvoiceId", *self.invoice_line))
            return (
                f"SELECT {_select(SYSTEM_FIELDS, self.invoice)}, "
                f"(SELECT {lines} FROM InvoiceLines WHERE IsDeleted = false ORDER BY Id) "
                f"FROM Invoice {where}{order_by}"
            )
        raise ValueError(f"no range query for {sobject}")

    def orders_by_id(self, order_ids: Iterable[str], *, deleted: bool = False) -> list[str]:
        """Queries re-reading these orders with their lines, cut to fit a URI; with
        ``deleted`` (for queryAll) deleted ones too, whatever their status."""
        statuses = f"(IsDeleted = true OR {self._status_filter()})" if deleted else None

        def render(chunk: list[str]) -> str:
            ids = ", ".join(soql_string(i) for i in chunk)
            where = statuses or self._status_filter()
            return f"{self._order_select()} WHERE Id IN ({ids}) AND {where}"

        return in_chunks(sorted(set(order_ids)), render)

    def invoices_by_id(self, invoice_ids: Iterable[str]) -> list[str]:
        """queryAll SOQL reading these Invoices with their lines (as a resync reads them)."""
        lines = _select(SYSTEM_FIELDS, ("InvoiceId", *self.invoice_line))

        def render(chunk: list[str]) -> str:
            ids = ", ".join(soql_string(i) for i in chunk)
            return (
                f"SELECT {_select(SYSTEM_FIELDS, self.invoice)}, "
                f"(SELECT {lines} FROM InvoiceLines WHERE IsDeleted = false ORDER BY Id) "
                f"FROM Invoice WHERE Id IN ({ids})"
            )

        return in_chunks(sorted(set(invoice_ids)), render)

    def order_of_lines(self, line_ids: Iterable[str]) -> list[str]:
        """queryAll SOQL reading the OrderId of these OrderItems."""

        def render(chunk: list[str]) -> str:
            ids = ", ".join(soql_string(i) for i in chunk)
            return f"SELECT Id, OrderId FROM OrderItem WHERE Id IN ({ids})"

        return in_chunks(sorted(set(line_ids)), render)


def order_query(
    window: Window,
    *,
    statuses: Iterable[str],
    order_fields: Iterable[str] = ORDER_FIELDS,
    line_fields: Iterable[str] = LINE_FIELDS,
    product_fields: Iterable[str] = PRODUCT_FIELDS,
) -> str:
    """Orders in the window with their lines and products, in one query (a child subquery)."""
    spec = PollFields(
        statuses=tuple(statuses),
        order=tuple(order_fields),
        line=tuple(line_fields),
        product=tuple(product_fields),
    )
    return spec.window_query(ORDER, window)
