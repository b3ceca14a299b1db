"""The :class:`Emulator`: a local Salesforce org over real HTTPS, for tests and demos."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from salesforce.emulator import metadata
from salesforce.emulator.access import ORG_GRANTS, Access, undeployable
from salesforce.emulator.api import RestApi
from salesforce.emulator.auth import Sessions
from salesforce.emulator.bulk import BulkIngest
from salesforce.emulator.events import Bus
from salesforce.emulator.faults import Fault, FaultDice, FaultKind
from salesforce.emulator.gateway import Gateway
from salesforce.emulator.metadata import Grants
from salesforce.emulator.org import Org
from salesforce.emulator.pubsub import PubSubServer, control
from salesforce.emulator.query import CHILD_BATCH, QueryEngine
from salesforce.emulator.schema import Schema
from salesforce.emulator.server import HttpsServer
from salesforce.emulator.store import Store
from salesforce.emulator.tls import write_self_signed

logger = logging.getLogger(__name__)


class Emulator:
    """A Salesforce org emulator whose records live in ``workdir/emulator.db``."""

    def __init__(
        self,
        workdir: Path,
        *,
        api_version: str = "62.0",
        client_id: str = "orderflow-demo",
        client_secret: str = "demo-secret",  # noqa: S107 - the documented demo secret
        daily_limit: int = 1_000_000,
        port: int = 0,
        child_batch: int = CHILD_BATCH,
        permission_sets: Sequence[str] | None = None,
        invoices: bool = True,
        admin_api: bool = False,
        pubsub: bool = True,
        pubsub_keepalive: float = 270.0,
        pubsub_idle_timeout: float = 60.0,
    ) -> None:
        """``permission_sets``: those of salesforce/metadata assigned to the API user (None:
        the integration user's, ``metadata.INTEGRATION_SETS``); ``admin_api``: the API user
        is an administrator who sees and may write every field instead (the emulator's own
        API tests); ``invoices``: whether the org has Invoice objects (Revenue Cloud
        Billing) and so their metadata deployed; ``pubsub``: whether the org answers on the
        Pub/Sub API (Change Data Capture; a real org may have none), its streams sending a
        keepalive every ``pubsub_keepalive`` seconds when idle with events requested, and
        ending when nothing was requested for ``pubsub_idle_timeout`` seconds."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.api_version = api_version
        self._port = port
        deployed = metadata.load()
        self.schema = Schema(deployed, invoices=invoices)
        grants = Grants()
        assigned = metadata.INTEGRATION_SETS if permission_sets is None else permission_sets
        for name in deployed.permission_sets:
            refused = undeployable(self.schema, deployed.permission_sets[name])
            if refused:
                raise ValueError(f"permission set {name}: {refused[0]}")
        for name in assigned:
            grants.merge(deployed.permission_sets[name])
        grants.merge(ORG_GRANTS)
        #: The API user's permission sets, applied (``access.revoke`` takes a grant away).
        self.access = Access(self.schema, grants)
        self.store = Store(self.workdir / "emulator.db")
        self.org = Org(self.schema, self.store, None if admin_api else self.access)
        self._sessions = Sessions(client_id, client_secret)
        self._dice = FaultDice()
        #: Runs SOQL; ``child_batch`` and ``max_cursors`` can be changed while it serves.
        self.queries = QueryEngine(self.org, api_version, child_batch=child_batch)
        self._gateway: Gateway
        self._api = RestApi(self.org, self.queries, self._dice, lambda: self._gateway.usage())
        self._gateway = Gateway(
            self._api, self._sessions, self._dice, daily_limit, lambda: self.url
        )
        self._server: HttpsServer | None = None
        #: The change event bus (Change Data Capture): controls and counters for tests.
        self.events = Bus(
            self.schema,
            deployed.cdc_entities,
            api_version,
            readable=lambda name: self.org.api_schema().obj(name),
        )
        if pubsub:  # an org without the Pub/Sub API keeps no change events
            self.store.watch(self.events.watched_objects(), self.events.publish)
            self._gateway.pubsub_control = partial(control, self.events)
        self._pubsub = (
            PubSubServer(
                self.events,
                self._sessions,
                lambda: self.url,
                keepalive=pubsub_keepalive,
                idle_timeout=pubsub_idle_timeout,
            )
            if pubsub
            else None
        )

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Bind 127.0.0.1 (a free port when ``port`` is 0) and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        write_self_signed(self.ca_file, self.workdir / "emulator-key.pem")
        self._server = HttpsServer(
            self._port, self._gateway.dispatch, self.ca_file, self.workdir / "emulator-key.pem"
        )
        self._server.start()
        if self._pubsub is not None:
            self._pubsub.start(self.ca_file, self.workdir / "emulator-key.pem")
            logger.info("Pub/Sub API serving at %s", self.pubsub_endpoint)
        logger.info("Salesforce emulator serving at %s", self.url)

    def stop(self) -> None:
        """Stop serving and close the database."""
        self.bulk.processing.set()  # a job held in the queue ends with the emulator
        if self._pubsub is not None:
            self._pubsub.stop()
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.store.close()

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT`` (only once started)."""
        if self._server is None:
            raise RuntimeError("emulator not started")
        return f"https://127.0.0.1:{self._server.port}"

    @property
    def ca_file(self) -> Path:
        """The PEM certificate clients should trust."""
        return self.workdir / "emulator-cert.pem"

    @property
    def pubsub_endpoint(self) -> str:
        """``127.0.0.1:PORT`` of the Pub/Sub API (gRPC, TLS with ``ca_file``), once started;
        RuntimeError when the emulator runs without it."""
        if self._pubsub is None or self._server is None:
            raise RuntimeError("the emulator serves no Pub/Sub API")
        return f"127.0.0.1:{self._pubsub.port}"

    @property
    def token_url(self) -> str:
        """The OAuth token endpoint."""
        return f"{self.url}/services/oauth2/token"

    # -- counters, sessions, faults ---------------------------------------------------------
    @property
    def api_calls(self) -> int:
        """REST calls counted so far (token requests excluded)."""
        return int(self._gateway.stats()["api_calls"])

    @property
    def api_usage(self) -> tuple[int, int]:
        """(calls in the rolling 24-hour window, the daily allowance), as /limits says."""
        return self._gateway.usage()

    def free_calls(self, n: int) -> None:
        """Let the rolling 24-hour window free ``n`` calls (the oldest fall out of it)."""
        self._gateway.free_calls(n)

    def spend_calls(self, n: int) -> None:
        """Other integrations sharing the org spend ``n`` calls of the allowance."""
        self._gateway.spend_calls(n)

    @property
    def bulk(self) -> BulkIngest:
        """The Bulk API 2.0 ingest jobs (``pending_polls`` can be changed while it serves)."""
        return self._api.bulk

    @property
    def calls_by_kind(self) -> dict[str, int]:
        """Counted calls by kind: query, queryMore, composite, composite/sobjects, ..."""
        return dict(self._gateway.stats()["calls_by_kind"])

    @property
    def composite_subrequests(self) -> dict[str, int]:
        """Subrequests run inside Composite calls, by kind (they cost no API call)."""
        return dict(self._api.subrequests)

    def issue_session(self) -> str:
        """A valid access token, without an HTTP round trip."""
        return self._sessions.issue()

    @property
    def faults(self) -> Fault:
        """The fault-injection rates in force."""
        return self._dice.fault

    @faults.setter
    def faults(self, fault: Fault) -> None:
        self._dice.configure(fault)

    def set_faults(self, fault: Fault) -> None:
        """Set the fault-injection rates (and reseed)."""
        self._dice.configure(fault)

    def refuse_next(self, kind: FaultKind, times: int = 1) -> None:
        """The next ``times`` API calls fail with ``kind`` (e.g. ``"concurrent"``)."""
        self._dice.force(kind, times)

    # -- Change Data Capture ---------------------------------------------------------------
    def select_cdc(self, entities: Sequence[str]) -> None:
        """Select the entities (``OrderChangeEvent``, ...) for Change Data Capture."""
        self.events.select(entities)
        if self._pubsub is not None:
            self.store.watch(self.events.watched_objects(), self.events.publish)

    def drop_streams(self) -> None:
        """End every open Subscribe stream with UNAVAILABLE."""
        self.events.drop_streams()

    def send_gap(
        self, entity: str, record_ids: Sequence[str] = (), change_type: str = "GAP_UPDATE"
    ) -> None:
        """Publish a gap event (GAP_UPDATE for ``record_ids``, or GAP_OVERFLOW, ...)."""
        self.events.send_gap(entity, record_ids, change_type)

    def forget_events(self, before: bytes | None = None) -> None:
        """Forget change events older than replay id ``before`` (None: all so far)."""
        self.events.forget(None if before is None else int.from_bytes(before, "big"))

    def pause_events(self) -> None:
        """Hold change events back until :meth:`resume_events`."""
        self.events.pause()

    def resume_events(self) -> None:
        """Publish the held change events."""
        self.events.resume()

    @property
    def events_published(self) -> dict[str, int]:
        """Change events published so far, by topic (``/data/OrderChangeEvent``: N)."""
        return dict(self.events.published)

    # -- records (no HTTP, not counted) ---------------------------------------------------------
    def insert(
        self, sobject: str, fields: Mapping[str, Any], *, system_modstamp: datetime | None = None
    ) -> str:
        """Create a record; returns its 18-character Id."""
        return self.org.create_many(sobject, [fields], modstamp=system_modstamp)[0]

    def insert_many(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        *,
        system_modstamp: datetime | None = None,
    ) -> list[str]:
        """Create many records in one transaction; returns their Ids in order."""
        return self.org.create_many(sobject, records, modstamp=system_modstamp)

    def update(
        self,
        sobject: str,
        record_id: str,
        fields: Mapping[str, Any],
        *,
        system_modstamp: datetime | None = None,
    ) -> None:
        """Change fields and stamp SystemModstamp."""
        self.org.update(sobject, record_id, fields, modstamp=system_modstamp)

    def update_many(self, sobject: str, changes: Mapping[str, Mapping[str, Any]]) -> None:
        """Change fields of many records (by Id) in one transaction."""
        with self.store.transaction():
            for record_id, fields in changes.items():
                self.org.update(sobject, record_id, fields)

    def delete(self, sobject: str, record_id: str) -> None:
        """Move a record to the recycle bin (``IsDeleted = true``)."""
        self.org.delete(sobject, record_id)

    def get(self, sobject: str, record_id: str) -> dict[str, Any]:
        """A record's current fields (deleted ones too)."""
        return self.org.public_fields(self.org.load(sobject, record_id, deleted_ok=True))

    def records(self, sobject: str) -> list[dict[str, Any]]:
        """All live records of an object, in insertion order."""
        odef = self.schema.obj(sobject)
        return [self.org.public_fields(row) for row in self.store.scan(odef.name)]

    def api_saves(self, record_id: str) -> int:
        """How many times the API saved this record (created or updated it)."""
        return self.org.api_saves[record_id]

    def remove_field(self, sobject: str, field: str) -> None:
        """Drop a field from the schema (queries and writes naming it then fail)."""
        self.schema.remove_field(sobject, field)
