"""Helpers for the downstream tests: swap a stub, serve the daemon's HTTP listener, run cycles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from daemon.context import Context
from daemon.cycle.run import run_cycle
from daemon.store.models import Task
from downstream.stubs import StubSystem
from tests.integration.world import World


def swap_stub(world: World, name: str, **options: Any) -> StubSystem:
    """Replace one of the world's stubs by one with other behaviour (same token)."""
    old = world.stubs[name]
    old.stop()
    stub = StubSystem(name, token=old.token, **options)
    stub.start()
    world.stubs[name] = stub
    return stub


def tasks(ctx: Context, system: str | None = None) -> list[Task]:
    with ctx.sessions() as session:
        query = session.query(Task).order_by(Task.id)
        if system:
            query = query.filter(Task.system == system)
        return list(query)


def cycle_until(ctx: Context, done: Callable[[], bool], cycles: int = 15) -> int:
    for n in range(1, cycles + 1):
        run_cycle(ctx)
        if done():
            return n
    raise AssertionError(f"not done after {cycles} cycles")
