"""lc.performance_report: one self-contained HTML file with the compute's data."""

import json
import re

import pytest

import lazycell as lc


def inc(x):
    return x + 1


def fail(x):
    raise ZeroDivisionError("boom")


def embedded_data(path) -> dict:
    text = path.read_text()
    match = re.search(
        r'<script type="application/json" id="lazycell-data">(.*?)</script>', text, re.S
    )
    return json.loads(match.group(1).replace("<\\/", "</"))


@pytest.fixture
def report_of_a_tree(tmp_path):
    path = tmp_path / "report.html"
    leaves = [lc.delayed(inc, name="leaf")(i) for i in range(30)]
    with lc.performance_report(path):
        lc.delayed(sum, name="total")(leaves).compute(scheduler="threads", num_workers=2)
    return path


def test_report_holds_the_task_data(report_of_a_tree):
    data = embedded_data(report_of_a_tree)
    (compute,) = data["computes"]
    assert compute["n_tasks"] == 31 and compute["done"] == 31
    assert compute["scheduler"] == "threads" and compute["n_workers"] == 2
    assert {k: v["total"] for k, v in compute["groups"].items()} == {"leaf": 30, "total": 1}
    assert len(compute["task_stream"]) == 31
    assert {bar["group"] for bar in compute["task_stream"]} == {"leaf", "total"}
    assert sum(compute["tasks_per_worker"].values()) == 31
    assert data["resources"] and data["resources"][0]["rss"] > 0


def test_report_is_self_contained_with_plotly_embedded(report_of_a_tree):
    text = report_of_a_tree.read_text()
    assert "<script src=" not in text  # nothing to fetch: works offline
    assert "Plotly.newPlot" in text and len(text) > 1_000_000  # plotly.js itself is inline
    assert text.count('class="plotly-graph-div"') == 3  # task stream, progress, resources


def test_report_has_a_table_of_time_and_count_per_function(report_of_a_tree):
    text = report_of_a_tree.read_text()
    table = text[text.index("Time and count per function") :]
    assert re.search(r"<td>leaf</td><td>30</td><td>30</td><td>0</td>", table)
    assert re.search(r"<td>total</td><td>1</td><td>1</td><td>0</td>", table)


def test_report_names_the_scheduler_and_its_settings(report_of_a_tree):
    text = report_of_a_tree.read_text()
    assert "<td>scheduler</td><td>threads</td>" in text
    assert "<td>workers</td><td>2</td>" in text


def test_report_is_written_when_the_block_fails(tmp_path):
    path = tmp_path / "failed.html"
    with pytest.raises(ZeroDivisionError):
        with lc.performance_report(path):
            lc.delayed(fail, name="divide")(1).compute(scheduler="sync")
    (compute,) = embedded_data(path)["computes"]
    assert compute["status"] == "error"
    assert compute["groups"]["divide"]["erred"] == 1
    assert compute["errors"] == ["divide: ZeroDivisionError: boom"]
