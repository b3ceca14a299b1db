"""The canvas in headless Chromium while `orderflow run` works: filter, open a plan, retry a
fallout step without the token (refused) and with it (Ready, then sent again, live).

Drives Debian's ``chromium`` through Playwright (``executable_path``: nothing downloaded).
With ``CANVAS_SCREENSHOTS=DIR`` set (relative to the repository) it also writes
``canvas-orders.png``, ``canvas-plan.png`` and ``canvas-systems.png`` there:
``CANVAS_SCREENSHOTS=docs .venv/bin/pytest tests/acceptance/test_canvas_browser.py``
refreshes the README's pictures.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from daemon.ops.demo import demo_environment
from daemon.settings import DEFAULT_RULES
from daemon.web.canvas.layout import ROW_PAD
from downstream.stubs import StubFaults, StubSystem
from salesforce.emulator.seed import seed_demo_org
from tests.conftest import ROOT
from tests.integration.world import World

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "browser-test-operator-token"
#: A plan of 31 steps under the default rules (4 for the order, 6 for its subscription, 3 for
#: each other line; 30 exactly is not a sum of those): a kick-off call and a refused SSO add-on.
BIG_ORDER = ("PLAT-ENT", "PS-ONBOARD", "PS-TRAIN", "ADD-SSO") + ("ADD-AUDIT", "SEATS-EXTRA") * 2
#: The least scale at which Zoom to fit shows that plan in a 1600x900 window.
FIT_SCALE_FLOOR = 0.75

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)"
    ),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def running(world: World, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """`orderflow run` as a process against the world; provisioning refuses the SSO add-on.
    Yields the canvas URL, the fallout order's id and the id of an order of 30 steps."""
    picky = StubSystem(
        "provisioning",
        token="provisioning-secret-token",
        faults=StubFaults(reject_skus=frozenset({"LIC-ADDON-SSO"})),
    )
    picky.start()
    world.stubs["provisioning"].stop()
    world.stubs["provisioning"] = picky
    seed_demo_org(world.emu, orders=0)
    fallout = world.add_order("PLAT-PRO", "ADD-SSO")
    big = world.add_order(*BIG_ORDER)
    for codes in (("PLAT-PRO",), ("PLAT-PRO", "ADD-AUDIT"), ("PLAT-PRO", "PS-ONBOARD")) * 3:
        world.add_order(*codes)
    port = free_port()
    env = demo_environment(world.emu, world.stubs, tmp_path)
    env.update(
        ORDERFLOW_HTTP_PORT=str(port),
        ORDERFLOW_OPERATOR_TOKEN=TOKEN,
        ORDERFLOW_RULES_FILE=str(hurried_rules(tmp_path)),
        ORDERFLOW_JEOPARDY_INTERVAL="0.5",
    )
    with (tmp_path / "daemon.log").open("w") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _listed(url, "fallout"), "the daemon to plan the orders and fall out")
        wait_for(lambda: _listed(url, "at-risk"), "the jeopardy sweep to see a late kick-off")
        yield url, fallout, big
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def _listed(url: str, tab: str) -> bool:
    try:
        answer = requests.get(f"{url}/canvas/api/orders", params={"tab": tab}, timeout=5)
    except requests.ConnectionError:
        return False
    return answer.ok and answer.json()["total"] >= 1


def hurried_rules(folder: Path) -> Path:
    """The default rules with a manual step At Risk a second after it starts (Late in a day):
    the orders waiting for their kick-off call (no operator here) go At Risk."""
    text = DEFAULT_RULES.read_text()
    slow = "manual: {estimate: 2d, jeopardy: 8h}"
    assert slow in text
    path = folder / "rules.yaml"
    path.write_text(text.replace(slow, "manual: {estimate: 1d, jeopardy: 86399s}"))
    return path


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def screenshot(page: Any, name: str, *, full_page: bool = False) -> None:
    folder = os.environ.get("CANVAS_SCREENSHOTS")
    if folder:
        where = ROOT / folder  # relative to the repository (tests run in a temporary folder)
        where.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(where / name), full_page=full_page)


def test_an_operator_filters_opens_a_plan_and_retries_fallout(running, browser):
    url, fallout, _ = running
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    page.goto(f"{url}/")  # the listener's root sends people to the canvas
    assert page.url.endswith("/canvas/")
    rows = page.locator("table.orders tbody tr[data-plan]")
    rows.first.wait_for()

    # At Risk: only orders in jeopardy (none until jeopardy is tracked: the tab says so).
    page.click("a.tab-at-risk")
    page.wait_for_url("**tab=at-risk**")
    assert page.locator("a.tab-at-risk.here").count() == 1
    jeopardy = page.locator("table.orders tbody tr[data-plan] td:nth-child(4)").all_inner_texts()
    assert jeopardy, "the orders waiting for their kick-off call are At Risk"
    assert all(text.strip() == "At Risk" for text in jeopardy)
    why = page.locator("table.orders tbody tr[data-plan] td.why").all_inner_texts()
    assert all("kick-off call" in text for text in why)

    # Fallout: exactly the orders in fallout, the refused one among them.
    page.click("a.tab-fallout")
    page.wait_for_url("**tab=fallout**")
    statuses = page.locator("table.orders tbody tr[data-plan] td:nth-child(3)").all_inner_texts()
    assert statuses and all(s.strip() == "Fallout" for s in statuses)
    page.goto(f"{url}/canvas/")
    rows.first.wait_for()
    wait_for(lambda: rows.count() >= 10, "every order listed (live, without a reload)")
    assert rows.first.locator("td:nth-child(3)").inner_text().strip() == "Fallout", "worst first"
    screenshot(page, "canvas-orders.png")

    # Open the plan of the fallout order from the search.
    page.fill("input[name=q]", fallout)
    page.press("input[name=q]", "Enter")
    page.wait_for_url("**q=**")
    page.click("table.orders tbody tr[data-plan] a.order")
    page.wait_for_url("**/canvas/plans/**")
    failed = page.locator("svg.graph a.step.st-fatally-failed")
    assert failed.count() == 1
    task_id = failed.get_attribute("data-task")
    failed.click()
    detail = page.locator("#detail")
    page.wait_for_selector(f"#detail[data-task='{task_id}']")
    assert "unknown SKU LIC-ADDON-SSO" in detail.inner_text()
    assert "Fatally Failed" in detail.locator("table.history").inner_text()
    assert page.locator("#lines li.selected").count() == 1, "the step in the decomposition"
    screenshot(page, "canvas-plan.png", full_page=True)

    # Retry without the token: refused, nothing changes.
    page.fill("#reason", "SKU added to the provisioning catalogue")
    page.click("#actions button[data-verb=retry]")
    page.wait_for_selector("#notice.bad:not([hidden])")
    assert "401" in page.inner_text("#notice")
    state = requests.get(f"{url}/canvas/api/tasks/{task_id}", timeout=5).json()["step"]["state"]
    assert state == "Fatally Failed"

    # With the token: Ready at once, audited; the daemon sends it again, shown live.
    page.fill("#actor", "ana")
    page.fill("#token", TOKEN)
    page.click("#actions button[data-verb=retry]")
    page.wait_for_selector("#notice.good:not([hidden])")
    assert page.inner_text("#notice").endswith(": Ready")
    history = detail.locator("table.history tbody tr")

    def retried() -> int:
        texts = history.all_inner_texts()
        return next((i for i, text in enumerate(texts) if "ana (canvas)" in text), -1)

    wait_for(lambda: retried() >= 0, "the retry in the step's history")
    ready = retried()
    row = history.nth(ready).inner_text()
    assert "Fatally Failed" in row and "Ready" in row
    assert "operator retry: SKU added to the provisioning catalogue" in row
    wait_for(lambda: history.count() > ready + 1, "the daemon to send the step again (live)")
    assert "dispatching" in history.nth(ready + 1).inner_text()

    # The systems: each one's state and queue, and the Salesforce API budget.
    page.click("header nav a[href$='/systems']")
    page.wait_for_url("**/canvas/systems")
    systems = page.locator("table.systems tbody tr").all_inner_texts()
    assert {text.split()[0] for text in systems} >= {"erp", "billing", "provisioning"}
    assert "Salesforce API budget" in page.inner_text("main")
    screenshot(page, "canvas-systems.png")


def open_plan(page: Any, url: str, order_id: str) -> None:
    page.goto(f"{url}/canvas/?q={order_id}")
    page.click("table.orders tbody tr[data-plan] a.order")
    page.wait_for_url("**/canvas/plans/**")
    page.locator("svg.graph a.step").first.wait_for()


def rect(page: Any, selector: str) -> list[dict[str, float]]:
    """The bounding boxes on screen of what a selector finds."""
    return list(
        page.eval_on_selector_all(
            selector,
            "els => els.map(e => { const r = e.getBoundingClientRect();"
            " return {left: r.left, top: r.top, right: r.right, bottom: r.bottom}; })",
        )
    )


def inside(box: dict[str, float], frame: dict[str, float]) -> bool:
    slack = 1.0  # sub-pixel rounding of a scaled SVG
    return (
        box["left"] >= frame["left"] - slack
        and box["top"] >= frame["top"] - slack
        and box["right"] <= frame["right"] + slack
        and box["bottom"] <= frame["bottom"] + slack
    )


def overlapping(boxes: list[dict[str, float]]) -> list[tuple[int, int]]:
    """Pairs of boxes that overlap (touching edges do not count)."""

    def meet(a: dict[str, float], b: dict[str, float]) -> bool:
        return (
            a["left"] < b["right"] - 1
            and b["left"] < a["right"] - 1
            and a["top"] < b["bottom"] - 1
            and b["top"] < a["bottom"] - 1
        )

    return [
        (i, j)
        for i, a in enumerate(boxes)
        for j, b in enumerate(boxes[i + 1 :], i + 1)
        if meet(a, b)
    ]


def test_a_30_step_plan_opens_on_its_first_step_needing_attention_and_zooms_to_fit(
    running, browser
):
    url, _, big = running
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    open_plan(page, url, big)
    steps = page.locator("svg.graph a.step")
    assert steps.count() >= 30
    # The Account by the name Salesforce gave, its id on hover and beside it.
    account = page.locator("#plan-head dd.account")
    assert (account.get_attribute("title") or "").startswith("001")
    assert account.inner_text().split()[0].isalpha()

    # One row per commercial line (and one for the order as a whole), each as tall as the
    # steps it holds: no row without steps, no empty band above or below them.
    rows = rect(page, "svg.graph rect.lane")
    assert len(rows) == 1 + len(BIG_ORDER)
    boxes = rect(page, "svg.graph a.step rect.box")
    for row in rows:
        held = [b for b in boxes if b["top"] >= row["top"] and b["bottom"] <= row["bottom"]]
        assert held, "no row without steps"
        assert min(b["top"] for b in held) - row["top"] <= ROW_PAD + 1
        assert row["bottom"] - max(b["bottom"] for b in held) <= ROW_PAD + 1
    assert not overlapping(boxes)

    # Opened on the first step needing attention: inside the frame and the window.
    first = page.locator("svg.graph a.step.first-attention")
    assert first.count() == 1
    assert first.get_attribute("data-step") == page.get_attribute("svg.graph", "data-attention")
    frame = rect(page, "#graph")[0]
    spot = rect(page, "svg.graph a.step.first-attention rect.box")[0]
    assert inside(spot, frame)
    assert inside(spot, {"left": 0, "top": 0, "right": 1600, "bottom": 900})
    screenshot(page, "canvas-plan-30-opening.png")

    # Zoom to fit: every step and every edge inside the frame, nothing left to scroll to.
    page.click("button#fit")
    page.wait_for_selector("button#fit[aria-pressed=true]")
    frame = rect(page, "#graph")[0]
    edges = rect(page, "svg.graph path.edge")
    assert len(edges) >= 29, "a 30-step plan is connected"
    svg = rect(page, "svg.graph")[0]
    outside = [b for b in rect(page, "svg.graph a.step rect.box") + edges if not inside(b, frame)]
    assert not outside
    outside = [b for b in rect(page, "svg.graph a.step rect.box") + edges if not inside(b, svg)]
    assert not outside, "every box and edge inside the drawing"
    assert not overlapping(rect(page, "svg.graph a.step rect.box"))
    # Dense enough that the whole plan reads when fitted (12px titles stay above 9px).
    scale = page.eval_on_selector("svg.graph", "g => g.getScreenCTM().a")
    assert scale >= FIT_SCALE_FLOOR, f"fitted at {scale:.2f}"
    size = page.eval_on_selector(
        "#graph", "g => [g.scrollWidth, g.clientWidth, g.scrollHeight, g.clientHeight]"
    )
    assert size[0] <= size[1] and size[2] <= size[3], "nothing beyond the frame to scroll to"
    screenshot(page, "canvas-plan-30.png")

    # And back to full size, the step needing attention in view again.
    page.click("button#fit")
    page.wait_for_selector("button#fit[aria-pressed=false]")
    assert inside(
        rect(page, "svg.graph a.step.first-attention rect.box")[0], rect(page, "#graph")[0]
    )
