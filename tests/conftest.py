import pytest

import lazycell

SCHEDULERS = ["sync", "threads", "processes"]


@pytest.fixture(params=SCHEDULERS)
def scheduler(request):
    """Each local scheduler by name."""
    return request.param


@pytest.fixture(autouse=True)
def _fresh_config():
    lazycell.config.reset()
    yield
    lazycell.config.reset()
