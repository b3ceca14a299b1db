"""What every phase of a cycle needs, built once by :mod:`daemon.app`."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from downstream.protocol import DownstreamSystem
from orchestration.rules import RuleSet
from salesforce.gateway import SalesforceGateway

AutoAction = Callable[[dict[str, Any]], None]


@dataclass
class Context:
    """Everything a cycle needs."""

    sessions: sessionmaker[Session]
    gateway: SalesforceGateway
    systems: Mapping[str, DownstreamSystem]
    ruleset: RuleSet
    clock: Callable[[], datetime]
    statuses: list[str] = field(default_factory=lambda: ["Activated"])
    overlap: timedelta = timedelta(minutes=10)
    settle: timedelta = timedelta(seconds=2)
    auto_actions: Mapping[str, AutoAction] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
