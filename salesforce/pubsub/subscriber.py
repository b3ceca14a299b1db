"""Change Data Capture over the Pub/Sub API: a subscriber that hands the daemon batches.

One gRPC stream per topic (``/data/OrderChangeEvent``...), each on a thread of its own,
over one TLS channel to ``ORDERFLOW_SF_PUBSUB_ENDPOINT`` verified with the REST client's
CA bundle (``ORDERFLOW_SF_CA_BUNDLE``). Every call carries the gateway's session as
``accesstoken``, ``instanceurl`` and ``tenantid`` metadata.

- **Schemas** come from ``GetSchema`` once per schema id; payloads are Avro (fastavro), the
  header's ``changedFields`` bitmap is read against the schema (:mod:`.changed_fields`).
- **Flow control.** A stream asks for :data:`BATCH` events and, as they arrive, for as many
  more while fewer than ``backlog`` wait for the daemon (a server ends a stream with nothing
  requested, so a cycle busy for minutes must not make a gap); past it, for as many more as
  the daemon reports consumed (:meth:`Subscriber.consumed`): a slow daemon slows the stream.
- **Resuming.** Each time this instance starts leading, a stream starts after the replay id
  the store holds then (``resume``: what the last leader took in, itself or another), else
  at LATEST; after a drop it resumes after the last event it received.
- **Trouble is an event too.** A dropped stream, a refused replay id (INVALID_ARGUMENT:
  older than the 72 hours kept; the stream restarts at LATEST) become a :class:`Gap` in the
  queue, after what came before, so the daemon polls the uncertain span in order. A stream
  opened at LATEST is a gap too, delivered once it is open: what was committed before it
  is polled after it, so nothing falls between the poll and the stream.
- **Auth.** UNAUTHENTICATED renews the session through the gateway's own login once, then
  retries; other failures back off exponentially (with jitter) up to :data:`MAX_BACKOFF`.
- **Leadership.** A stream is open only while ``leading()`` says so (one org, one reader).
"""

from __future__ import annotations

import io
import json
import logging
import queue
import random
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import fastavro
import grpc

from salesforce.pubsub import changed_fields
from salesforce.pubsub import pubsub_api_pb2 as pb
from salesforce.pubsub.pubsub_api_pb2_grpc import PubSubStub

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "api.pubsub.salesforce.com:7443"
#: Events asked for when a stream opens (and the most in the daemon's hands per topic).
BATCH = 100
#: Events received and not yet taken in by the daemon before a stream waits for it.
BACKLOG = 1_000
MAX_BACKOFF = 60.0
#: Seconds between looks at the stop flag and leadership while a stream is open.
TICK = 0.5


class Auth(NamedTuple):
    """What each call carries: the gateway's session and the org's id."""

    access_token: str
    instance_url: str
    tenant_id: str

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (
            ("accesstoken", self.access_token),
            ("instanceurl", self.instance_url),
            ("tenantid", self.tenant_id),
        )


@dataclass(frozen=True)
class Change:
    """One change event, decoded: what the daemon needs to read the records again."""

    topic: str
    entity: str
    record_ids: tuple[str, ...]
    change_type: str
    changed_fields: tuple[str, ...]
    commit_user: str
    commit_timestamp: datetime
    replay_id: bytes
    #: The payload's non-null fields (an OrderItem's OrderId when the event carries it).
    values: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_gap(self) -> bool:
        """GAP_* and GAP_OVERFLOW: changes happened that the event cannot describe."""
        return self.change_type.startswith("GAP_")


@dataclass(frozen=True)
class Gap:
    """The stream may have missed events (a drop, a refused replay id): poll the span."""

    topic: str
    reason: str
    #: A first subscription (no replay id stored): the poll is routine, not trouble.
    routine: bool = False
    #: When the stream it follows opened (a LATEST subscription): a poll whose window
    #: reaches past it has already read what came before.
    opened_at: datetime | None = None


Delivery = Change | Gap


class SubscribeError(Exception):
    """The subscription does not work: the endpoint, the session or a topic (``code``:
    the gRPC status; UNAVAILABLE and DEADLINE_EXCEEDED may pass)."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code

    @property
    def passing(self) -> bool:
        return self.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@dataclass
class TopicState:
    """What ``orderflow status`` shows of one stream."""

    connected: bool = False
    last_event_at: datetime | None = None
    replay_id: bytes | None = None
    error: str | None = None
    drops: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "last_event_at": self.last_event_at.isoformat() if self.last_event_at else None,
            "replay_id": self.replay_id.hex() if self.replay_id else None,
            "error": self.error,
            "drops": self.drops,
        }


def channel(endpoint: str, ca_bundle: Path | None) -> grpc.Channel:
    """A TLS channel to the Pub/Sub endpoint, verified (with ``ca_bundle`` when given)."""
    roots = ca_bundle.read_bytes() if ca_bundle is not None else None
    return grpc.secure_channel(endpoint, grpc.ssl_channel_credentials(root_certificates=roots))


class Schemas:
    """Event schemas by id, each asked of ``GetSchema`` once."""

    def __init__(self) -> None:
        self._by_id: dict[str, tuple[dict[str, Any], Any]] = {}
        self._lock = threading.Lock()

    def get(self, stub: PubSubStub, schema_id: str, auth: Auth) -> tuple[dict[str, Any], Any]:
        """(the schema as JSON, the schema parsed for fastavro)."""
        with self._lock:
            known = self._by_id.get(schema_id)
        if known is not None:
            return known
        info = stub.GetSchema(pb.SchemaRequest(schema_id=schema_id), metadata=auth.metadata())
        raw = json.loads(info.schema_json)
        found = (raw, fastavro.parse_schema(raw))
        with self._lock:
            self._by_id[schema_id] = found
        return found


def decode(topic: str, event: Any, schema: tuple[dict[str, Any], Any]) -> Change:
    """A ConsumerEvent's payload as a :class:`Change` (ValueError when it cannot be read)."""
    raw, parsed = schema
    try:
        record = fastavro.schemaless_reader(io.BytesIO(event.event.payload), parsed)
    except Exception as exc:  # fastavro raises whatever the bytes provoke
        raise ValueError(f"change event on {topic} cannot be decoded: {exc}") from exc
    if not isinstance(record, dict) or not isinstance(record.get("ChangeEventHeader"), dict):
        raise ValueError(f"change event on {topic} has no ChangeEventHeader")
    header = record["ChangeEventHeader"]
    stamp = int(header.get("commitTimestamp") or 0)
    values = {k: v for k, v in record.items() if k != "ChangeEventHeader" and v is not None}
    return Change(
        topic=topic,
        entity=str(header.get("entityName") or ""),
        record_ids=tuple(str(i) for i in header.get("recordIds") or ()),
        change_type=str(header.get("changeType") or ""),
        changed_fields=tuple(changed_fields.decode(header.get("changedFields") or (), raw)),
        commit_user=str(header.get("commitUser") or ""),
        commit_timestamp=datetime.fromtimestamp(stamp / 1000, UTC),
        replay_id=bytes(event.replay_id),
        values=values,
    )


class Subscriber:
    """Streams of change events into :attr:`deliveries`, on threads of their own."""

    def __init__(
        self,
        chan: grpc.Channel,
        topics: Sequence[str],
        *,
        auth: Callable[[], Auth],
        renew: Callable[[], None],
        leading: Callable[[], bool] = lambda: True,
        notify: Callable[[], None] = lambda: None,
        batch: int = BATCH,
        backlog: int = BACKLOG,
        rng: random.Random | None = None,
    ) -> None:
        self.stub = PubSubStub(chan)  # type: ignore[no-untyped-call]
        self.channel = chan
        self.topics = tuple(topics)
        self.auth = auth
        self.renew = renew
        self.leading = leading
        self.notify = notify
        self.batch = batch
        self.backlog = backlog
        self.rng = rng or random.Random()
        self.schemas = Schemas()
        self.deliveries: queue.Queue[Delivery] = queue.Queue()
        self.states = {topic: TopicState() for topic in self.topics}
        self._requests: dict[str, queue.Queue[pb.FetchRequest | None]] = {}
        #: Why a topic's next stream starts at LATEST (a refused replay id), for its gap.
        self._latest_because: dict[str, str] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        #: Events per topic received past the backlog and not asked for again yet.
        self._owed: dict[str, int] = {}

    # -- the daemon's side ------------------------------------------------------------------
    def check(self, timeout: float = 10.0) -> dict[str, str]:
        """GetTopic and GetSchema of every topic: ``{topic: schema id}``. SubscribeError
        says what does not work (the endpoint, the session, a topic not enabled)."""
        found: dict[str, str] = {}
        for topic in self.topics:
            try:
                info = self._get_topic(topic, timeout)
                self.schemas.get(self.stub, info.schema_id, self.auth())
            except grpc.RpcError as exc:
                raise SubscribeError(f"{topic}: {describe(exc)}", exc.code()) from exc
            if not info.can_subscribe:
                raise SubscribeError(f"{topic}: this user may not subscribe to it")
            found[topic] = info.schema_id
        return found

    def start(self, resume: Callable[[], Mapping[str, bytes | None]]) -> None:
        """Open a stream per topic while leading, each after the replay id ``resume()``
        gives when the lead is taken (else at LATEST)."""
        for topic in self.topics:
            thread = threading.Thread(
                target=self._run, args=(topic, resume), name=f"pubsub {topic}"
            )
            thread.daemon = True
            self._threads.append(thread)
            thread.start()

    def consumed(self, topic: str, count: int) -> None:
        """The daemon took ``count`` events of ``topic`` in: ask again for those of them the
        stream has not asked again for on arrival (they came past the backlog)."""
        with self._lock:
            owed = min(count, self._owed.get(topic, 0))
            self._owed[topic] = self._owed.get(topic, 0) - owed
        self._ask(topic, owed)

    def _ask(self, topic: str, count: int) -> None:
        requests = self._requests.get(topic)
        if requests is not None and count > 0:
            requests.put(pb.FetchRequest(topic_name=topic, num_requested=count))

    def close(self) -> None:
        self._stop.set()
        for requests in list(self._requests.values()):
            requests.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        self.channel.close()

    @property
    def healthy(self) -> bool:
        """Every stream open."""
        return all(state.connected for state in self.states.values())

    # -- the streams --------------------------------------------------------------------------
    def _get_topic(self, topic: str, timeout: float) -> Any:
        try:
            return self.stub.GetTopic(
                pb.TopicRequest(topic_name=topic), metadata=self.auth().metadata(), timeout=timeout
            )
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                raise
            self.renew()  # the session expired: the gateway logs in again, once
            return self.stub.GetTopic(
                pb.TopicRequest(topic_name=topic), metadata=self.auth().metadata(), timeout=timeout
            )

    def _run(self, topic: str, resume: Callable[[], Mapping[str, bytes | None]]) -> None:
        failures = 0
        state = self.states[topic]
        replay_id: bytes | None = None
        led = False
        while not self._stop.is_set():
            if not self.leading():
                led = False
                self._stop.wait(TICK)
                continue
            try:
                if not led:
                    # Leading (again): on from what was taken in, by this instance or
                    # the leader before it, never from what this one saw long ago.
                    replay_id, state.replay_id = resume().get(topic), None
                    led = True
                outcome = self._stream(topic, replay_id)
            except Exception as exc:  # a failed renewal, a bug: the thread must live on
                log.exception("Pub/Sub stream %s failed", topic, extra={"topic": topic})
                state.connected, state.error, outcome = False, f"{type(exc).__name__}: {exc}", ""
            replay_id = state.replay_id or replay_id
            if self._stop.is_set():
                return
            if outcome == "fine":
                led = False  # stepped down: a new lead starts from the store again
            if outcome == "refused":
                replay_id = None  # too old: start at LATEST, then the gap is polled
                failures = 0
                continue
            if outcome == "renewed" and failures == 0:
                failures = 1  # at once after a renewal; refused again, backing off
                continue
            failures = {"fine": 0, "dropped": 1}.get(outcome, failures + 1)
            self._stop.wait(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        if failures == 0:
            return 0.0
        return float(min(MAX_BACKOFF, 2 ** (failures - 1)) * (0.5 + self.rng.random() / 2))

    def _stream(self, topic: str, replay_id: bytes | None) -> str:
        """One subscription until it ends: "fine" (stopped, no longer leading), "renewed",
        "refused" (the replay id), "dropped" (after it had worked) or "failed"."""
        state = self.states[topic]
        requests: queue.Queue[pb.FetchRequest | None] = queue.Queue()
        preset = pb.ReplayPreset.CUSTOM if replay_id else pb.ReplayPreset.LATEST
        requests.put(
            pb.FetchRequest(
                topic_name=topic,
                replay_preset=preset,
                replay_id=replay_id or b"",
                num_requested=self.batch,
            )
        )
        self._requests[topic] = requests
        with self._lock:
            self._owed[topic] = 0  # a new stream: its first request asks afresh
        auth = self.auth()
        call = self.stub.Subscribe(_drain(requests), metadata=auth.metadata())
        threading.Thread(
            target=self._watch, args=(topic, call, replay_id is None), daemon=True
        ).start()
        was_connected = False
        try:
            for response in call:
                was_connected = True
                self._take(topic, response, auth)
            reason = "the server ended the stream"
            was_connected = was_connected or state.connected
        except grpc.RpcError as exc:
            reason = describe(exc)
            code = exc.code()
            was_connected = was_connected or state.connected
            state.connected = False
            if self._stop.is_set() or (code == grpc.StatusCode.CANCELLED and not self.leading()):
                return "fine"
            if code == grpc.StatusCode.UNAUTHENTICATED:
                log.info("Pub/Sub session refused on %s; logging in again", topic)
                state.error = reason
                self.renew()
                return "renewed"
            if code == grpc.StatusCode.INVALID_ARGUMENT and replay_id:
                return self._refused(topic, reason)
        finally:
            requests.put(None)
            call.cancel()
        if self._stop.is_set():
            return "fine"  # closed by the daemon: the server's end is no drop
        return self._dropped(topic, reason, gap=was_connected)

    def _watch(self, topic: str, call: Any, latest: bool) -> None:
        """Mark the stream open once the server has not refused it for a moment (an idle
        topic sends nothing for minutes); cancel it when the daemon stops or stops leading.
        Opened at LATEST, it is a gap: what came before it is polled now that it is open."""
        state = self.states[topic]
        while call.is_active():
            if self._stop.wait(TICK) or not self.leading():
                call.cancel()
                return
            if call.is_active() and not state.connected:
                state.connected, state.error = True, None
                log.info("subscribed to %s", topic, extra={"topic": topic})
                if latest:
                    because = self._latest_because.pop(topic, None)
                    self._deliver(
                        Gap(
                            topic,
                            because or "first subscription, at LATEST",
                            routine=because is None,
                            opened_at=datetime.now(UTC),
                        )
                    )

    def _take(self, topic: str, response: Any, auth: Auth) -> None:
        state = self.states[topic]
        for event in response.events:
            schema = self.schemas.get(self.stub, event.event.schema_id, auth)
            try:
                change = decode(topic, event, schema)
            except ValueError as exc:
                # Unreadable: the records it names are read by the gap poll it becomes.
                log.warning("%s; polling instead", exc, extra={"topic": topic})
                self._deliver(Gap(topic, str(exc)))
                state.replay_id = bytes(event.replay_id)
                continue
            state.replay_id, state.last_event_at = change.replay_id, datetime.now(UTC)
            self._deliver(change)
        received = len(response.events)
        if received and self.deliveries.qsize() < self.backlog:
            self._ask(topic, received)  # the stream keeps what it had asked for
        elif received:
            with self._lock:
                self._owed[topic] = self._owed.get(topic, 0) + received

    def _deliver(self, item: Delivery) -> None:
        self.deliveries.put(item)
        self.notify()

    def _refused(self, topic: str, reason: str) -> str:
        state = self.states[topic]
        log.warning(
            "Pub/Sub refused the replay id of %s (%s): resubscribing at LATEST and polling "
            "the span since the last event taken in",
            topic,
            reason,
            extra={"topic": topic},
        )
        state.connected, state.error, state.replay_id = False, reason, None
        self._latest_because[topic] = f"replay id refused: {reason}"  # its gap, once open
        return "refused"

    def _dropped(self, topic: str, reason: str, *, gap: bool) -> str:
        """The stream ended: resubscribed after a back-off; when it had been open, the span
        since the last event taken in is polled (a stream that never opened missed none)."""
        state = self.states[topic]
        state.drops += 1
        state.connected, state.error = False, reason
        log.warning("Pub/Sub stream %s ended (%s)", topic, reason, extra={"topic": topic})
        if gap:
            self._deliver(Gap(topic, f"stream dropped: {reason}"))
            return "dropped"  # it had worked: back off from the start
        return "failed"


def _drain(requests: queue.Queue[pb.FetchRequest | None]) -> Iterator[pb.FetchRequest]:
    while True:
        request = requests.get()
        if request is None:
            return
        yield request


def describe(exc: grpc.RpcError) -> str:
    """``CODE: details`` of a gRPC error (never the metadata, which holds the token)."""
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    name = code.name if code is not None else "ERROR"
    return f"{name}: {details}"
