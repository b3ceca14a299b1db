"""The cut-over: the moment Orderflow took over from the legacy integrations.

- **Required on a first start.** On an empty store (no plan, no watermark) ``orderflow
  run`` and ``sync --once`` refuse to start without one: the first poll reads the org from
  2000 on and would send every order the legacy integrations fulfilled years ago.
- **Stored and audited.** ``ORDERFLOW_CUTOVER_AT`` or ``orderflow cutover --at`` stores it;
  each setting is a row of ``cutovers`` (time, actor, reason), the newest one holds.
  Changing it needs ``--force``; a setting that disagrees with the stored one stops the
  process with one line.
- **History adopted once, resumably.** :func:`daemon.ops.golive.adopt_history` reads every
  Order whose cut-over field falls on or before the cut-over's day in pages (resync's range
  read, each page committed) and adopts what is historic (daemon.cycle.adoption). A kill in
  the middle leaves the pages taken; the next start reads again, finds them unchanged and
  goes on. The row records when adoption finished; a changed cut-over adopts again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from daemon.store.models import Cutover, Plan, Watermark
from orchestration.errors import ConfigError

log = logging.getLogger(__name__)

EXAMPLE = "2026-11-30T00:00:00Z"
#: How a switch from a shadow run to live (daemon.ops.golive) begins its cut-over row's reason.
GO_LIVE = "go-live"
NO_CUTOVER = (
    "no cut-over: on an empty store the first poll would send every order in the org again; "
    f"set ORDERFLOW_CUTOVER_AT or run `orderflow cutover --at DATETIME` (e.g. {EXAMPLE})"
)


def parse(text: str, now: datetime | None = None) -> datetime:
    """An ISO-8601 datetime in UTC (no offset: UTC), not in the future; ValueError if not."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 UTC datetime (e.g. {EXAMPLE})") from None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if value > (now or datetime.now(UTC)):
        raise ValueError(f"{iso(value)} is in the future: the cut-over is a moment passed")
    return value


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def current(session: Session) -> Cutover | None:
    """The cut-over that holds (the newest row), or None."""
    return session.scalars(select(Cutover).order_by(Cutover.id.desc()).limit(1)).first()


def history(session: Session) -> list[Cutover]:
    """Every setting of the cut-over, oldest first (the audit trail)."""
    return list(session.scalars(select(Cutover).order_by(Cutover.id)))


def store_empty(session: Session) -> bool:
    """No plan and no watermark: nothing was ever polled into this store."""
    plans = session.scalar(select(func.count()).select_from(Plan))
    marks = session.scalar(select(func.count()).select_from(Watermark))
    return not plans and not marks


def set_cutover(
    session: Session, at: datetime, now: datetime, *, actor: str, force: bool = False
) -> Cutover:
    """Store ``at`` as the cut-over; the same again changes nothing, another one needs
    ``force`` (ConfigError otherwise)."""
    row = current(session)
    if row is not None and row.at == at:
        return row
    if row is not None and not force:
        raise ConfigError(
            f"the cut-over is {iso(row.at)} (set {iso(row.set_at)} by {row.actor}); "
            "changing it needs --force"
        )
    reason = "set" if row is None else f"changed from {iso(row.at)} (--force)"
    new = Cutover(at=at, set_at=now, actor=actor, reason=reason, adopted_at=None)
    session.add(new)
    session.flush()
    log.info("cut-over %s: %s by %s", iso(at), reason, actor)
    return new


def establish(
    sessions: sessionmaker[Session], setting: datetime | None, now: datetime
) -> datetime | None:
    """The cut-over a process works with: the stored one. ``ORDERFLOW_CUTOVER_AT`` is
    stored when none is, and must agree with a stored one (ConfigError), or name the one a
    switch to live moved on from (daemon.ops.golive)."""
    with sessions.begin() as session:
        row = current(session)
        if setting is None or (row is not None and row.at == setting):
            return None if row is None else row.at
        moved_on = row is not None and row.reason.startswith(GO_LIVE)
        if moved_on and any(earlier.at == setting for earlier in history(session)):
            return None if row is None else row.at
        if row is not None:
            raise ConfigError(
                f"setting ORDERFLOW_CUTOVER_AT: {iso(setting)} is not the stored cut-over "
                f"{iso(row.at)}; change it with `orderflow cutover --at {iso(setting)} "
                "--force`, or set the variable to the stored one"
            )
        set_cutover(session, setting, now, actor="ORDERFLOW_CUTOVER_AT")
        return setting


def require(sessions: sessionmaker[Session]) -> None:
    """Refuse a start (ConfigError) on an empty store without a cut-over."""
    with sessions() as session:
        if current(session) is None and store_empty(session):
            raise ConfigError(NO_CUTOVER)


def adopted_count(session: Session) -> int:
    """Plans adopted at the cut-over."""
    adopted = select(func.count()).select_from(Plan).where(Plan.adopted_at.is_not(None))
    return session.scalar(adopted) or 0
