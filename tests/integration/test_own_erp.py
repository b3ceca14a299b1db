"""The README's example of a user's own ERP, end to end: it passes ``orderflow rules check``,
and the daemon sends each order to an ERP (a stub over real HTTP) that accepts exactly the
shape the example declares and refuses anything else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from daemon.commands.main import main
from daemon.http import make_session
from downstream.http import HttpJsonConnector
from downstream.protocol import Outcome, TaskRequest
from tests.integration.downstream_world import swap_stub
from tests.integration.world import World, run_until_settled

README = Path(__file__).resolve().parents[2] / "README.md"
#: What Acme's ERP takes at POST /orders, written here independently of the README.
ACME_ORDER: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["order", "sf_id", "lines"],
    "properties": {
        "order": {"type": "string"},
        "sf_id": {"type": "string", "pattern": "^[A-Za-z0-9]{18}$"},
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["sku", "qty"],
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
            },
        },
    },
}


def readme_example(tmp_path: Path) -> Path:
    """The example's YAML exactly as the README shows it."""
    text = README.read_text(encoding="utf-8")
    start = text.index("# acme-rules.yaml")
    path = tmp_path / "acme-rules.yaml"
    path.write_text(text[start : text.index("```", start)])
    return path


def test_the_readme_example_passes_rules_check(tmp_path, capsys):
    path = readme_example(tmp_path)
    assert main(["rules", "check", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: ok, version acme-1, 2 rules, 2 steps\n"


def test_the_readme_example_sends_exactly_the_shape_its_erp_takes(
    world: World, monkeypatch, tmp_path
):
    erp = swap_stub(world, "erp", expects={"orders": ACME_ORDER})
    order = world.add_order("PLAT-PRO", "ADD-SSO")
    ctx = world.context(monkeypatch, rules_file=readme_example(tmp_path))
    run_until_settled(ctx, world)

    assert world.order_statuses() == {order: "Completed"}
    assert erp.stats()["requests"] == 1, "accepted the first time: no refusal"
    (effect,) = erp.effects
    number = world.emu.get("Order", order)["OrderNumber"]
    lines = sorted(effect.payload["lines"], key=lambda line: line["sku"])
    assert effect.action == "orders"
    assert {**effect.payload, "lines": lines} == {
        "order": number,
        "sf_id": order,
        "lines": [{"sku": "ADD-SSO", "qty": 5}, {"sku": "PLAT-PRO", "qty": 5}],
    }
    assert all(s.stats()["requests"] == 0 for n, s in world.stubs.items() if n != "erp")


def test_the_erp_stub_refuses_a_shape_it_does_not_take(world: World):
    """The issue's first report: the demo's sales order sent to an ERP that takes another."""
    erp = swap_stub(world, "erp", expects={"orders": ACME_ORDER})
    connector = HttpJsonConnector("erp", erp.url, make_session(), token=erp.token)
    request = TaskRequest(
        system="erp",
        action="orders",
        idempotency_key="k1",
        step_ref="801A/erp_order.sales_order/r1",
        payload={"order_number": "00000100", "lines": []},
    )
    result = connector.submit(request)
    assert (result.outcome, result.code) == (Outcome.FAILED, "INVALID_PAYLOAD")
    assert result.message.startswith("erp: /: Additional properties are not allowed")
    assert erp.effects == []
