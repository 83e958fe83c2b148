"""The cluster's live dashboard: token-protected routes, its data, the page in Chromium, close."""

import base64
import hashlib
import json
import re
import select
import socket
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest
from browser_helpers import chromium_page, screenshot

import lazycell as lc
from lazycell.distributed.dashboard import Dashboard

pytestmark = pytest.mark.timeout(180)

N_LEAVES = 20  # the graph: N_LEAVES "leaf" tasks and one "total"


def leaf(i):
    return i + 1


@pytest.fixture(scope="module")
def client():
    with lc.Client(n_workers=2, threads_per_worker=1, memory_limit="1GB") as c:
        total = lc.delayed(sum, name="total")(
            [lc.delayed(leaf, name="leaf")(i) for i in range(N_LEAVES)]
        )
        assert lc.compute(total)[0] == sum(range(1, N_LEAVES + 1))
        yield c


def split_link(link: str) -> tuple[str, str]:
    """(base URL, token) of a dashboard link."""
    url = urlsplit(link)
    return f"{url.scheme}://{url.netloc}", parse_qs(url.query)["token"][0]


def http_response(url: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
    """(status, body, headers): error statuses returned, not raised."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def http_get(url: str) -> tuple[int, bytes, str]:
    """(status, body, content type): error statuses returned, not raised."""
    status, body, headers = http_response(url)
    return status, body, headers["Content-Type"]


def data(client) -> dict:
    base, token = split_link(client.dashboard_link)
    status, body, content_type = http_get(f"{base}/data.json?token={token}")
    assert status == 200 and content_type == "application/json"
    return json.loads(body)


def test_the_link_is_on_loopback_with_a_token(client):
    url = urlsplit(client.dashboard_link)
    assert url.hostname == "127.0.0.1" and url.path == "/status"
    assert len(parse_qs(url.query)["token"][0]) >= 32


@pytest.mark.parametrize("path", ["/status", "/data.json", "/plotly.min.js"])
def test_every_route_answers_200_with_the_token(client, path):
    base, token = split_link(client.dashboard_link)
    status, body, _ = http_get(f"{base}{path}?token={token}")
    assert status == 200 and body


@pytest.mark.parametrize("path", ["/status", "/data.json", "/plotly.min.js"])
@pytest.mark.parametrize("query", ["", "?token=wrong", "?token="])
def test_every_route_answers_403_without_the_right_token(client, path, query):
    base, _ = split_link(client.dashboard_link)
    status, body, _ = http_get(f"{base}{path}{query}")
    assert status == 403
    assert b"lc.Client" not in body and b"worker" not in body  # no data leaks


@pytest.mark.parametrize(
    "token",
    ["%C3%A9", "%FF%FE", "%F0%9F%98%80", "%00", "%ED%A0%80", "x" * 5000, "%C3%A9" * 2000],
    ids=["e-acute", "invalid-utf8", "emoji", "nul", "surrogate", "5000-ascii", "2000-e-acute"],
)
def test_an_odd_token_is_a_plain_403_and_prints_nothing(client, capfd, token):
    base, _ = split_link(client.dashboard_link)
    status, body, _ = http_get(f"{base}/data.json?token={token}")
    assert status == 403 and body.startswith(b"403: the lazycell dashboard needs its token")
    assert capfd.readouterr().err == ""


def test_an_odd_cookie_is_a_plain_403_and_prints_nothing(client, capfd):
    base, _ = split_link(client.dashboard_link)
    # A quoted cookie value may spell any character in octal: this one is "éÿ".
    cookie = f'{client.cluster.dashboard.cookie_name}="\\351\\377"'
    status, _, _ = http_response(f"{base}/data.json", headers={"Cookie": cookie})
    assert status == 403
    assert capfd.readouterr().err == ""


SECURITY_HEADERS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"}


@pytest.mark.parametrize(
    "path, right_token",
    [
        ("/status", True),
        ("/data.json", True),
        ("/plotly.min.js", True),
        ("/nothing-here", True),
        ("/data.json", False),
        ("/status", False),
    ],
)
def test_every_response_carries_the_security_headers(client, path, right_token):
    base, token = split_link(client.dashboard_link)
    status, _, headers = http_response(f"{base}{path}?token={token if right_token else 'wrong'}")
    assert status == (403 if not right_token else 404 if path == "/nothing-here" else 200)
    assert {name: headers[name] for name in SECURITY_HEADERS} == SECURITY_HEADERS
    policy = csp_directives(headers["Content-Security-Policy"])
    assert policy["frame-ancestors"] == "'none'" and policy["default-src"] == "'none'"


def test_error_pages_written_by_http_server_carry_the_security_headers(client):
    port = urlsplit(client.dashboard_link).port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(b"BREW /status HTTP/1.0\r\n\r\n")
        reply = read_until_closed(connection)
    head = reply.split(b"\r\n\r\n")[0].decode("latin-1")
    assert head.startswith("HTTP/1.0 501")
    assert "X-Frame-Options: DENY" in head and "X-Content-Type-Options: nosniff" in head
    assert "Content-Security-Policy: default-src 'none'" in head


def test_the_page_may_run_only_its_own_inline_script_and_same_origin_scripts(client):
    base, token = split_link(client.dashboard_link)
    _, page, headers = http_response(f"{base}/status?token={token}")
    policy = csp_directives(headers["Content-Security-Policy"])
    (script,) = re.findall(rb"<script>(.*?)</script>", page, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(script).digest()).decode()
    assert policy["script-src"].split() == ["'self'", f"'sha256-{digest}'"]
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"


def csp_directives(policy: str) -> dict[str, str]:
    pairs = (directive.strip().partition(" ") for directive in policy.split(";"))
    return {name: value for name, _, value in pairs}


def read_until_closed(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(65536):  # the socket's timeout bounds each wait
        chunks.append(chunk)
    return b"".join(chunks)


def test_the_page_sets_a_cookie_that_authorises_later_requests(client):
    base, token = split_link(client.dashboard_link)
    with urllib.request.urlopen(f"{base}/status?token={token}", timeout=30) as response:
        cookie = response.headers["Set-Cookie"].split(";")[0]
    request = urllib.request.Request(f"{base}/data.json", headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read())["closed"] is False
    wrong = urllib.request.Request(
        f"{base}/data.json", headers={"Cookie": cookie.split("=")[0] + "=wrong"}
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(wrong, timeout=30)
    assert error.value.code == 403


def test_data_reports_the_workers(client):
    info = data(client)["scheduler_info"]
    assert sorted(info["workers"]) == ["worker-0", "worker-1"]
    assert info["totals"]["workers"] == 2 and info["totals"]["threads"] == 2
    for worker in info["workers"].values():
        assert worker["memory_limit"] == 1_000_000_000
        for field in ("memory", "managed_bytes", "spilled_bytes", "unmanaged_bytes", "cpu"):
            assert worker[field] >= 0


def test_data_counts_every_task_of_the_graph_by_group(client):
    activity = data(client)["activity"]
    groups = activity["groups"]
    assert (groups["leaf"]["total"], groups["leaf"]["done"]) == (N_LEAVES, N_LEAVES)
    assert (groups["total"]["total"], groups["total"]["done"]) == (1, 1)
    assert activity["totals"]["total"] == sum(g["total"] for g in groups.values())
    assert activity["totals"]["erred"] == 0


def test_data_has_a_task_stream_bar_per_task_on_the_cluster_workers(client):
    stream = data(client)["activity"]["task_stream"]
    assert len([bar for bar in stream if bar["group"] == "leaf"]) == N_LEAVES
    assert len([bar for bar in stream if bar["group"] == "total"]) == 1
    assert {bar["worker"] for bar in stream} <= {"worker-0", "worker-1"}
    assert all(0 <= bar["start"] <= bar["stop"] for bar in stream)


def square(x):
    return x * x


def test_data_counts_tasks_from_map_and_gather_too(client):
    before = data(client)["activity"]["totals"]["total"]
    futures = client.map(square, range(10))
    assert client.gather(futures) == [x * x for x in range(10)]
    activity = data_after_snapshot_expiry(client)["activity"]
    assert activity["totals"]["total"] == before + 10
    assert (activity["groups"]["square"]["total"], activity["groups"]["square"]["done"]) == (10, 10)


def data_after_snapshot_expiry(client, deadline_seconds=10) -> dict:
    """data.json is rebuilt at most twice a second: poll until it has changed."""
    first = data(client)
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        latest = data(client)
        if latest["time"] != first["time"]:
            return latest
        time.sleep(0.1)
    raise AssertionError("data.json was never rebuilt")


def test_resource_timeline_grows_while_the_dashboard_runs(client):
    first = len(data(client)["resources"]["time"])
    deadline = time.monotonic() + 20
    while True:
        resources = data(client)["resources"]
        if len(resources["time"]) > first:
            break
        assert time.monotonic() < deadline, "no new resource sample"
        time.sleep(0.2)
    assert resources["time"] == sorted(resources["time"])
    assert len(resources["cpu_percent"]) == len(resources["memory"]) == len(resources["time"])
    assert resources["memory"][-1] > 0


def test_plotly_js_is_served_from_the_plotly_package(client):
    import importlib.resources

    base, token = split_link(client.dashboard_link)
    status, body, content_type = http_get(f"{base}/plotly.min.js?token={token}")
    shipped = importlib.resources.files("plotly").joinpath("package_data", "plotly.min.js")
    assert status == 200 and "javascript" in content_type
    assert body == shipped.read_bytes()


# A short idle timeout, so the tests below wait about a second, not the default's five.
SHORT_IDLE_TIMEOUT = 1.0


@pytest.fixture
def quick_dashboard(client):
    """A second dashboard on the module's cluster, dropping idle connections quickly."""
    dashboard = Dashboard(client.cluster, idle_timeout=SHORT_IDLE_TIMEOUT)
    dashboard.start()
    yield dashboard
    dashboard.close()


def connect(dashboard) -> socket.socket:
    # The client-side timeout bounds every wait: a server that never closes fails the test.
    return socket.create_connection(("127.0.0.1", dashboard.port), timeout=SHORT_IDLE_TIMEOUT + 10)


def test_an_idle_connection_is_closed_after_the_idle_timeout(quick_dashboard):
    with connect(quick_dashboard) as idle:
        started = time.monotonic()
        assert idle.recv(1) == b""  # closed by the server
        waited = time.monotonic() - started
    assert SHORT_IDLE_TIMEOUT * 0.8 <= waited < SHORT_IDLE_TIMEOUT + 5


def test_a_client_sending_its_request_a_byte_at_a_time_is_dropped(quick_dashboard):
    with connect(quick_dashboard) as slow:
        slow.sendall(b"GET /data.json HTTP/1.0\r\n")
        started = time.monotonic()
        dropped = False
        while not dropped and time.monotonic() - started < SHORT_IDLE_TIMEOUT + 5:
            try:
                slow.sendall(b"X")  # a header line that never ends, each byte well in time
                readable, _, _ = select.select([slow], [], [], SHORT_IDLE_TIMEOUT / 5)
                dropped = bool(readable) and slow.recv(1) == b""
            except (BrokenPipeError, ConnectionResetError):
                dropped = True
    assert dropped, "a slow-loris client kept its connection"


def test_idle_connections_do_not_pin_threads(quick_dashboard):
    baseline = threading.active_count()
    idle = []
    try:
        for _ in range(20):  # one at a time: a burst would overflow the accept backlog
            idle.append(connect(quick_dashboard))
            wait_for(lambda: threading.active_count() >= baseline + len(idle), "a thread each")
        for connection in idle:
            assert connection.recv(1) == b""  # closed by the server
        wait_for(lambda: threading.active_count() <= baseline + 2, "the threads to end")
    finally:
        for connection in idle:
            connection.close()


def wait_for(condition, what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.01)


def test_a_normal_request_still_answers_on_a_dashboard_with_a_short_idle_timeout(quick_dashboard):
    status, body, _ = http_get(
        f"http://127.0.0.1:{quick_dashboard.port}/data.json?token={quick_dashboard.token}"
    )
    assert status == 200 and json.loads(body)["closed"] is False


def test_an_unknown_path_with_the_token_is_404(client):
    base, token = split_link(client.dashboard_link)
    assert http_get(f"{base}/nothing-here?token={token}")[0] == 404


def megabytes(n):
    return b"x" * (n * 1_000_000)


@pytest.mark.browser
@pytest.mark.slow
def test_page_in_chromium_shows_the_finished_totals_and_draws_the_charts(client):
    data_after_snapshot_expiry(client)  # a fresh look at the idle cluster: the page's
    # progress counts the run after it
    held = client.map(megabytes, [60, 61], pure=False)  # results that stay on the workers
    client.gather(held)
    with chromium_page() as page:
        page.goto(client.dashboard_link)
        page.wait_for_function(
            "() => /results (60|61|121)\\.0 MB/.test(document.getElementById('memory')?.innerText)",
            timeout=60_000,
        )
        page.wait_for_selector("#resources-chart .main-svg", timeout=60_000)
        # a bar of a task that took microseconds is drawn, but too thin to be "visible"
        page.wait_for_selector("#task-stream-chart .bars .point", state="attached")
        n_bars = len(page.query_selector_all("#task-stream-chart .bars .point"))
        progress = {
            row.query_selector(".name").inner_text(): row.query_selector(".text").inner_text()
            for row in page.query_selector_all("#progress .row")
        }
        memory = {
            row.query_selector(".name").inner_text(): row.query_selector(".text").inner_text()
            for row in page.query_selector_all("#memory .lazycell-memory-bar")
        }
        status = page.inner_text("#status")
        screenshot(page, "dashboard.png")
    activity = data(client)["activity"]
    groups = activity["groups"]
    assert n_bars == len(activity["task_stream"])  # one bar per task the cluster ran
    # the bars count the last run (not every task since the cluster started)
    assert progress == {"all tasks": "2 / 2", "megabytes": "2 / 2"}
    assert groups["leaf"]["done"] == N_LEAVES  # the cluster's own counts keep everything
    assert sorted(memory) == ["worker-0", "worker-1"]
    held_text = " ".join(memory.values())  # both results on one worker, or one on each
    assert "results 121.0 MB" in held_text or (
        "results 60.0 MB" in held_text and "results 61.0 MB" in held_text
    )
    assert status.startswith("2 workers · 2 threads")
    del held


@pytest.mark.browser
@pytest.mark.slow
def test_page_runs_under_its_content_security_policy_without_a_violation(client):
    with chromium_page() as page:
        messages = []
        page.on("console", lambda message: messages.append(message.text))
        page.goto(client.dashboard_link)
        page.wait_for_selector("#resources-chart .main-svg", timeout=60_000)
        page.wait_for_function(
            "() => document.getElementById('status').innerText.includes('workers')",
            timeout=60_000,
        )
    violations = [text for text in messages if "Content Security Policy" in text]
    assert violations == []


@pytest.mark.browser
@pytest.mark.slow
def test_page_says_so_when_the_cluster_closes():
    with lc.Client(n_workers=1, threads_per_worker=1, memory_limit="1GB") as client:
        with chromium_page() as page:
            page.goto(client.dashboard_link)
            page.wait_for_selector("#resources-chart .main-svg", timeout=60_000)
            assert page.is_hidden("#banner")
            client.close()
            page.wait_for_selector("#banner", state="visible", timeout=60_000)
            banner = page.inner_text("#banner")
    assert "closed" in banner


def test_closing_the_cluster_frees_the_port_and_says_it_is_closed():
    with lc.Client(n_workers=1, threads_per_worker=1, memory_limit="1GB") as client:
        base, token = split_link(client.dashboard_link)
        port = urlsplit(base).port
        assert http_get(f"{base}/data.json?token={token}")[0] == 200
        dashboard = client.cluster.dashboard
        client.close()
        assert dashboard.snapshot()["closed"] is True
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{base}/data.json?token={token}", timeout=5)
    with socket.socket() as probe:  # a new server may listen on it (as http.server binds)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()
    dashboard.close()  # a second close is harmless


def test_dashboard_address_none_turns_it_off():
    with lc.Client(
        n_workers=1, threads_per_worker=1, memory_limit="1GB", dashboard_address=None
    ) as client:
        assert client.dashboard_link is None
