"""The cluster's live dashboard: one web page, in any browser, no Jupyter needed.

::

    server thread (ThreadingHTTPServer)          browser (dashboard_page.html)
    ───────────────────────────────────          ─────────────────────────────
    GET /status?token=…        ──► the page ───► loads /plotly.min.js?token=…
    GET /data.json?token=…     ──► snapshot  ◄── polls every POLL_SECONDS, redraws
    GET /plotly.min.js?token=… ──► plotly.js from the plotly package (works offline)

    sampler thread (ResourceSampler, every RESOURCE_INTERVAL s while serving):
    CPU % and memory of this process and its children (the workers) ──► samples

- ``Dashboard``: the server, its token and the resource sampler; the cluster
  starts it (``LocalCluster(dashboard_address=...)``) and closes it first
  thing in ``close()``.
- ``snapshot``: what ``/data.json`` returns (see :meth:`Dashboard.snapshot`);
  built at most every ``SNAPSHOT_MAX_AGE`` seconds however many pages poll,
  so open tabs cost the scheduler thread a bounded amount.
- ``RunProgress``: the page's progress bars count the current run, the
  tasks since the cluster was last seen idle, not every task since it
  started (a second compute of 201 tasks would start half full at
  201 / 402); ``running`` never exceeds the threads (tasks sent to a busy
  worker are ``queued``, see ``diagnostics.workers.task_slots``).

Why a token on every route, the page included: the port is reachable by
every user of the machine (and by any web page the user's browser visits),
and the data names tasks and files. Requests without the token, as
``?token=`` or as the cookie the page sets, get 403. The page's own requests
carry the token in the query string; the cookie lets a reload of ``/status``
without the query work in the same browser.

Why the other defences: every response carries a Content-Security-Policy
(the page may run only its own inline script, by hash, and same-origin
scripts; nothing may frame it), ``X-Frame-Options: DENY`` and
``nosniff``, so a task name that slipped into the HTML could not run code
and another site cannot frame the page to trick a click. Tokens are compared
as bytes, so an odd token (non-ASCII, very long) is a plain 403. Each
connection runs on its own thread, and a request line and headers not read
within ``IDLE_TIMEOUT`` seconds (an idle socket, a slow-loris client) close
the connection, so idle sockets cannot pin threads.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import io
import json
import re
import secrets
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from lazycell.diagnostics.compute_state import group_label
from lazycell.diagnostics.resources import ResourceSampler, total_memory
from lazycell.diagnostics.workers import cluster_task_slots

POLL_SECONDS = 1.0
RESOURCE_INTERVAL = 0.5
# The resource history keeps its whole span, thinned by halving past this many samples.
MAX_RESOURCE_SAMPLES = 1200
SNAPSHOT_MAX_AGE = 0.5
PAGE_FILE = "dashboard_page.html"
CONFIG_PLACEHOLDER = "__LAZYCELL_DASHBOARD_CONFIG__"
# A request's line and headers must arrive within this many seconds of the
# connection (or of the previous response); a browser sends them at once.
IDLE_TIMEOUT = 5.0
# A client that stops reading a response is dropped after this many seconds.
SEND_TIMEOUT = 60.0
# Every response but the page: nothing may load, run or frame it.
STRICT_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


class Dashboard:
    """Serve the live dashboard of ``cluster`` on ``host:port`` (port 0: a free one).

    A connection that has not sent its whole request (line and headers)
    ``idle_timeout`` seconds after it opened is closed.

    >>> dashboard = Dashboard(cluster)
    >>> dashboard.start()
    >>> dashboard.link
    'http://127.0.0.1:40123/status?token=…'
    >>> dashboard.close()
    """

    def __init__(
        self, cluster, host: str = "127.0.0.1", port: int = 0, idle_timeout: float = IDLE_TIMEOUT
    ):
        self.cluster = cluster
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self.token = secrets.token_urlsafe(32)
        self.sampler = ResourceSampler(RESOURCE_INTERVAL, max_samples=MAX_RESOURCE_SAMPLES)
        self.closed = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._page: bytes | None = None
        self._page_policy: str | None = None
        self._plotly_js: bytes | None = None
        self._snapshot: bytes | None = None
        self._snapshot_at = float("-inf")
        self._snapshot_lock = threading.Lock()
        self.progress = RunProgress()

    # -- lifetime
    def start(self) -> None:
        """Bind the port and serve on a daemon thread; sample resources while serving."""
        if self._server is not None or self.closed:
            return
        server_class = _IPv6Server if ":" in self.host else _Server
        self._server = server_class((self.host, self.port), _Handler)
        self._server.dashboard = self
        self.port = self._server.server_address[1]
        self.sampler.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="lazycell-dashboard",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving, free the port and stop sampling. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        server, self._server = self._server, None
        if server is not None:
            if self._thread is not None:
                server.shutdown()  # returns once serve_forever has returned
                self._thread.join()
            server.server_close()
        self.sampler.stop()

    @property
    def link(self) -> str:
        """The page's URL with the access token."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/status?token={self.token}"

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"on port {self.port}"
        return f"<lazycell Dashboard {state}>"

    # -- content
    def authorised(self, query_token: str | None, cookie_token: str | None) -> bool:
        """Whether either token is the dashboard's; never raises, whatever the input."""
        # compare_digest raises on non-ASCII str: compare bytes ("replace" encodes any str).
        expected = self.token.encode()
        return any(
            candidate is not None
            and secrets.compare_digest(candidate.encode("utf-8", "replace"), expected)
            for candidate in (query_token, cookie_token)
        )

    @property
    def cookie_name(self) -> str:
        # Cookies ignore ports: one name per port keeps two dashboards apart.
        return f"lazycell-dashboard-{self.port}"

    def page(self) -> bytes:
        """The page, with the chart layouts and colours the notebook panels use."""
        if self._page is None:
            from lazycell.diagnostics.figures import (
                ERRED_COLOUR,
                PALETTE,
                resource_layout,
                task_stream_layout,
            )
            from lazycell.diagnostics.workers import DANGER_FRACTION, WARN_FRACTION

            config = {
                "poll_ms": int(POLL_SECONDS * 1000),
                "palette": list(PALETTE),
                "erred_colour": ERRED_COLOUR,
                "warn_fraction": WARN_FRACTION,
                "danger_fraction": DANGER_FRACTION,
                # a worker without a memory limit is drawn against it (workers.bar_limit)
                "machine_memory": total_memory(),
                "layouts": {
                    "resources": resource_layout().to_plotly_json(),
                    "task_stream": task_stream_layout().to_plotly_json(),
                },
            }
            text = importlib.resources.files(__package__).joinpath(PAGE_FILE).read_text("utf-8")
            text = text.replace(CONFIG_PLACEHOLDER, _json_for_script(config))
            self._page_policy = _page_policy(text)
            self._page = text.encode()
        return self._page

    def page_policy(self) -> str:
        """The page's Content-Security-Policy: its own inline script (by hash), same-origin
        scripts (plotly.js) and requests (data.json), inline styles (the page's and
        plotly's), no framing."""
        if self._page_policy is None:
            self.page()
        return self._page_policy

    def plotly_js(self) -> bytes:
        """plotly.js as the plotly package ships it (no CDN: works offline)."""
        if self._plotly_js is None:
            path = importlib.resources.files("plotly").joinpath("package_data", "plotly.min.js")
            try:
                self._plotly_js = path.read_bytes()
            except FileNotFoundError:  # a plotly without package_data: ask it
                from plotly.offline import get_plotlyjs

                self._plotly_js = get_plotlyjs().encode()
        return self._plotly_js

    def snapshot_json(self) -> bytes:
        """:meth:`snapshot` as JSON, rebuilt at most every ``SNAPSHOT_MAX_AGE`` seconds."""
        with self._snapshot_lock:
            now = time.monotonic()
            if self._snapshot is None or now - self._snapshot_at >= SNAPSHOT_MAX_AGE:
                self._snapshot = json.dumps(self.snapshot(), default=str).encode()
                self._snapshot_at = now
            return self._snapshot

    def snapshot(self) -> dict:
        """What ``/data.json`` serves.

        ``{"closed": False, "time": unix time, "scheduler_info": ...,
        "activity": ..., "progress": ..., "resources": {"time": [...],
        "cpu_percent": [...], "memory": [...]}}`` — ``scheduler_info`` and
        ``activity`` as the cluster's methods of those names return them
        (``activity`` counts every task since the cluster started);
        ``progress`` the current run (:class:`RunProgress`); resource times
        are seconds since the cluster started, like the task stream's, never
        negative, memory in bytes (this process and its children). A closed
        cluster gives ``{"closed": True, "time": ...}``.
        """
        cluster = self.cluster
        if cluster.closed or self.closed:
            return {"closed": True, "time": time.time()}
        try:
            info = cluster.scheduler_info()
            activity = cluster.activity()
        except RuntimeError:  # closed between the check and the call
            return {"closed": True, "time": time.time()}
        origin = cluster.scheduler.activity.origin
        samples = [s for s in list(self.sampler.samples) if s.time >= origin]
        return {
            "closed": False,
            "time": time.time(),
            "scheduler_info": info,
            "activity": activity,
            "progress": self.progress.update(activity, info),
            "resources": {
                "time": [s.time - origin for s in samples],
                "cpu_percent": [s.cpu_percent for s in samples],
                "memory": [s.rss for s in samples],
            },
        }


class RunProgress:
    """The progress of the current run: the counts since the cluster was last seen idle.

    The cluster counts every task since it started (``activity``). A run is
    what happens between two looks at an idle cluster (nothing processing or
    waiting): ``baseline`` holds the counts of the look before the run shown,
    and the bars show the difference, so each compute starts from zero. A
    run that starts and ends between two looks is still one run.

    ``update`` returns ``{"groups": {label: counts}, "totals": counts}`` with
    counts ``total``, ``done``, ``erred``, ``running``, ``queued``,
    ``waiting``: only the groups with tasks in the run, by dask's name for
    them (``compute_state.group_label``; a row's ``names`` are the full ones). ``running`` never
    exceeds the threads; a group's share of the running tasks is its share
    of the tasks sent to workers (which of a worker's tasks run is its own
    business), rounded so the groups add up.
    """

    COUNTED = ("total", "done", "erred")

    def __init__(self):
        self.baseline: dict[str, tuple[int, int, int]] = {}  # before the run shown
        self.last_idle: dict[str, tuple[int, int, int]] | None = None
        self.lock = threading.Lock()

    def update(self, activity: dict, info: dict) -> dict:
        counts = {
            name: tuple(group[field] for field in self.COUNTED)
            for name, group in activity["groups"].items()
        }
        totals = activity["totals"]
        idle = totals["processing"] + totals["waiting"] == 0
        with self.lock:
            if self.last_idle is not None and (not idle or counts != self.last_idle):
                # a run began after the last idle look (and may have ended since)
                self.baseline = self.last_idle
            if idle:
                self.last_idle = counts
            baseline = self.baseline
        groups: dict[str, dict] = {}  # by dask's name for the group, as the notebook panel
        for name, group in activity["groups"].items():
            before = baseline.get(name, (0, 0, 0))
            run = {f: group[f] - b for f, b in zip(self.COUNTED, before)}
            if run["total"] or run["done"] or run["erred"] or group["processing"]:
                row = groups.setdefault(
                    group_label(name),
                    {**dict.fromkeys(self.COUNTED, 0), "processing": 0, "waiting": 0, "names": []},
                )
                for field in self.COUNTED:
                    row[field] += run[field]
                row["processing"] += group["processing"]
                row["waiting"] += group["waiting"]
                row["names"].append(name)  # the full names, for the row's tooltip
        slots = cluster_task_slots(info)
        running = _shares({name: g["processing"] for name, g in groups.items()}, slots.running)
        for name, group in groups.items():
            processing = group.pop("processing")
            group["running"] = running[name]
            group["queued"] = processing - running[name]
        run_totals = {
            field: sum(g[field] for g in groups.values())
            for field in ("total", "done", "erred", "running", "queued", "waiting")
        }
        return {"groups": groups, "totals": run_totals}


def _shares(weights: dict[str, int], whole: int) -> dict[str, int]:
    """``whole`` split in proportion to ``weights`` (largest remainders), none above its weight."""
    total = sum(weights.values())
    whole = min(whole, total)
    if not total:
        return dict.fromkeys(weights, 0)
    exact = {name: whole * w / total for name, w in weights.items()}
    shares = {name: int(x) for name, x in exact.items()}
    left = whole - sum(shares.values())
    for name in sorted(exact, key=lambda n: shares[n] - exact[n])[:left]:
        shares[name] += 1
    return shares


def _json_for_script(value) -> str:
    # Inside <script>, "</" would end the element early.
    return json.dumps(value).replace("</", "<\\/")


def _page_policy(page: str) -> str:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in INLINE_SCRIPT.findall(page)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data: blob:; font-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 makes a burst of tabs and their
    # scripts wait a second or more for the accept.
    request_queue_size = 64
    dashboard: Dashboard

    def handle_error(self, request, client_address) -> None:
        # A client that went away or was too slow is no bug; the default prints a
        # traceback, which would land in the notebook's output.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _RequestReader(io.RawIOBase):
    """The connection's incoming bytes, failing with TimeoutError past the handler's
    ``read_deadline``: a socket timeout alone would let a client that sends a byte
    every few seconds (slow loris) hold its thread forever."""

    def __init__(self, connection: socket.socket, handler: _Handler):
        self.connection = connection
        self.handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        deadline = self.handler.read_deadline
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the request was not sent in time")
            self.connection.settimeout(remaining)
        return self.connection.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "lazycell-dashboard"
    sys_version = ""
    read_deadline: float | None = None
    content_security_policy = STRICT_POLICY  # the page's own, for the page

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        self.rfile = io.BufferedReader(_RequestReader(self.connection, self))

    def handle_one_request(self) -> None:
        # The request line and headers must all arrive within the idle timeout.
        self.read_deadline = time.monotonic() + self.server.dashboard.idle_timeout
        self.content_security_policy = STRICT_POLICY
        super().handle_one_request()

    def parse_request(self) -> bool:
        parsed = super().parse_request()  # reads the headers
        self.read_deadline = None
        self.connection.settimeout(SEND_TIMEOUT)
        return parsed

    def end_headers(self) -> None:
        # Here, not in _send, so error pages http.server writes itself get them too.
        self.send_header("Content-Security-Policy", self.content_security_policy)
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        super().end_headers()

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        dashboard = self.server.dashboard
        url = urlsplit(self.path)
        query_token = parse_qs(url.query).get("token", [None])[0]
        cookie_token = self._cookie(dashboard.cookie_name)
        if not dashboard.authorised(query_token, cookie_token):
            self._send(
                HTTPStatus.FORBIDDEN,
                b"403: the lazycell dashboard needs its token: open cluster.dashboard_link\n",
                "text/plain; charset=utf-8",
            )
            return
        if url.path == "/status":
            cookie = f"{dashboard.cookie_name}={dashboard.token}; Path=/; HttpOnly; SameSite=Strict"
            self.content_security_policy = dashboard.page_policy()
            self._send(HTTPStatus.OK, dashboard.page(), "text/html; charset=utf-8", cookie)
        elif url.path == "/data.json":
            self._send(HTTPStatus.OK, dashboard.snapshot_json(), "application/json")
        elif url.path == "/plotly.min.js":
            self._send(
                HTTPStatus.OK,
                dashboard.plotly_js(),
                "text/javascript; charset=utf-8",
                cache="private, max-age=86400",  # the same file for the cluster's life
            )
        elif url.path in ("/", ""):
            self.send_response(HTTPStatus.FOUND)
            self.send_header("Location", f"/status?token={dashboard.token}")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(HTTPStatus.NOT_FOUND, b"404: no such page\n", "text/plain; charset=utf-8")

    def _cookie(self, name: str) -> str | None:
        header = self.headers.get("Cookie")
        if not header:
            return None
        try:
            morsel = SimpleCookie(header).get(name)
        except Exception:  # a malformed header from someone else's site
            return None
        return morsel.value if morsel is not None else None

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        cookie: str | None = None,
        cache: str = "no-store",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        if cookie is not None:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the browser went away
            pass

    def log_message(self, format: str, *args) -> None:
        # Each request would otherwise print to stderr: into the notebook's output.
        pass
