"""Change Data Capture in the emulated org: change event schemas and the event bus.

- **Topics**: ``/data/OrderChangeEvent`` and the like, one per entity selected for CDC (the
  metadata's PlatformEventChannelMember components on ``ChangeEvents``, or a test's choice).
- **Schemas**: the Avro record Salesforce sends (``com.sforce.eventbus.OrderChangeEvent``):
  ``ChangeEventHeader`` first, then one nullable field per object field in the schema's
  order; its id is a hash of the JSON, so it changes when the object's fields do.
- **Publishing**: the store reports each committed transaction (:meth:`Bus.publish`); one
  event per changed record: CREATE with every non-null field, UPDATE with only the changed
  fields set and marked in ``changedFields`` (those set to null in ``nulledFields``),
  DELETE / UNDELETE. ``commitUser`` is the writer, ``commitTimestamp`` the SystemModstamp.
- **Replay ids**: 8-byte big-endian, growing; they start above wall-clock milliseconds, so a
  replay id from an earlier run of the emulator is unknown here, as after a real org's
  retention. Events are kept 72 hours of commit time; :meth:`Bus.forget` drops them sooner.
- **Controls**: pause (events wait, unnumbered) and resume, gap events, dropping every open
  stream (:class:`salesforce.emulator.pubsub.PubSubServer` watches ``drops``).
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import io
import itertools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import fastavro

from salesforce.emulator.auth import API_USER_ID
from salesforce.emulator.schema import NUMBER_TYPES, FieldDef, ObjectDef, Schema
from salesforce.emulator.store import Change
from salesforce.emulator.values import parse_datetime
from salesforce.pubsub import changed_fields

#: The change event entities Orderflow reads, by the object they follow.
ENTITIES = {"Order": "OrderChangeEvent", "OrderItem": "OrderItemChangeEvent"}
ENTITIES["Invoice"] = "InvoiceChangeEvent"
RETENTION_MS = 72 * 3600 * 1000
#: The record id a GAP_OVERFLOW event carries: every record of the entity may have changed.
OVERFLOW_ID = "000000000000000AAA"
GAP_TYPES = ("GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW")
_CHANGE_TYPES = ["CREATE", "UPDATE", "DELETE", "UNDELETE", *GAP_TYPES]
_LEFT_OUT = ("Id", "IsDeleted", "SystemModstamp")  # the header carries these
_EPOCH = date(1970, 1, 1)


def _header_schema() -> dict[str, Any]:
    strings = {"type": "array", "items": "string"}
    fields: list[tuple[str, Any]] = [
        ("entityName", "string"),
        ("recordIds", strings),
        ("changeType", {"type": "enum", "name": "ChangeType", "symbols": _CHANGE_TYPES}),
        ("changeOrigin", "string"),
        ("transactionKey", "string"),
        ("sequenceNumber", "int"),
        ("commitTimestamp", "long"),
        ("commitNumber", "long"),
        ("commitUser", "string"),
        ("nulledFields", strings),
        ("diffFields", strings),
        ("changedFields", strings),
    ]
    return {
        "type": "record",
        "name": "ChangeEventHeader",
        "fields": [{"name": name, "type": kind} for name, kind in fields],
    }


def _avro_type(fdef: FieldDef) -> Any:
    if fdef.type == "boolean":
        return "boolean"
    if fdef.type == "int":
        return "int"
    if fdef.type in NUMBER_TYPES:
        return "double"
    if fdef.type == "datetime":
        return "long"  # epoch milliseconds, as Salesforce sends them
    if fdef.type == "date":
        return {"type": "int", "logicalType": "date"}
    return "string"


def _avro_value(fdef: FieldDef, value: Any) -> Any:
    if value is None:
        return None
    if fdef.type == "datetime":
        return int(parse_datetime(str(value)).timestamp() * 1000)
    if fdef.type == "date":
        return (date.fromisoformat(str(value)) - _EPOCH).days
    if fdef.type == "int":
        return int(value)
    if fdef.type in NUMBER_TYPES:
        return float(value)
    return value if fdef.type == "boolean" else str(value)


def event_fields(odef: ObjectDef) -> list[FieldDef]:
    """The object's fields a change event carries, in the schema's order."""
    return [f for f in odef.fields.values() if f.name not in _LEFT_OUT]


def change_schema(odef: ObjectDef) -> dict[str, Any]:
    """The Avro schema of ``odef``'s change event, as GetSchema returns it (parsed)."""
    entity = ENTITIES.get(odef.name, odef.name.removesuffix("__c") + "__ChangeEvent")
    header = {"name": "ChangeEventHeader", "type": _header_schema(), "doc": "Data:Header"}
    fields = [
        {"name": f.name, "type": ["null", _avro_type(f)], "default": None, "doc": f.label}
        for f in event_fields(odef)
    ]
    return {
        "type": "record",
        "name": entity,
        "namespace": "com.sforce.eventbus",
        "fields": [header, *fields],
    }


def schema_id_of(schema: Mapping[str, Any]) -> str:
    """A stable id for a schema: 22 characters of the hash of its canonical JSON."""
    digest = hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def replay_bytes(replay_id: int) -> bytes:
    """A replay id as the opaque bytes the Pub/Sub API carries."""
    return replay_id.to_bytes(8, "big")


def _ms(stamp: Any) -> int:
    return int(parse_datetime(str(stamp)).timestamp() * 1000)


@dataclass(frozen=True)
class Event:
    """One published change event, as the bus keeps it."""

    replay_id: int
    topic: str
    schema_id: str
    event_id: str
    payload: bytes
    published_ms: int


class Bus:
    """The org's change event bus; thread-safe. ``cond`` wakes streams on every event."""

    def __init__(self, schema: Schema, entities: Iterable[str], api_version: str) -> None:
        self.schema = schema
        self.api_version = api_version
        self.cond = threading.Condition()
        self._entities: set[str] = set()
        self.select(entities)
        self._log: dict[str, list[Event]] = {}
        self._schemas: dict[str, dict[str, Any]] = {}
        self._parsed: dict[str, Any] = {}
        #: Replay ids above ``forgotten`` and up to ``latest`` are valid starting points.
        self.latest = time.time_ns() // 1_000_000 << 12
        self.forgotten = self.latest - 1
        self._commits = 0
        self.paused = False
        self._held: list[tuple[str, str, bytes]] = []
        #: Events published, by topic.
        self.published: Counter[str] = Counter()
        #: Bumped by :meth:`drop_streams`; a stream opened before the bump is closed.
        self.drops = 0

    # -- topics and schemas ----------------------------------------------------------------
    def select(self, entities: Iterable[str]) -> None:
        """Select the change event entities (``OrderChangeEvent``, ...) for CDC."""
        known = set(ENTITIES.values())
        chosen = set(entities)
        if not chosen <= known:
            raise ValueError(f"not a change event entity: {sorted(chosen - known)}")
        with self.cond:
            self._entities = chosen

    def watched_objects(self) -> list[str]:
        """The objects whose changes are published (selected and present in the org)."""
        return [
            obj
            for obj, entity in ENTITIES.items()
            if entity in self._entities and self.schema.find(obj) is not None
        ]

    def object_of(self, topic: str) -> ObjectDef | None:
        """The object a topic name (``/data/OrderChangeEvent``) follows, when selected."""
        for obj in self.watched_objects():
            if topic == f"/data/{ENTITIES[obj]}":
                return self.schema.obj(obj)
        return None

    def schema_for(self, odef: ObjectDef) -> tuple[str, dict[str, Any]]:
        """The current schema of ``odef``'s change event and its id (remembered)."""
        schema = change_schema(odef)
        sid = schema_id_of(schema)
        with self.cond:
            if sid not in self._schemas:
                self._schemas[sid] = schema
                self._parsed[sid] = fastavro.parse_schema(schema)
        return sid, schema

    def schema_json(self, schema_id: str) -> str | None:
        """A schema served before (or of a selected topic now), as JSON; None if unknown."""
        for obj in self.watched_objects():
            self.schema_for(self.schema.obj(obj))
        with self.cond:
            found = self._schemas.get(schema_id)
        return None if found is None else json.dumps(found)

    # -- publishing ------------------------------------------------------------------------
    def publish(self, changes: Sequence[Change]) -> None:
        """One committed transaction's changes as change events (the store's listener)."""
        with self.cond:
            self._commits += 1
            commit_number = self._commits
        stamps = [_ms(c.after["SystemModstamp"]) for c in changes if c.after.get("SystemModstamp")]
        commit_ms = max(stamps) if stamps else int(time.time() * 1000)
        key = uuid.uuid4().hex
        sequence = 0
        for change in changes:
            odef = self.schema.find(change.sobject)
            if odef is None or change.sobject not in self.watched_objects():
                continue
            header, record = self._record(odef, change)
            if header is None:
                continue
            sequence += 1
            user = change.user or API_USER_ID
            origin = f"com/salesforce/api/rest/{self.api_version}" if user == API_USER_ID else ""
            header.update(changeOrigin=origin, transactionKey=key, sequenceNumber=sequence)
            header.update(commitTimestamp=commit_ms, commitNumber=commit_number, commitUser=user)
            self._append(odef, {"ChangeEventHeader": header, **record})

    def _record(
        self, odef: ObjectDef, change: Change
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        before, after = change.before, change.after
        fields = event_fields(odef)
        values = {f.name: _avro_value(f, after.get(f.name)) for f in fields}
        was_deleted = bool(before and before.get("IsDeleted"))
        changed: list[str] = []
        nulled: list[str] = []
        if before is None or (was_deleted and not after.get("IsDeleted")):
            kind = "CREATE" if before is None else "UNDELETE"
        elif after.get("IsDeleted") and not was_deleted:
            kind, values = "DELETE", {}
        else:
            kind = "UPDATE"
            changed = [f.name for f in fields if before.get(f.name) != after.get(f.name)]
            if not changed:
                return None, {}
            nulled = [name for name in changed if values[name] is None]
            values = {name: values[name] for name in changed}
        _, schema = self.schema_for(odef)
        header = {
            "entityName": odef.name,
            "recordIds": [change.id],
            "changeType": kind,
            "nulledFields": changed_fields.encode(nulled, schema),
            "diffFields": [],
            "changedFields": changed_fields.encode(changed, schema),
        }
        return header, values

    def send_gap(
        self, entity: str, record_ids: Sequence[str] = (), change_type: str = "GAP_UPDATE"
    ) -> None:
        """Publish a gap event on ``entity``'s topic: records changed in a way the bus could
        not describe (GAP_OVERFLOW: too many; its recordIds is ``OVERFLOW_ID``)."""
        if change_type not in GAP_TYPES:
            raise ValueError(f"not a gap change type: {change_type}")
        obj = next((o for o, e in ENTITIES.items() if e == entity), None)
        if obj is None or obj not in self.watched_objects():
            raise ValueError(f"{entity} is not selected for Change Data Capture")
        ids = list(record_ids) or ([OVERFLOW_ID] if change_type == "GAP_OVERFLOW" else [])
        if not ids:
            raise ValueError(f"{change_type} needs record ids")
        with self.cond:
            self._commits += 1
            commit_number = self._commits
        header = {
            "entityName": obj,
            "recordIds": ids,
            "changeType": change_type,
            "changeOrigin": "",
            "transactionKey": uuid.uuid4().hex,
            "sequenceNumber": 1,
            "commitTimestamp": int(time.time() * 1000),
            "commitNumber": commit_number,
            "commitUser": API_USER_ID,
            "nulledFields": [],
            "diffFields": [],
            "changedFields": [],
        }
        self._append(self.schema.obj(obj), {"ChangeEventHeader": header})

    def _append(self, odef: ObjectDef, record: dict[str, Any]) -> None:
        sid, _ = self.schema_for(odef)
        topic = f"/data/{ENTITIES[odef.name]}"
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, self._parsed[sid], record)
        with self.cond:
            if self.paused:
                self._held.append((topic, sid, buffer.getvalue()))
                return
            self._number(topic, sid, buffer.getvalue())
            self.cond.notify_all()

    def _number(self, topic: str, sid: str, payload: bytes) -> None:
        self.latest += 1
        now = int(time.time() * 1000)
        event = Event(self.latest, topic, sid, str(uuid.uuid4()), payload, now)
        self._log.setdefault(topic, []).append(event)
        self.published[topic] += 1

    def pause(self) -> None:
        """Hold events back (committed, not yet on the bus) until :meth:`resume`."""
        with self.cond:
            self.paused = True

    def resume(self) -> None:
        """Put the held events on the bus, in commit order."""
        with self.cond:
            self.paused = False
            held, self._held = self._held, []
            for topic, sid, payload in held:
                self._number(topic, sid, payload)
            self.cond.notify_all()

    # -- reading ---------------------------------------------------------------------------
    def after(self, topic: str, replay_id: int, limit: int) -> list[Event]:
        """Up to ``limit`` events of ``topic`` after ``replay_id``, oldest first."""
        with self.cond:
            self._expire()
            log = self._log.get(topic, [])
            start = bisect.bisect_right(log, replay_id, key=lambda event: event.replay_id)
            return log[start : start + limit]

    def valid_start(self, replay_id: int) -> bool:
        """Whether a subscription may start after ``replay_id`` without missing events."""
        with self.cond:
            self._expire()
            return self.forgotten < replay_id <= self.latest

    def forget(self, before: int | None = None) -> None:
        """Forget events with a replay id below ``before`` (None: every event so far)."""
        with self.cond:
            upto = self.latest if before is None else min(before - 1, self.latest)
            self._drop(lambda event: event.replay_id <= upto)
            self.forgotten = max(self.forgotten, upto)

    def _expire(self) -> None:
        """Forget what was published more than 72 hours ago (replay ids grow with time)."""
        horizon = int(time.time() * 1000) - RETENTION_MS
        expired = [
            event.replay_id
            for log in self._log.values()
            for event in itertools.takewhile(lambda e: e.published_ms < horizon, log)
        ]
        if expired:
            self.forget(max(expired) + 1)

    def _drop(self, doomed: Callable[[Event], bool]) -> None:
        for topic, log in self._log.items():
            self._log[topic] = [event for event in log if not doomed(event)]

    def drop_streams(self) -> None:
        """Close every open Subscribe stream (the clients see UNAVAILABLE)."""
        with self.cond:
            self.drops += 1
            self.cond.notify_all()
