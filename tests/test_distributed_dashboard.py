"""The cluster's live dashboard: token-protected routes, its data, the page in Chromium, close."""

import json
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest
from browser_helpers import chromium_page, screenshot

import lazycell as lc

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


def http_get(url: str) -> tuple[int, bytes, str]:
    """(status, body, content type): error statuses returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers["Content-Type"]


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


def test_an_unknown_path_with_the_token_is_404(client):
    base, token = split_link(client.dashboard_link)
    assert http_get(f"{base}/nothing-here?token={token}")[0] == 404


def megabytes(n):
    return b"x" * (n * 1_000_000)


@pytest.mark.browser
@pytest.mark.slow
def test_page_in_chromium_shows_the_finished_totals_and_draws_the_charts(client):
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
    assert progress["leaf"] == f"{N_LEAVES} / {N_LEAVES}"
    assert progress["total"] == "1 / 1"
    done = sum(g["done"] for g in groups.values())
    assert progress["all tasks"] == f"{done} / {done}"
    assert sorted(memory) == ["worker-0", "worker-1"]
    held_text = " ".join(memory.values())  # both results on one worker, or one on each
    assert "results 121.0 MB" in held_text or (
        "results 60.0 MB" in held_text and "results 61.0 MB" in held_text
    )
    assert status.startswith("2 workers · 2 threads")
    del held


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
