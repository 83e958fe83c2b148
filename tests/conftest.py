import os

import pytest
from browser_helpers import CHROMIUM_ENV, find_chromium

import lazycell

SCHEDULERS = ["sync", "threads", "processes"]
# Set by CI: there a missing Chromium must fail the browser tests, not skip them.
REQUIRE_CHROMIUM_ENV = "LAZYCELL_REQUIRE_CHROMIUM"


@pytest.fixture(params=SCHEDULERS)
def scheduler(request):
    """Each local scheduler by name."""
    return request.param


@pytest.fixture(autouse=True)
def _fresh_config():
    lazycell.config.reset()
    yield
    lazycell.config.reset()


def why_no_chromium() -> str:
    """The skip reason: short, since the summary line says how to fix it."""
    if CHROMIUM_ENV in os.environ:
        return f"no chromium at ${CHROMIUM_ENV}={os.environ[CHROMIUM_ENV]}"
    return "no chromium on PATH"


def pytest_collection_modifyitems(config, items):
    """Skip the browser tests, saying why once, when there is no Chromium to drive.

    A developer without Chromium still gets a green run of everything else;
    CI (which installs Chromium) sets $LAZYCELL_REQUIRE_CHROMIUM so a lost
    browser shows up as failures instead of quiet skips.
    """
    browser_tests = [item for item in items if item.get_closest_marker("browser")]
    if not browser_tests or find_chromium() is not None or os.environ.get(REQUIRE_CHROMIUM_ENV):
        return
    skip = pytest.mark.skip(reason=why_no_chromium())
    for item in browser_tests:
        item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    reports = terminalreporter.stats.get("skipped", [])
    skipped = [r for r in reports if "browser" in getattr(r, "keywords", {})]
    if skipped:
        line = (
            f"{len(skipped)} browser tests skipped: {why_no_chromium()}; install Debian's "
            "chromium (apt-get install chromium; `make test` does it as root) to run them"
        )
        terminalreporter.write_sep("!", line, yellow=True, bold=True)
