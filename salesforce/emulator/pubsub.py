"""The Pub/Sub API (gRPC over TLS, ``eventbus.v1``) serving the org's change events.

- **Auth per call**: metadata ``accesstoken`` (a session the REST API also accepts, so one
  that expires there expires here), ``instanceurl`` (the emulator's URL) and ``tenantid``
  (the org id): a missing or unknown session is UNAUTHENTICATED, another org's id
  PERMISSION_DENIED. A stream re-checks the session with every FetchRequest.
- **GetTopic / GetSchema**: topics of the entities selected for Change Data Capture; any
  other is NOT_FOUND, an unknown schema id NOT_FOUND.
- **Subscribe**: the first FetchRequest names the topic and where to start (LATEST,
  EARLIEST, or CUSTOM after a replay id still retained: else INVALID_ARGUMENT); the server
  never sends more events than requested and not yet sent (``pending_num_requested``, at
  most 100 in all); every later FetchRequest adds to it. With events requested and none to
  send, a keepalive (no events, ``latest_replay_id``) goes out every ``keepalive`` seconds
  (270 on a real org); with none requested, the stream ends unless a FetchRequest comes
  within ``idle_timeout`` seconds (60) of the last response.
- **Drop**: :meth:`salesforce.emulator.events.Bus.drop_streams` ends every open stream with
  UNAVAILABLE, as a real server restart or network change does.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

import grpc

from salesforce.emulator.auth import ORG_ID, Sessions
from salesforce.emulator.events import Bus, replay_bytes
from salesforce.pubsub import pubsub_api_pb2 as pb
from salesforce.pubsub import pubsub_api_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)
_MAX_REQUESTED = 100  # events requested and not yet sent, at most
_AUTH_ERROR = "sfdc.platform.eventbus.grpc.service.auth.error"


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


class _Stream:
    """One Subscribe call's flow-control state (guarded by the bus's condition)."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.outstanding = 0
        self.failure: tuple[grpc.StatusCode, str] | None = None
        self.closed = False

    def ask(self, n: int) -> None:
        """A FetchRequest's ``num_requested``: at most 100 outstanding in all, as on a real
        org (more is taken as 100)."""
        self.outstanding = min(self.outstanding + max(n, 0), _MAX_REQUESTED)


class _Servicer(pb_grpc.PubSubServicer):
    def __init__(
        self,
        bus: Bus,
        sessions: Sessions,
        instance_url: Callable[[], str],
        keepalive: float,
        idle_timeout: float,
    ) -> None:
        self.bus = bus
        self.sessions = sessions
        self.instance_url = instance_url
        self.keepalive = keepalive
        self.idle_timeout = idle_timeout

    def _check(self, context: grpc.ServicerContext) -> None:
        metadata = {key: str(value) for key, value in context.invocation_metadata()}
        token = metadata.get("accesstoken", "")
        if not token or not self.sessions.valid(token):
            context.set_trailing_metadata((("error-code", _AUTH_ERROR),))
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, "Session expired or invalid")
        if metadata.get("instanceurl", "").rstrip("/") != self.instance_url():
            context.set_trailing_metadata((("error-code", _AUTH_ERROR),))
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, "Invalid instanceurl")
        if metadata.get("tenantid") not in (ORG_ID, ORG_ID[:15]):
            message = f"Tenant {metadata.get('tenantid', '')!r} does not match the session's org"
            _abort(context, grpc.StatusCode.PERMISSION_DENIED, message)

    def _topic(self, name: str, context: grpc.ServicerContext) -> pb.TopicInfo:
        odef = self.bus.object_of(name)
        if odef is None:
            message = (
                f"Topic not found: {name}. The topic doesn't exist or the user lacks "
                "permissions to access it."
            )
            _abort(context, grpc.StatusCode.NOT_FOUND, message)
        schema_id, _ = self.bus.schema_for(odef)
        return pb.TopicInfo(
            topic_name=name,
            tenant_guid=ORG_ID,
            can_publish=False,
            can_subscribe=True,
            schema_id=schema_id,
            rpc_id=str(uuid.uuid4()),
        )

    def GetTopic(self, request: pb.TopicRequest, context: grpc.ServicerContext) -> pb.TopicInfo:  # noqa: N802
        self._check(context)
        return self._topic(request.topic_name, context)

    def GetSchema(  # noqa: N802
        self, request: pb.SchemaRequest, context: grpc.ServicerContext
    ) -> pb.SchemaInfo:
        self._check(context)
        found = self.bus.schema_json(request.schema_id)
        if found is None:
            _abort(context, grpc.StatusCode.NOT_FOUND, f"Schema not found: {request.schema_id}")
        rpc_id = str(uuid.uuid4())
        return pb.SchemaInfo(schema_json=found, schema_id=request.schema_id, rpc_id=rpc_id)

    def Subscribe(  # noqa: N802
        self, request_iterator: Iterator[pb.FetchRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.FetchResponse]:
        self._check(context)
        try:
            first = next(request_iterator, None)
        except grpc.RpcError:  # cancelled before asking for anything
            return
        if first is None:
            return
        topic = first.topic_name
        self._topic(topic, context)
        position = self._start(first, context)
        bus = self.bus
        with bus.cond:
            stream = _Stream(bus.drops)
            stream.ask(first.num_requested)
        token = dict(context.invocation_metadata()).get("accesstoken", "")
        reader = threading.Thread(
            target=self._read, args=(request_iterator, stream, topic, str(token)), daemon=True
        )
        reader.start()
        context.add_callback(lambda: self._close(stream))
        rpc_id = str(uuid.uuid4())
        last_sent = time.monotonic()
        while True:
            with bus.cond:
                self._wait(stream, topic, position, last_sent)
                if bus.drops != stream.drops:
                    _abort(context, grpc.StatusCode.UNAVAILABLE, "The service is unavailable")
                if stream.failure:
                    _abort(context, *stream.failure)
                if stream.closed or stream.outstanding == 0:  # the client went quiet
                    return
                batch = bus.after(topic, position, stream.outstanding)
                stream.outstanding -= len(batch)
                pending = stream.outstanding
                if batch:
                    position = batch[-1].replay_id
                # A keepalive names where this stream stands: storing it loses nothing.
                latest = position if bus.after(topic, position, 1) else bus.latest
            events = [
                pb.ConsumerEvent(
                    event=pb.ProducerEvent(
                        id=e.event_id, schema_id=e.schema_id, payload=bus.payload(e)
                    ),
                    replay_id=replay_bytes(e.replay_id),
                )
                for e in batch
            ]
            last_sent = time.monotonic()
            yield pb.FetchResponse(
                events=events,
                latest_replay_id=replay_bytes(position if batch else latest),
                rpc_id=rpc_id,
                pending_num_requested=pending,
            )

    def _wait(self, stream: _Stream, topic: str, position: int, last_sent: float) -> None:
        """Wait (holding the bus's condition) until events can go out, a keepalive is due
        (events requested, none to send), the stream must end, or a stream with nothing
        requested has waited ``idle_timeout`` for a FetchRequest."""
        bus = self.bus
        while not (stream.failure or stream.closed or bus.drops != stream.drops):
            if stream.outstanding > 0 and bus.after(topic, position, 1):
                return
            wait = self.keepalive if stream.outstanding > 0 else self.idle_timeout
            left = last_sent + wait - time.monotonic()
            if left <= 0:
                return
            bus.cond.wait(left)

    def _start(self, first: pb.FetchRequest, context: grpc.ServicerContext) -> int:
        """The replay id the subscription starts after."""
        if first.replay_preset == pb.ReplayPreset.EARLIEST:
            with self.bus.cond:
                return self.bus.forgotten
        if first.replay_preset != pb.ReplayPreset.CUSTOM:
            with self.bus.cond:
                return self.bus.latest
        raw = bytes(first.replay_id)
        replay_id = int.from_bytes(raw, "big") if len(raw) == 8 else -1
        if not self.bus.valid_start(replay_id):
            message = (
                f"The Replay ID validation failed. The replay ID {raw.hex()} is not valid: "
                "it is unknown or older than the retention window."
            )
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, message)
        return replay_id

    def _read(
        self, requests: Iterator[pb.FetchRequest], stream: _Stream, topic: str, token: str
    ) -> None:
        """Add every later FetchRequest's num_requested to the stream's allowance."""
        failure: tuple[grpc.StatusCode, str] | None = None
        try:
            for request in requests:
                if not self.sessions.valid(token):
                    failure = (grpc.StatusCode.UNAUTHENTICATED, "Session expired or invalid")
                elif request.topic_name and request.topic_name != topic:
                    message = f"The topic {request.topic_name} does not match {topic}"
                    failure = (grpc.StatusCode.INVALID_ARGUMENT, message)
                with self.bus.cond:
                    stream.failure = failure
                    stream.ask(request.num_requested)
                    self.bus.cond.notify_all()
                if failure:
                    return
        except grpc.RpcError:  # the call ended: its callback closes the stream
            pass
        except Exception:  # a stream's reader must never take the server down
            logger.exception("Pub/Sub stream reader failed")
            self._close(stream)
        # A client that half-closes sends no more requests; what it asked for still comes.

    def _close(self, stream: _Stream) -> None:
        with self.bus.cond:
            stream.closed = True
            self.bus.cond.notify_all()


def control(bus: Bus, method: str, action: str, body: bytes) -> tuple[int, Any]:
    """``/_emulator/pubsub/{action}`` for an emulator run as a process: GET ``stats``
    (events published by topic); POST ``drop``, ``pause``, ``resume``, ``forget``
    (``{"before": hex replay id}``, none: all), ``gap`` (``{"entity", "recordIds",
    "changeType"}``). Answers (status, JSON body); bad input is a 400 saying why."""
    if method == "GET" and action == "stats":
        with bus.cond:
            return 200, {"published": dict(bus.published)}
    simple = {"drop": bus.drop_streams, "pause": bus.pause, "resume": bus.resume}
    if method != "POST" or action not in (*simple, "forget", "gap"):
        return 404, {"error": f"no such Pub/Sub control: {method} {action}"}
    try:
        args = json.loads(body) if body.strip() else {}
        if not isinstance(args, dict):
            raise ValueError("the body must be a JSON object")
        if action in simple:
            simple[action]()
        elif action == "forget":
            before = args.get("before")
            bus.forget(None if before is None else int(str(before), 16))
        else:
            ids = args.get("recordIds", [])
            kind = str(args.get("changeType", "GAP_UPDATE"))
            bus.send_gap(str(args.get("entity", "")), [str(i) for i in ids], kind)
    except ValueError as exc:
        return 400, {"error": f"{action}: {exc}"}
    return 200, {"done": action}


class PubSubServer:
    """gRPC server for the Pub/Sub API on 127.0.0.1 (a free port), TLS with the emulator's
    certificate."""

    def __init__(
        self,
        bus: Bus,
        sessions: Sessions,
        instance_url: Callable[[], str],
        *,
        keepalive: float = 270.0,
        idle_timeout: float = 60.0,
        workers: int = 64,
    ) -> None:
        self._servicer = _Servicer(bus, sessions, instance_url, keepalive, idle_timeout)
        self._workers = workers
        self._server: Any = None
        self.port = 0

    def start(self, cert_file: Path, key_file: Path) -> None:
        """Bind and serve in the server's own threads."""
        server = grpc.server(ThreadPoolExecutor(max_workers=self._workers))
        pb_grpc.add_PubSubServicer_to_server(self._servicer, server)  # type: ignore[no-untyped-call]
        credentials = grpc.ssl_server_credentials([(key_file.read_bytes(), cert_file.read_bytes())])
        self.port = server.add_secure_port("127.0.0.1:0", credentials)
        server.start()
        self._server = server

    def stop(self) -> None:
        """Close every stream and stop serving."""
        if self._server is not None:
            self._servicer.bus.drop_streams()
            self._server.stop(grace=None).wait()
            self._server = None
