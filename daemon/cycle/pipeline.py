"""The dispatch pipeline: callouts go out continuously, at the pace the systems answer.

- **A lane per system.** Each downstream system has a lane: a thread that claims its due
  callouts and ``ORDERFLOW_DISPATCH_CONCURRENCY`` workers that send them. The lane holds up
  to two rounds of calls (one out, one claimed and queued for the next free worker; a
  place is free again when its answer is *recorded*, so the claims go no faster than the
  recorder commits): once a round's places are free it claims that many due callouts, in
  one short transaction that commits their intent and lease (daemon.cycle.claims) before
  anything is sent. Then it sleeps on an Event until woken (a
  recorded answer, the cycle's pulse, a stop): an idle lane does not poll the store.
- **A recorder.** Every answer goes to one recorder thread, which commits the answers
  that came in together in one transaction (daemon.cycle.dispatch.record_answers): each step's
  result, its lease ended and its plan advanced (daemon.cycle.advance), so the next step is due
  the moment that commits; it then wakes the lanes to claim it. No cycle is waited for.
- **Beside the cycle.** Under ``orderflow run`` the cycle (poll, advance, status poll,
  writeback) and the jeopardy sweep run on the loop's thread while the lanes send; the
  cycle's dispatch phase only wakes the lanes (:meth:`Pipeline.pulse`) for what it made
  due. While the leader polls Salesforce and plans (:meth:`Pipeline.quiet`) the lanes
  claim nothing: on two cores and one GIL, lanes, workers and recorder otherwise starve
  the poll that feeds them (seen: a first poll of 20,000 records past 13 minutes).
  ``orderflow sync --once`` and the tests keep the cycle's own dispatch.
- **Guarantees unchanged.** Intent before the call, result after, the same idempotency
  keys, leases renewed by the instance's heartbeat (daemon.cluster.instances), interrupted
  dispatches resent by whoever claims them. A lane never takes its own dispatches still out
  (or answered but not yet recorded) for interrupted ones. An answer the store could not
  record leaves its intent: the lane claims it again and resends it under the same key.
- **Stopping.** :meth:`Pipeline.stop` (SIGTERM) claims nothing more, lets the calls out
  finish and records their answers before it returns.
- **SQLite.** The lanes, the recorder, the loop and the listener write from threads of one
  process: every transaction of the daemon's SQLite engine then begins IMMEDIATE
  (daemon.store.db.serialise_transactions), so none reads a row another is about to change.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from sqlalchemy.exc import SQLAlchemyError

from daemon.context import Context
from daemon.cycle.dispatch import RECORD_BATCH, Answer, claim_requests, record_answers, send
from daemon.store import db
from downstream.protocol import TaskRequest

log = logging.getLogger(__name__)

#: What a worker hands the recorder: its lane, the task, the answer (None: nothing to
#: record, e.g. the step was put On Hold); None alone tells the recorder to finish.
_Item = tuple["_Lane", int, Answer | None]

#: Seconds a lane waits for a wake-up (a recorded answer, the cycle's pulse, a stop) before
#: it looks for due callouts anyway: the wake-ups are what it runs on, not this.
IDLE = 30.0
#: Seconds before a lane tries again after its claim failed (the store was unavailable).
RETRY = 1.0


class Pipeline:
    """The lanes and the recorder of one instance (see the module's docstring)."""

    def __init__(self, ctx: Context, idle: float = IDLE) -> None:
        self.ctx = ctx
        #: Seconds a lane waits for a wake-up before it looks for due callouts anyway.
        self.idle = idle
        self.stopping = threading.Event()
        #: Cleared while the leader ingests (:meth:`quiet`): the lanes claim nothing then.
        self.open = threading.Event()
        self.open.set()
        self.answers: queue.Queue[_Item | None] = queue.Queue()
        self._lanes = [_Lane(self, name) for name in sorted(ctx.systems)]
        self._recorder = threading.Thread(target=self._record, name="dispatch-recorder")
        self._sent = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        db.serialise_transactions(self.ctx.sessions.kw["bind"])
        self._recorder.start()
        for lane in self._lanes:
            lane.thread.start()

    def pulse(self, _ctx: Context | None = None) -> int:
        """The cycle's dispatch phase: wake the lanes (the cycle may have made callouts
        due); the number of dispatches sent since the last count (:meth:`sent`)."""
        self.wake()
        return self.sent()

    def sent(self) -> int:
        """Dispatches sent since the last count (the loop counts again at a cycle's end:
        what went out during a long writeback is told in that cycle's line)."""
        with self._lock:
            sent, self._sent = self._sent, 0
        return sent

    def wake(self) -> None:
        for lane in self._lanes:
            lane.wake.set()

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """While the leader polls Salesforce and plans what it found: the lanes claim
        nothing (the calls out finish and are recorded), so the poll has the process.
        Dispatching what the poll planned cannot start before it is planned anyway."""
        self.open.clear()
        try:
            yield
        finally:
            self.open.set()
            self.wake()

    def stop(self) -> None:
        """Claim nothing more; the calls out finish and their answers are recorded."""
        self.stopping.set()
        self.open.set()
        self.wake()
        for lane in self._lanes:
            if lane.thread.is_alive():
                lane.thread.join()
        self.answers.put(None)
        if self._recorder.is_alive():
            self._recorder.join()

    def count(self, sent: int) -> None:
        with self._lock:
            self._sent += sent

    def _record(self) -> None:
        finishing = False
        while not finishing:
            items: list[_Item] = []
            item = self.answers.get()
            while item is not None:
                items.append(item)
                if len(items) >= RECORD_BATCH:
                    break
                try:
                    item = self.answers.get_nowait()
                except queue.Empty:
                    break
            finishing = item is None
            self._record_items(items)

    def _record_items(self, items: list[_Item]) -> None:
        answers = [answer for _, _, answer in items if answer is not None]
        try:
            if answers:
                record_answers(self.ctx, answers, advance=True)
        except SQLAlchemyError as exc:
            log.warning(
                "recording %d answers failed; their dispatches will be resent: %s",
                len(answers),
                exc,
            )
        except Exception:  # a bug must not stop the recorder: the intents stay, resent
            log.exception("recording %d answers failed unexpectedly", len(answers))
        for lane, task_id, _ in items:
            lane.release(task_id)
        self.wake()  # what follows the recorded steps may be due, at any system


class _Lane:
    """One system's claims and workers."""

    def __init__(self, pipeline: Pipeline, system: str) -> None:
        self.pipeline = pipeline
        self.system = system
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"dispatch-{system}")
        self._lock = threading.Lock()
        #: Claimed and not yet recorded (out, or waiting for the recorder): a worker is
        #: free again only once its answer is committed, so claims follow the recorder.
        self._busy: set[int] = set()

    def release(self, task_id: int) -> None:
        """The recorder is done with ``task_id``: its worker is free."""
        with self._lock:
            self._busy.discard(task_id)

    def _run(self) -> None:
        pipeline = self.pipeline
        workers = ThreadPoolExecutor(pipeline.ctx.concurrency, f"dispatch-{self.system}")
        try:
            while not pipeline.stopping.is_set():
                if not pipeline.open.is_set():
                    pipeline.open.wait()  # the leader ingests (stopping opens it too)
                    continue
                self.wake.clear()  # a wake-up from now on is not missed by the wait below
                failed = not self._claim_and_send(workers)
                self.wake.wait(min(RETRY, pipeline.idle) if failed else pipeline.idle)
        finally:
            workers.shutdown(wait=True)  # the calls out finish; their answers are queued

    def _claim_and_send(self, workers: ThreadPoolExecutor) -> bool:
        """Claim due callouts for the free places and hand them to the workers; False when
        the store failed (tried again after :data:`RETRY` seconds).

        A lane holds up to two rounds of its workers' calls: one out, one claimed and
        queued behind it, so a worker that finishes takes the next call at once, not after
        a claim. It claims only when a whole round's places are free (or it holds none):
        one claim then serves a round of calls, not one or two (measured with instant
        stubs: 1.5 calls a claim, the claims a third of the store's time)."""
        ctx = self.pipeline.ctx
        with self._lock:
            free = 2 * ctx.concurrency - len(self._busy)
            busy = set(self._busy)
        if free < ctx.concurrency and busy:
            return True
        try:
            claimed = claim_requests(ctx, free, system=self.system, busy=busy)
        except SQLAlchemyError as exc:
            log.warning("%s: claiming callouts failed, trying again: %s", self.system, exc)
            return False
        except Exception:  # a bug must not stop the lane: logged, tried again
            log.exception("%s: claiming callouts failed unexpectedly", self.system)
            return False
        with self._lock:
            self._busy.update(task_id for task_id, _ in claimed)
        self.pipeline.count(len(claimed))
        for task_id, request in claimed:
            workers.submit(self._call, task_id, request)
        return True

    def _call(self, task_id: int, request: TaskRequest) -> None:
        answer = None
        try:
            answer = send(self.pipeline.ctx, task_id, request)
        except Exception:  # the store failed putting it On Hold: the intent stays, resent
            log.exception("%s: the dispatch of task %d failed", self.system, task_id)
        finally:
            self.pipeline.answers.put((self, task_id, answer))
