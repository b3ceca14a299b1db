"""The operations canvas: one web page for everything in flight.

Served by ``orderflow run`` on its HTTP listener (:func:`daemon.web.listener.daemon_routes`) and by
``orderflow canvas`` against the store alone. Pages: the orders (filter tabs, search, worst
first, paged on the server), one order's plan (the step graph by dependency and system, the
decomposition, a step's audit trail) and the systems (online or offline, queues, error
rates, the Salesforce API budget). Read-only without the operator token; with it, the same
actions as ``orderflow task`` and ``orderflow system``, audited the same way.

Modules: :mod:`.routes` (HTTP), :mod:`.orders`, :mod:`.plan`, :mod:`.systems` (queries),
:mod:`.layout` (the graph, pure), :mod:`.actions` (token and actions), :mod:`.display`
(template filters); ``templates/`` and ``static/`` hold the HTML, CSS and JS.
"""

from daemon.web.canvas.routes import CanvasConfig, canvas_routes, create_canvas_app

__all__ = ["CanvasConfig", "canvas_routes", "create_canvas_app"]
