"""``orderflow sync --once`` for cron and scripts: its exit code says whether the cycle ran."""

from __future__ import annotations

from daemon import app
from daemon.commands.main import main
from daemon.context import Context
from daemon.settings import Settings
from salesforce.emulator.faults import Fault
from tests.integration.world import World


def test_sync_once_exits_0_after_a_cycle_and_1_after_a_failed_one(
    world: World, monkeypatch, capsys
):
    world.context(monkeypatch)  # the environment, as the daemon reads it
    built = app.context

    def no_sleep(settings: Settings) -> Context:
        ctx = built(settings)
        ctx.gateway.sleep = lambda _seconds: None  # its retries need not wait
        return ctx

    monkeypatch.setattr(app, "context", no_sleep)
    world.add_order("PLAT-PRO")
    assert main(["sync", "--once"]) == 0

    # Salesforce answers every API call 503 (the login still works): the cycle fails. Invoices
    # on for sure, so start-up's describe (account names only) need not answer and it is the
    # cycle that meets the 503s.
    monkeypatch.setenv("ORDERFLOW_SF_INVOICES", "true")
    world.emu.set_faults(Fault(rate_503=1.0))
    assert main(["sync", "--once"]) == 1
    assert "cycle interrupted, will retry" in capsys.readouterr().err
