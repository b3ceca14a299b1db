"""The canvas's routes, under ``/canvas``: HTML pages, their JSON twins, and the actions.

Pages are rendered whole on the server (Jinja2); ``canvas.js`` re-fetches the page every few
seconds and swaps the regions marked ``data-live``, so a page is live without a second
rendering path. Handlers are plain functions: Starlette runs them in its thread pool, so
store queries never block the event loop. Nothing is fetched from elsewhere: the CSS and
JS are served from ``static/`` and the Content-Security-Policy says so.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from daemon.web.canvas import actions, display
from daemon.web.canvas.orders import PAGE_SIZE, TABS, orders_page
from daemon.web.canvas.plan import plan_view, step_detail
from daemon.web.canvas.systems import OUTCOME_WINDOW, systems_view
from orchestration.states import StepState

BASE = "/canvas"
HERE = Path(__file__).parent
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
}


@dataclass
class CanvasConfig:
    """What the canvas needs: the store, the clock, the token, the configured systems."""

    sessions: sessionmaker[Session]
    clock: Callable[[], datetime]
    operator_token: SecretStr | None
    systems: Collection[str]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(display.FILTERS)
    env.globals.update(base=BASE, tabs=TABS, page_size=PAGE_SIZE, outcome_window=OUTCOME_WINDOW)
    env.globals["step_states"] = [s.value for s in StepState]  # the legend: every state
    return env


class Canvas:
    """The handlers, bound to one configuration."""

    def __init__(self, config: CanvasConfig) -> None:
        self.config = config
        self.env = _environment()

    def _page(self, name: str, status: int = 200, **values: Any) -> Response:
        actions_on = self.config.operator_token is not None
        text = self.env.get_template(name).render(actions_on=actions_on, **values)
        return HTMLResponse(text, status_code=status, headers=HEADERS)

    def _missing(self, what: str) -> Response:
        return self._page("missing.html", status=404, what=what, title="Not found")

    # Orders
    def orders(self, request: Request) -> Response:
        found = self._orders(request)
        return self._page("orders.html", view=found, title="Orders")

    def orders_json(self, request: Request) -> Response:
        return _json(self._orders(request))

    def _orders(self, request: Request) -> Any:
        params = request.query_params
        with self.config.sessions() as session:
            return orders_page(
                session,
                params.get("tab", "all"),
                params.get("q", ""),
                _int(params.get("page"), 1),
                self.config.clock(),
            )

    # One plan
    def plan(self, request: Request) -> Response:
        plan_id = int(request.path_params["plan_id"])
        selected = _int(request.query_params.get("task"), 0)
        with self.config.sessions() as session:
            view = plan_view(session, plan_id, self.config.clock())
            detail = step_detail(session, selected) if selected else None
        if view is None:
            return self._missing(f"plan {plan_id}")
        if detail is not None and detail.plan_id != view.id:
            detail = None
        title = f"Order {view.order_number}"
        return self._page("plan.html", plan=view, detail=detail, title=title)

    def plan_json(self, request: Request) -> Response:
        with self.config.sessions() as session:
            view = plan_view(session, int(request.path_params["plan_id"]), self.config.clock())
        return _json(view) if view is not None else _error(404, "no such plan")

    def task_json(self, request: Request) -> Response:
        with self.config.sessions() as session:
            detail = step_detail(session, int(request.path_params["task_id"]))
        return _json(detail) if detail is not None else _error(404, "no such task")

    # Systems
    def systems(self, request: Request) -> Response:
        with self.config.sessions() as session:
            view = systems_view(session, self.config.systems)
        return self._page("systems.html", view=view, title="Systems")

    def systems_json(self, request: Request) -> Response:
        with self.config.sessions() as session:
            return _json(systems_view(session, self.config.systems))

    # Actions (async: the body is read on the loop, the store work in the thread pool)
    async def resolve(self, request: Request) -> Response:
        task_id, verb = int(request.path_params["task_id"]), str(request.path_params["verb"])
        return await self._act(
            request, lambda form: actions.resolve(
                self.config.sessions, task_id, verb, form, self.config.clock()
            )
        )  # fmt: skip

    async def switch(self, request: Request) -> Response:
        name, to = str(request.path_params["name"]), str(request.path_params["to"])
        return await self._act(
            request,
            lambda form: actions.switch_system(
                self.config.sessions, name, to, form, self.config.clock(), self._known_systems
            ),
        )

    def _known_systems(self) -> Collection[str]:
        with self.config.sessions() as session:
            return [s.name for s in systems_view(session, self.config.systems).systems]

    async def _act(self, request: Request, do: Callable[[dict[str, str]], Any]) -> Response:
        try:
            form = actions.form_of(await request.body(), request.headers.get("content-type", ""))
            headers = {k.lower(): v for k, v in request.headers.items()}
            actions.check_token(self.config.operator_token, headers, form)
            answer = await run_in_threadpool(do, form)
        except actions.Refused as exc:
            return _error(exc.status, exc.message)
        return _json(answer)


def canvas_routes(config: CanvasConfig) -> list[BaseRoute]:
    """The canvas under ``/canvas`` (and ``/`` sending people there)."""
    canvas = Canvas(config)
    return [
        Route("/", lambda request: RedirectResponse(f"{BASE}/"), methods=["GET"]),
        Mount(
            BASE,
            routes=[
                Route("/", canvas.orders, methods=["GET"]),
                Route("/plans/{plan_id:int}", canvas.plan, methods=["GET"]),
                Route("/systems", canvas.systems, methods=["GET"]),
                Route("/api/orders", canvas.orders_json, methods=["GET"]),
                Route("/api/plans/{plan_id:int}", canvas.plan_json, methods=["GET"]),
                Route("/api/tasks/{task_id:int}", canvas.task_json, methods=["GET"]),
                Route("/api/systems", canvas.systems_json, methods=["GET"]),
                Route("/api/tasks/{task_id:int}/{verb}", canvas.resolve, methods=["POST"]),
                Route("/api/systems/{name}/{to}", canvas.switch, methods=["POST"]),
                Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
            ],
        ),
    ]


def create_canvas_app(config: CanvasConfig) -> Starlette:
    """The canvas alone (``orderflow canvas``: the store, no Salesforce, no loop)."""
    return Starlette(routes=canvas_routes(config))


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"not JSON: {type(value).__name__}")


def _json(value: Any, status: int = 200) -> Response:
    is_instance = dataclasses.is_dataclass(value) and not isinstance(value, type)
    data = dataclasses.asdict(value) if is_instance else value
    body = json.dumps(data, default=_plain, sort_keys=True)
    return Response(body, status_code=status, media_type="application/json", headers=HEADERS)


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)
