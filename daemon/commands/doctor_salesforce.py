"""The doctor's Salesforce checks: login, budget, and what describe shows the API user.

Describe answers as the integration user sees the org: a field its permission sets do not
grant is absent, one it may read but not edit is not updateable, an object it cannot read
is not listed. So these checks prove the grants as well as the deployment, for what this
configuration will use: the polled fields (``ORDERFLOW_SF_*_FIELDS``), the written ones
(``ORDERFLOW_SF_WRITEBACK_FIELDS``), Invoice when enabled (``ORDERFLOW_SF_INVOICES``), and
every value written into a picklist (``salesforce.fields.PICKLISTS``). Each problem is a
FAIL line of its own, named ``salesforce.describe.<Object>.<Field>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from daemon.commands.checks import LOW_BUDGET, Check, fail, guard
from orchestration.errors import OrderflowError

_GRANT = "grant it in a permission set of the integration user"


@dataclass
class Wanted:
    """What this configuration reads, updates, creates and puts in picklists, by object."""

    read: set[str] = field(default_factory=set)
    updated: set[str] = field(default_factory=set)
    created: set[str] = field(default_factory=set)
    picklists: dict[str, set[str]] = field(default_factory=dict)


def wanted(settings: Any, invoices: bool) -> dict[str, Wanted]:
    """The fields of each object this configuration uses, under their configured names."""
    from daemon import app
    from daemon.cycle import invoices as invoice_flow
    from salesforce.fields import ORDER, ORDER_ITEM, PICKLISTS

    polled = app.poll_fields(settings)
    status = settings.status_fields()
    out: dict[str, Wanted] = {}

    def of(sobject: str) -> Wanted:
        return out.setdefault(sobject, Wanted())

    of(ORDER).read.update(polled.order)
    of(ORDER_ITEM).read.update(polled.line)
    of("Product2").read.update(polled.product)
    for sobject, names in status.by_object().items():
        of(sobject).updated.update(names)
    task = of(status.task_object)
    task.created.update({*task.updated, status.task_order})
    if invoices:
        of(invoice_flow.INVOICE).read.update(polled.invoice)
        of(invoice_flow.INVOICE_LINE).read.update(polled.invoice_line)
        of(invoice_flow.INVOICE).updated.update(
            {invoice_flow.DOCUMENT_FIELD, invoice_flow.SYNC_FIELD}
        )
    for key, values in PICKLISTS.items():
        sobject, name = status.configured(key)
        if sobject in out:
            out[sobject].picklists[name] = {str(v.value) for v in values}
    return out


def problems(describe: Mapping[str, Any], want: Wanted) -> list[tuple[str, str]]:
    """(field, what is wrong) for each problem of one object's describe."""
    present = {str(f["name"]).lower(): f for f in describe["fields"]}
    found: list[tuple[str, str]] = []
    for name in sorted({*want.read, *want.updated, *want.created}):
        meta = present.get(name.lower())
        if meta is None:
            found.append((name, f"missing or not readable by this user: deploy it, {_GRANT}"))
            continue
        if name in want.updated and not meta.get("updateable"):
            found.append((name, f"not editable by this user: {_GRANT} (edit)"))
        elif name in want.created and not meta.get("createable"):
            found.append((name, f"cannot be set on create by this user: {_GRANT} (edit)"))
        allowed = {str(v["value"]) for v in meta.get("picklistValues") or [] if v.get("active")}
        missing = sorted(want.picklists.get(name, set()) - allowed)
        if missing and meta.get("type") == "picklist":
            found.append((name, f"picklist does not allow {', '.join(missing)}"))
    if want.created and not describe.get("createable"):
        found.append(("*", f"records cannot be created by this user: {_GRANT} (create)"))
    return found


def salesforce_checks(settings: Any) -> list[Check]:
    """Login, the API budget, whether Invoices are read, then each object's describe."""
    from daemon.app import invoices_enabled, salesforce
    from salesforce.errors import translate

    try:
        gateway = salesforce(settings)
    except Exception as exc:
        return [
            fail("salesforce.login", exc),
            Check("salesforce.api_budget", "skip", "needs a Salesforce login"),
            Check("salesforce.describe", "skip", "needs a Salesforce login"),
        ]
    sf = gateway.sf

    def call(what: str, path: str) -> Any:
        try:
            return sf.restful(path, method="GET", timeout=settings.sf_timeout)
        except Exception as exc:
            raise translate(exc, what) from exc

    checks = [Check("salesforce.login", "pass", f"logged in to {sf.sf_instance}")]
    checks.append(guard("salesforce.api_budget", lambda: _budget(call("limits", "limits"))))
    try:
        invoices = invoices_enabled(settings, gateway)
    except Exception as exc:
        checks.append(fail("salesforce.invoices", exc))
        invoices = False
    else:
        state = "on" if invoices else "off"
        checks.append(
            Check(
                "salesforce.invoices",
                "pass",
                f"{state} (ORDERFLOW_SF_INVOICES={settings.sf_invoices})",
            )
        )
    checks.append(_events(settings, gateway, invoices))
    for sobject, want in sorted(wanted(settings, invoices).items()):
        checks.extend(_object(sobject, want, call))
    return checks


def _events(settings: Any, gateway: Any, invoices: bool) -> Check:
    """The change event subscription (topics, schemas, auth) as ORDERFLOW_SF_EVENTS says."""
    from daemon.service import subscription

    ok, detail = subscription.check(gateway, settings, invoices)
    return Check("salesforce.events", "pass" if ok else "fail", detail)


def _object(sobject: str, want: Wanted, call: Callable[[str, str], Any]) -> list[Check]:
    name = f"salesforce.describe.{sobject}"
    try:
        found = problems(call(f"describe {sobject}", f"sobjects/{sobject}/describe"), want)
    except Exception as exc:
        check = fail(name, exc)
        if "INVALID_TYPE" in check.detail or "NOT_FOUND" in check.detail:
            detail = f"{sobject} missing or not readable by this user: {_GRANT} (read)"
            check = Check(name, "fail", detail)
        return [check]
    if not found:
        fields = len(want.read | want.updated | want.created)
        return [Check(name, "pass", f"{fields} fields readable, {len(want.updated)} editable")]
    return [
        Check(name if field_name == "*" else f"{name}.{field_name}", "fail", problem)
        for field_name, problem in found
    ]


def _budget(limits: Any) -> str:
    daily = limits["DailyApiRequests"]
    most, left = int(daily["Max"]), int(daily["Remaining"])
    detail = f"{most - left} of {most} daily API calls used, {left} left"
    if most and left < most * LOW_BUDGET:
        raise OrderflowError(f"{detail}: under {LOW_BUDGET:.0%} of the allowance")
    return detail
