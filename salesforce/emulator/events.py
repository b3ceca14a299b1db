"""Change Data Capture in the emulated org: the change event bus.

- **Topics**: ``/data/OrderChangeEvent`` and the like, one per entity selected for CDC (the
  metadata's PlatformEventChannelMember components on ``ChangeEvents``, or a test's choice).
- **Schemas**: :mod:`salesforce.emulator.change_schema`, remembered by id.
- **Publishing**: the store reports each committed transaction (:meth:`Bus.publish`); one
  event per changed record (or per change, with ``group_records``), only the fields the API
  user may read: CREATE with every non-null field, UPDATE with only the changed
  fields set and marked in ``changedFields`` (those set to null in ``nulledFields``),
  DELETE / UNDELETE. ``commitUser`` is the writer, ``commitTimestamp`` the SystemModstamp.
- **Replay ids**: 8-byte big-endian, growing; they start above wall-clock milliseconds, so a
  replay id from an earlier run of the emulator is unknown here, as after a real org's
  retention. Events are kept 72 hours after publication (``Bus.clock``); :meth:`Bus.forget`
  drops them sooner.
- **Controls**: pause (events wait, unnumbered) and resume, gap events, dropping every open
  stream (:class:`salesforce.emulator.pubsub.PubSubServer` watches ``drops``).
"""

from __future__ import annotations

import bisect
import io
import itertools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import fastavro

from salesforce.emulator.auth import API_USER_ID
from salesforce.emulator.change_schema import (
    ENTITIES,
    GAP_TYPES,
    avro_value,
    change_schema,
    schema_id_of,
)
from salesforce.emulator.schema import ObjectDef, Schema
from salesforce.emulator.store import Change
from salesforce.emulator.values import parse_datetime
from salesforce.pubsub import changed_fields

RETENTION_MS = 72 * 3600 * 1000
#: The record id a GAP_OVERFLOW event carries: every record of the entity may have changed.
OVERFLOW_ID = "000000000000000AAA"


def replay_bytes(replay_id: int) -> bytes:
    """A replay id as the opaque bytes the Pub/Sub API carries."""
    return replay_id.to_bytes(8, "big")


def _ms(stamp: Any) -> int:
    return int(parse_datetime(str(stamp)).timestamp() * 1000)


def _likeness(header: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    """What two events of one transaction share when they are the same change."""
    # The emulator stamps each record of a transaction at its own millisecond.
    fields = {k: v for k, v in record.items() if k != "LastModifiedDate"}
    return json.dumps([{**header, "recordIds": None}, fields], sort_keys=True, default=str)


@dataclass
class Event:
    """One published change event, as the bus keeps it: the Avro record is encoded the
    first time a stream delivers it (most events of a test run are never read)."""

    replay_id: int
    topic: str
    schema_id: str
    event_id: str
    record: dict[str, Any]
    published_ms: int
    encoded: bytes | None = None


class Bus:
    """The org's change event bus; thread-safe. ``cond`` wakes streams on every event."""

    def __init__(
        self,
        schema: Schema,
        entities: Iterable[str],
        api_version: str,
        readable: Callable[[str], ObjectDef] | None = None,
    ) -> None:
        """``readable``: the object as the subscribing (API) user sees it; an event carries
        only the fields that user may read (field-level security), None: every field."""
        self.schema = schema
        self.readable = readable
        self.api_version = api_version
        self.cond = threading.Condition()
        self._entities: set[str] = set()
        self.select(entities)
        self._log: dict[str, list[Event]] = {}
        self._schemas: dict[str, dict[str, Any]] = {}
        self._parsed: dict[str, Any] = {}
        self._current: dict[tuple[str, int], tuple[str, dict[str, Any]]] = {}
        #: Replay ids above ``forgotten`` and up to ``latest`` are valid starting points.
        self.latest = time.time_ns() // 1_000_000 << 12
        self.forgotten = self.latest - 1
        self._commits = 0
        self.paused = False
        self._held: list[tuple[str, str, dict[str, Any]]] = []
        #: Events published, by topic.
        self.published: Counter[str] = Counter()
        #: Bumped by :meth:`drop_streams`; a stream opened before the bump is closed.
        self.drops = 0
        #: One event for the same change made to several records in a transaction (recordIds
        #: lists them all), as Salesforce does; off: one event per record.
        self.group_records = False
        #: The bus's clock (seconds since the epoch): a test moves it to age events out.
        self.clock: Callable[[], float] = time.time

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

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
        key = (odef.name, self.schema.revision)
        with self.cond:
            known = self._current.get(key)
            if known is not None:
                return known
            schema = change_schema(odef)
            sid = schema_id_of(schema)
            if sid not in self._schemas:
                self._schemas[sid] = schema
                self._parsed[sid] = fastavro.parse_schema(schema)
            self._current[key] = sid, schema
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
        commit_ms = max(stamps) if stamps else self._now_ms()
        key = uuid.uuid4().hex
        watched = self.watched_objects()
        events: list[tuple[ObjectDef, dict[str, Any]]] = []
        alike: dict[str, list[str]] = {}  # same change to several records: their recordIds
        for change in changes:
            odef = self.schema.find(change.sobject)
            if odef is None or change.sobject not in watched:
                continue
            seen = self.readable(odef.name) if self.readable else odef
            header, record = self._record(odef, change, set(seen.fields))
            if header is None:
                continue
            user = change.user or API_USER_ID
            origin = f"com/salesforce/api/rest/{self.api_version}" if user == API_USER_ID else ""
            header.update(changeOrigin=origin, transactionKey=key, commitUser=user)
            header.update(commitTimestamp=commit_ms, commitNumber=commit_number)
            if self.group_records and header["changeType"] != "CREATE":
                same = _likeness(header, record)
                if same in alike:
                    alike[same].extend(header["recordIds"])
                    continue
                alike[same] = header["recordIds"]
            events.append((odef, {"ChangeEventHeader": header, **record}))
        for sequence, (odef, record) in enumerate(events, start=1):
            record["ChangeEventHeader"]["sequenceNumber"] = sequence
            self._append(odef, record)

    def _record(
        self, odef: ObjectDef, change: Change, readable: set[str]
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        before, after = change.before, change.after
        _, schema = self.schema_for(odef)
        named = [f["name"] for f in schema["fields"][1:]]
        fields = [odef.fields[name.lower()] for name in named if name.lower() in readable]
        was_deleted = bool(before and before.get("IsDeleted"))
        changed: list[str] = []
        nulled: list[str] = []
        if before is None or (was_deleted and not after.get("IsDeleted")):
            kind = "CREATE" if before is None else "UNDELETE"
            values = {f.name: avro_value(f, after.get(f.name)) for f in fields}
        elif after.get("IsDeleted") and not was_deleted:
            kind, values = "DELETE", {}
        else:
            kind = "UPDATE"
            touched = [f for f in fields if before.get(f.name) != after.get(f.name)]
            if not touched:
                return None, {}
            values = {f.name: avro_value(f, after.get(f.name)) for f in touched}
            changed = [f.name for f in touched]
            nulled = [name for name in changed if values[name] is None]
        header = {
            "entityName": odef.name,
            "recordIds": [change.id],
            "changeType": kind,
            "nulledFields": changed_fields.encode(nulled, schema) if nulled else [],
            "diffFields": [],
            "changedFields": changed_fields.encode(changed, schema) if changed else [],
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
            "commitTimestamp": self._now_ms(),
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
        with self.cond:
            if self.paused:
                self._held.append((topic, sid, record))
                return
            self._number(topic, sid, record)
            self.cond.notify_all()

    def _number(self, topic: str, sid: str, record: dict[str, Any]) -> None:
        self.latest += 1
        now = self._now_ms()
        event = Event(self.latest, topic, sid, str(uuid.uuid4()), record, now)
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
            for topic, sid, record in held:
                self._number(topic, sid, record)
            self.cond.notify_all()

    # -- reading ---------------------------------------------------------------------------
    def payload(self, event: Event) -> bytes:
        """The event's Avro encoding (schemaless, against its schema id's schema)."""
        with self.cond:
            if event.encoded is None:
                buffer = io.BytesIO()
                fastavro.schemaless_writer(buffer, self._parsed[event.schema_id], event.record)
                event.encoded = buffer.getvalue()
            return event.encoded

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
        horizon = self._now_ms() - RETENTION_MS
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
