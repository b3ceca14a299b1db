"""The API budget: when to poll Salesforce, how long the daemon waits, and the reserve.

Pure: every method takes ``now`` (monotonic seconds) and the usage Salesforce last
reported; nothing here reads a clock or makes a call. The gateway asks :meth:`Pacer.allow`
before each call; the poller asks :meth:`Pacer.poll_due`; the loop asks
:meth:`Pacer.next_wait`.

- **Idle back-off.** A poll that finds nothing doubles the poll interval, up to
  ``max_idle``; a poll that finds a change snaps it back to ``interval``. A cycle still
  runs every ``interval`` while steps wait for downstream answers, which cost no
  Salesforce calls, because the poll is skipped until it is due.
- **Reserve.** When what is left of the org's daily allowance falls to ``reserve`` of it,
  the daemon polls once per ``reserve_interval`` (that one call also tells it when the
  rolling window has freed calls) and makes no other call, so the reserve stays for the
  people and integrations that share the org.
- **Spent allowance.** After 403 REQUEST_LIMIT_EXCEEDED "TotalRequests" calls are held;
  every ``probe_interval`` (``ORDERFLOW_SF_LIMIT_PROBE_INTERVAL``, or the longer delay
  Salesforce asked for) the gateway asks ``GET /limits`` (:meth:`Pacer.probe_due`), and
  calls resume as soon as what is left is above the reserve (:meth:`Pacer.probed`): the
  rolling window frees calls gradually, so the hold lasts minutes, not a fixed hour.
- **Concurrent refusals cost no hold.** REQUEST_LIMIT_EXCEEDED "ConcurrentPerOrgLongTxn" /
  "ConcurrentRequests" is a moment's congestion: the gateway retries it after seconds
  (salesforce.errors) and never tells the budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from salesforce.transport import ApiUsage

DAY = 86_400.0
MIN_WAIT = 0.05
PROBE_CALLS = 3


@dataclass(frozen=True)
class PacePolicy:
    """The settings of the budget."""

    interval: float = 5.0
    max_idle: float = 60.0
    reserve: float = 0.10
    reserve_interval: float = 900.0
    probe_interval: float = 300.0


class Pacer:
    """The poll cadence and the guard that keeps the reserve unspent."""

    def __init__(self, policy: PacePolicy) -> None:
        self.policy = policy
        self.poll_interval = policy.interval
        self.next_poll_at: float | None = None
        self.blocked_until: float | None = None
        self.usage: ApiUsage | None = None
        self.calls_per_poll: float | None = None
        self._last_probe: float | None = None
        self._probe_left = 0

    # -- the reserve ----------------------------------------------------------------------
    def observe(self, usage: ApiUsage | None) -> None:
        """Remember what Salesforce last said about the allowance."""
        if usage is not None:
            self.usage = usage

    @property
    def reserve_calls(self) -> int | None:
        return None if self.usage is None else int(self.usage.limit * self.policy.reserve)

    @property
    def under_reserve(self) -> bool:
        reserve = self.reserve_calls
        return self.usage is not None and reserve is not None and self.usage.left <= reserve

    def spent(self, now: float, retry_after: float | None = None) -> None:
        """Salesforce said the allowance is spent: hold calls until the next probe, one
        ``probe_interval`` on (or the longer delay Salesforce asked for)."""
        wait = max(self.policy.probe_interval, retry_after or 0.0)
        self.blocked_until = max(self.blocked_until or 0.0, now + wait)

    def probe_due(self, now: float) -> bool:
        """Whether calls are held and it is time to ask whether the allowance is back."""
        return self.blocked_until is not None and now >= self.blocked_until

    def probed(self, now: float, usage: ApiUsage | None) -> bool:
        """What a probe found (None: no answer to read). True when calls resume: what is
        left is above the reserve; else the next probe is one ``probe_interval`` on."""
        self.observe(usage)
        reserve = self.reserve_calls or 0
        if usage is not None and usage.left > reserve:
            self.blocked_until = None
            return True
        self.blocked_until = now + self.policy.probe_interval
        return False

    def allow(self, now: float) -> str | None:
        """None when a call may be made now, else why not."""
        if self.blocked_until is not None:
            wait = max(0.0, self.blocked_until - now)
            return f"the org's API allowance is spent; calls held, next probe in {wait:.0f} s"
        if not self.under_reserve:
            return None
        if self._probe_left > 0:
            self._probe_left -= 1
            return None
        if self._last_probe is None or now - self._last_probe >= self.policy.reserve_interval:
            # A poll may take a few calls (pages, a re-read): the probe allows that many.
            self._last_probe, self._probe_left = now, PROBE_CALLS - 1
            return None
        assert self.usage is not None
        return (
            f"API budget under the reserve ({self.usage.left} of {self.usage.limit} calls "
            f"left, reserve {self.reserve_calls}); one poll every "
            f"{self.policy.reserve_interval:g} s"
        )

    # -- the poll cadence -------------------------------------------------------------------
    def poll_due(self, now: float) -> bool:
        return self.next_poll_at is None or now >= self.next_poll_at

    def polled(self, now: float, *, found: bool, calls: int) -> None:
        """A poll ended at ``now``; ``found`` says whether it found a change."""
        if self.under_reserve:
            self.poll_interval = self.policy.reserve_interval
        elif found:
            self.poll_interval = self.policy.interval
        else:
            self.poll_interval = min(self.poll_interval * 2, self.policy.max_idle)
            self.poll_interval = max(self.poll_interval, self.policy.interval)
        self.next_poll_at = now + self.poll_interval
        if calls:
            previous = self.calls_per_poll
            self.calls_per_poll = calls if previous is None else 0.8 * previous + 0.2 * calls

    def work_appeared(self, now: float) -> None:
        """Something changed outside the poll (an operator, a callback): poll soon again."""
        if not self.under_reserve:
            self.poll_interval = self.policy.interval
            if self.next_poll_at is not None:
                self.next_poll_at = min(self.next_poll_at, now + self.policy.interval)

    def reschedule(self, interval: float) -> None:
        """Poll every ``interval`` from the last poll on (a cadence set from outside: the
        change event stream's safety poll, daemon.cycle.events)."""
        if self.next_poll_at is None:
            return
        last = self.next_poll_at - self.poll_interval
        self.poll_interval = interval
        self.next_poll_at = last + interval

    def next_wait(self, now: float, *, busy: bool) -> float:
        """Seconds until the next cycle: the base interval while work is going on (steps
        waiting for downstream answers cost no Salesforce call), else until the next poll."""
        if busy:
            return self.policy.interval
        until_poll = 0.0 if self.next_poll_at is None else self.next_poll_at - now
        if self.blocked_until is not None:
            until_poll = max(until_poll, self.blocked_until - now)
        return max(MIN_WAIT, until_poll)

    # -- what status shows ------------------------------------------------------------------
    def projected_calls_per_day(self) -> int | None:
        """Calls a day spent polling at the current pace."""
        if self.calls_per_poll is None:
            return None
        return round(self.calls_per_poll * DAY / self.poll_interval)

    def snapshot(self, now: float) -> dict[str, Any]:
        usage = self.usage
        return {
            "api_calls_used": usage.used if usage else None,
            "api_calls_limit": usage.limit if usage else None,
            "api_calls_left": usage.left if usage else None,
            "reserve_calls": self.reserve_calls,
            "under_reserve": self.under_reserve,
            "blocked_seconds": (
                round(self.blocked_until - now)
                if self.blocked_until and self.blocked_until > now
                else 0
            ),
            "poll_interval_seconds": self.poll_interval,
            "projected_calls_per_day": self.projected_calls_per_day(),
        }
