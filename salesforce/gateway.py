"""The Salesforce gateway: the only object that calls Salesforce's REST API.

It wraps a ``simple_salesforce.Salesforce`` (handed in, so tests and other callers choose
how it logs in) and, around every call:

- asks the budget (:mod:`salesforce.budget`) whether the call may be made at all, and
  while a spent allowance holds calls, probes ``GET /limits`` when the budget says so;
- puts a timeout on it and reads ``Retry-After`` and ``Sforce-Limit-Info`` from the
  answer (:mod:`salesforce.transport`);
- translates every error into Orderflow's own (:mod:`salesforce.errors`);
- renews an expired session once per attempt and repeats the call (when it was given a
  way to log in); a session refused on every attempt right after renewal is fatal;
- retries what is worth retrying, with exponential back-off and jitter, never shorter
  than the ``Retry-After`` Salesforce asked for.

Queries and writes are packed into Composite calls (:mod:`salesforce.batches`); many
records of one object can go in one Bulk API 2.0 job instead (:mod:`salesforce.ingest`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

from simple_salesforce.api import Salesforce
from tenacity import (
    RetryCallState,
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from orchestration.errors import BudgetExhausted, FatalError, RetriableError
from salesforce import ingest
from salesforce.batches import CollectionRequest, collection_requests, packs
from salesforce.budget import PacePolicy, Pacer
from salesforce.errors import (
    SessionExpired,
    classify,
    error_code,
    error_message,
    translate,
)
from salesforce.results import WriteResult
from salesforce.transport import ApiUsage, Watch, instrument

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_WAIT = 120.0
Relogin = Callable[[], Salesforce]


class SalesforceGateway:
    """Queries and writes through one ``simple_salesforce.Salesforce`` client."""

    def __init__(
        self,
        sf: Salesforce,
        *,
        timeout: float = 30.0,
        attempts: int = 4,
        relogin: Relogin | None = None,
        pacer: Pacer | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout = timeout
        self.attempts = attempts
        self.relogin = relogin
        self.pacer = pacer or Pacer(PacePolicy())
        self.clock = clock
        self.sleep = sleep
        self.sf = sf
        self.watch: Watch = instrument(sf.session, timeout)
        self.renewals = 0
        #: The login's identity URL (``.../id/{org id}/{user id}``), when the login gave one.
        self.identity = ""
        #: Calls sent (each attempt counts: it costs one from the org's allowance).
        self.calls = 0

    # -- the call wrapper -------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[Salesforce], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception(_worth_retrying),
            wait=_wait,
            stop=stop_after_attempt(self.attempts),
            before_sleep=before_sleep_log(log, logging.WARNING),
            sleep=self.sleep,
            reraise=True,
        )
        try:
            result: T = retrying(self._attempt, what, fn)
        except SessionExpired as exc:
            raise FatalError(f"{exc} (each time, right after logging in again)") from exc
        return result

    def _attempt(self, what: str, fn: Callable[[Salesforce], T]) -> T:
        if self.pacer.probe_due(self.clock()):
            self._probe()
        refusal = self.pacer.allow(self.clock())
        if refusal is not None:
            raise BudgetExhausted(f"Salesforce {what} not sent: {refusal}")
        return self._send(what, fn)

    def _send(self, what: str, fn: Callable[[Salesforce], T]) -> T:
        renewed = False
        while True:
            self.calls += 1
            try:
                result = fn(self.sf)
            except Exception as exc:
                self.pacer.observe(self.watch.usage)
                error = translate(exc, what, retry_after=self.watch.retry_after)
                if isinstance(error, SessionExpired) and not renewed:
                    self._renew(error)
                    renewed = True
                    continue
                if isinstance(error, BudgetExhausted):
                    self.pacer.spent(self.clock(), error.retry_after)
                raise error from exc
            self.pacer.observe(self.watch.usage)
            return result

    def _probe(self) -> None:
        """Calls are held for a spent allowance: ask ``GET /limits`` whether it is back (a
        refusal's ``Sforce-Limit-Info`` answers too), and resume when it is."""
        now = self.clock()
        try:
            limits = self._send("limits probe", partial(_limits, timeout=self.timeout))
        except RetriableError as exc:
            usage = self.watch.usage if isinstance(exc, BudgetExhausted) else None
            log.info("Salesforce allowance probe: %s", exc)
        else:
            usage = _daily_usage(limits) or self.watch.usage
        if self.pacer.probed(now, usage):
            log.info(
                "Salesforce API allowance is back (%s of %s calls left): calls resume",
                usage.left if usage else "?",
                usage.limit if usage else "?",
            )
        else:
            log.warning(
                "Salesforce API allowance still spent or under the reserve; next probe in %g s",
                self.pacer.policy.probe_interval,
            )

    def _renew(self, error: SessionExpired) -> None:
        if self.relogin is None:
            raise FatalError(
                f"{error}; the session cannot be renewed (a session id was given: set "
                "ORDERFLOW_SF_AUTH to a login flow, or give a fresh session id)"
            )
        log.info("Salesforce session expired; logging in again")
        self.sf = self.relogin()
        self.watch = instrument(self.sf.session, self.timeout)
        self.renewals += 1

    def renew_session(self) -> None:
        """Log in again because another API (Pub/Sub) refused the session."""
        self._renew(SessionExpired("Salesforce Pub/Sub API: session refused"))

    @property
    def base_path(self) -> str:
        return f"/services/data/v{self.sf.sf_version}"

    # -- queries ----------------------------------------------------------------------------
    def query_pages(self, soql: str, *, include_deleted: bool = False) -> Iterator[list[Any]]:
        """Each page of a query's records, following ``nextRecordsUrl``; one page in memory."""
        page = self._call(
            "query",
            lambda sf: sf.query(soql, include_deleted=include_deleted, timeout=self.timeout),
        )
        yield from self.rest_of(page)

    def query_sized(
        self, soql: str, *, include_deleted: bool = False
    ) -> tuple[int, Iterator[list[Any]]]:
        """The query's ``totalSize`` (its first page is read now) and each of its pages, as
        :meth:`query_pages` gives them: for a progress bar over a long read."""
        page = self._call(
            "query",
            lambda sf: sf.query(soql, include_deleted=include_deleted, timeout=self.timeout),
        )
        return int(page.get("totalSize") or 0), self.rest_of(page)

    def rest_of(self, page: Any) -> Iterator[list[Any]]:
        """Each page of a result whose first page is in hand (a query's, or a parent's child
        relationship result), following ``nextRecordsUrl`` with queryMore."""
        while True:
            yield list(page["records"])
            if page.get("done", True):
                return
            url = str(page["nextRecordsUrl"])
            page = self._call("query more", partial(_query_more, url=url, timeout=self.timeout))

    def query_many(self, queries: Sequence[tuple[str, bool]]) -> list[Iterator[list[Any]]]:
        """Several queries (SOQL, include deleted) whose first pages come in one Composite
        call per five; each answer is an iterator of pages, like :meth:`query_pages`."""
        firsts: list[Any] = []
        for pack in packs(queries):
            subs = [
                {
                    "method": "GET",
                    "url": f"{self.base_path}/{'queryAll' if deleted else 'query'}/"
                    f"?q={quote(soql)}",
                    "referenceId": f"q{n}",
                }
                for n, (soql, deleted) in enumerate(pack)
            ]
            firsts.extend(self._call("query", partial(_composite, subs=subs, timeout=self.timeout)))
        for answer in firsts:
            status, body = answer["httpStatusCode"], answer["body"]
            if status >= 300:
                raise _sub_error("query", status, body)
        return [self.rest_of(answer["body"]) for answer in firsts]

    # -- writes -----------------------------------------------------------------------------
    def update(
        self, sobject: str, records: list[dict[str, Any]], *, parent: str | None = None
    ) -> list[WriteResult]:
        """Update records (each with ``Id``); one result per record, in the order given.

        With ``parent`` (a field of each record, not written), records of one parent share
        a collections request."""
        requests = collection_requests(sobject, records, parent=parent)
        results = self.write(requests)
        by_id = {r.id: r for batch in results for r in batch}
        missing = WriteResult("", False, "NO_RESULT", "Salesforce sent no result for it")
        return [by_id.get(str(r["Id"]), missing._replace(id=str(r["Id"]))) for r in records]

    def upsert(
        self, sobject: str, ext_field: str, records: list[dict[str, Any]]
    ) -> list[WriteResult]:
        """Create or update records by external id (e.g. Fulfillment_Task__c by Task_Key__c)."""
        requests = collection_requests(sobject, records, ext_field=ext_field)
        return [r for batch in self.write(requests) for r in batch]

    def write(self, requests: Sequence[CollectionRequest]) -> list[list[WriteResult]]:
        """Send collections requests, five to a Composite call; every record's result."""
        out: list[list[WriteResult]] = []
        for pack in packs(requests):
            subs = [
                {
                    "method": "PATCH",
                    "url": f"{self.base_path}/{req.path()}",
                    "referenceId": f"w{n}",
                    "body": req.body(),
                }
                for n, req in enumerate(pack)
            ]
            answers = self._call("update", partial(_composite, subs=subs, timeout=self.timeout))
            for req, answer in zip(pack, answers, strict=True):
                out.append(_write_results(req, answer))
        return out

    def bulk_write(
        self,
        sobject: str,
        records: Sequence[dict[str, Any]],
        *,
        ext_field: str | None = None,
        on_open: Callable[[str], None] | None = None,
    ) -> dict[str, WriteResult]:
        """Update records (each with ``Id``), or upsert them on ``ext_field``, in one Bulk API
        2.0 job, waiting for it to finish (:func:`salesforce.ingest.run_job`): the results
        known, by ``Id`` or external id. Worth it from :data:`salesforce.ingest.BULK_MIN`.
        ``on_open`` is told the job's id before anything can be saved by it."""
        return ingest.run_job(
            self._job_calls(), sobject, records, ext_field=ext_field, on_open=on_open
        )

    def bulk_state(self, job_id: str) -> str:
        """The state of a Bulk API 2.0 ingest job (:func:`salesforce.ingest.job_state`)."""
        return ingest.job_state(self._job_calls(), job_id)

    def _job_calls(self) -> ingest.JobCalls:
        return ingest.JobCalls(self._call, self.sleep, self.timeout)

    # -- the budget -------------------------------------------------------------------------
    @property
    def api_usage(self) -> ApiUsage | None:
        """Calls used and the allowance, as Salesforce last reported them."""
        return self.watch.usage or self.pacer.usage


def _limits(sf: Salesforce, *, timeout: float) -> Any:
    return sf.limits(timeout=timeout)


def _daily_usage(limits: Any) -> ApiUsage | None:
    """``DailyApiRequests`` of a ``/limits`` answer as :class:`ApiUsage`."""
    daily = limits.get("DailyApiRequests") if isinstance(limits, dict) else None
    if not isinstance(daily, dict) or "Max" not in daily or "Remaining" not in daily:
        return None
    limit = int(daily["Max"])
    return ApiUsage(limit - int(daily["Remaining"]), limit)


def _query_more(sf: Salesforce, *, url: str, timeout: float) -> Any:
    return sf.query_more(url, identifier_is_url=True, timeout=timeout)


def _composite(sf: Salesforce, *, subs: list[dict[str, Any]], timeout: float) -> list[Any]:
    answer: Any = sf.restful(
        "composite",
        method="POST",
        json={"allOrNone": False, "compositeRequest": subs},
        timeout=timeout,
    )
    responses = list(answer["compositeResponse"])
    # A subrequest answered 503 / lock as a whole is retried with the call; other
    # subrequest failures are the caller's to read.
    for item in responses:
        status, body = int(item["httpStatusCode"]), item.get("body")
        error = _sub_error("composite subrequest", status, body) if status >= 300 else None
        if isinstance(error, RetriableError) and not isinstance(error, BudgetExhausted):
            raise error
    return responses


def _sub_error(what: str, status: int, body: Any) -> Exception:
    code = error_code(body)
    text = f"Salesforce {what}: HTTP {status} {code}: {error_message(body)}".rstrip()
    return classify(status, code, text)


def _worth_retrying(exc: BaseException) -> bool:
    # A spent allowance is not cured by seconds of back-off (the budget waits it out). A
    # session refused right after its renewal is tried again, a few times only.
    return isinstance(exc, RetriableError) and not isinstance(exc, BudgetExhausted)


_exponential = wait_random_exponential(multiplier=0.5, max=20)


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    asked = getattr(exc, "retry_after", None) or 0.0
    return min(MAX_WAIT, max(float(asked), _exponential(state)))


def _write_results(req: CollectionRequest, answer: dict[str, Any]) -> list[WriteResult]:
    status, body = int(answer["httpStatusCode"]), answer.get("body")
    keys = [str(r.get("Id") or r.get(req.ext_field or "Id") or "") for r in req.records]
    if status >= 300 or not isinstance(body, list):
        code, message = error_code(body) or f"HTTP_{status}", error_message(body)[:255]
        return [WriteResult(key, False, code, message) for key in keys]
    out = []
    for key, result in zip(keys, body, strict=False):
        errors = result.get("errors") or []
        first = errors[0] if errors else {}
        out.append(
            WriteResult(
                id=str(result.get("id") or key),
                success=bool(result.get("success")),
                code=str(first.get("statusCode") or ""),
                message=str(first.get("message") or "")[:255],
                created=bool(result.get("created")),
            )
        )
    return out
