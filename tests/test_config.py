"""``lc.config``: where computations run unless told otherwise.

Precedence, strongest first: per-call argument > ``lc.config.set`` >
environment (``LAZYCELL_SCHEDULER``, ``LAZYCELL_NUM_WORKERS``) > TOML file
(``~/.config/lazycell/config.toml`` or ``$LAZYCELL_CONFIG``) > defaults.
Bad values are ``ConfigError`` (a ``ValueError``) naming their source.

Which scheduler ran is observed, not asked: a task records its pid and
whether it ran in the main thread (sync: main thread; threads: another
thread; processes: another pid).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import lazycell as lc
from lazycell import config

ENV_SCHEDULER = "LAZYCELL_SCHEDULER"
ENV_NUM_WORKERS = "LAZYCELL_NUM_WORKERS"
ENV_CONFIG = "LAZYCELL_CONFIG"


@pytest.fixture(autouse=True)
def clean_config(monkeypatch, tmp_path):
    """Empty HOME, no LAZYCELL_* / XDG_CONFIG_HOME variables, no lc.config.set values."""
    for var in (ENV_SCHEDULER, ENV_NUM_WORKERS, ENV_CONFIG, "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    config.reset()
    yield
    config.reset()


@pytest.fixture
def home_config_file(tmp_path):
    """Writes ``$HOME/.config/lazycell/config.toml``; returns its path."""
    path = tmp_path / "home" / ".config" / "lazycell" / "config.toml"

    def write(text: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write


# --------------------------------------------------------------- observing schedulers


def where_am_i():
    return os.getpid(), threading.current_thread() is threading.main_thread()


def observed_scheduler(**compute_kwargs) -> str:
    """Which scheduler really ran a task computed with ``compute_kwargs``."""
    pid, in_main_thread = lc.delayed(where_am_i)().compute(**compute_kwargs)
    if pid != os.getpid():
        return "processes"
    return "sync" if in_main_thread else "threads"


def thread_names_of_concurrent_tasks(parties: int, n_tasks: int, **compute_kwargs) -> set:
    """Names of the threads that ran ``n_tasks`` tasks meeting ``parties`` at a time.

    Every task waits at a barrier of ``parties``: the compute only finishes if
    at least ``parties`` threads run tasks at once.
    """
    barrier = threading.Barrier(parties, timeout=5)

    def meet(_):
        barrier.wait()
        return threading.current_thread().name

    (names,) = lc.compute([lc.delayed(meet)(i) for i in range(n_tasks)], **compute_kwargs)
    return set(names)


# --------------------------------------------------------------- defaults and lc.config.get


def test_default_scheduler_is_threads():
    assert config.get("scheduler") == "threads"
    assert observed_scheduler() == "threads"


def test_default_num_workers_and_pool_are_unset():
    assert config.get("num_workers") is None
    assert config.get("pool") is None


def test_get_unknown_setting_raises_config_error():
    with pytest.raises(config.ConfigError, match="bogus"):
        config.get("bogus")


def test_config_error_is_a_value_error():
    assert issubclass(config.ConfigError, ValueError)


# --------------------------------------------------------------- lc.config.set


def test_set_as_global_setter_changes_scheduler():
    config.set(scheduler="sync")
    assert config.get("scheduler") == "sync"
    assert observed_scheduler() == "sync"


def test_set_as_global_setter_stays_until_reset():
    config.set(scheduler="sync")
    assert observed_scheduler() == "sync"
    assert observed_scheduler() == "sync"
    config.reset()
    assert observed_scheduler() == "threads"


def test_set_as_context_manager_applies_inside_block():
    with config.set(scheduler="sync"):
        assert config.get("scheduler") == "sync"
        assert observed_scheduler() == "sync"


def test_set_as_context_manager_restores_previous_value():
    with config.set(scheduler="sync"):
        pass
    assert config.get("scheduler") == "threads"
    assert observed_scheduler() == "threads"


def test_set_context_manager_restores_global_value_set_before():
    config.set(scheduler="processes")
    with config.set(scheduler="sync"):
        assert observed_scheduler() == "sync"
    assert config.get("scheduler") == "processes"
    assert observed_scheduler() == "processes"


def test_nested_set_restores_each_level():
    with config.set(scheduler="sync", num_workers=2):
        with config.set(scheduler="processes"):
            assert config.get("scheduler") == "processes"
            assert config.get("num_workers") == 2
            with config.set(num_workers=3):
                assert (config.get("scheduler"), config.get("num_workers")) == ("processes", 3)
            assert config.get("num_workers") == 2
        assert (config.get("scheduler"), config.get("num_workers")) == ("sync", 2)
    assert (config.get("scheduler"), config.get("num_workers")) == ("threads", None)


def test_set_context_manager_restores_after_exception():
    with pytest.raises(RuntimeError):
        with config.set(scheduler="sync"):
            raise RuntimeError("boom")
    assert config.get("scheduler") == "threads"


def test_per_call_scheduler_beats_config_set():
    with config.set(scheduler="sync"):
        assert observed_scheduler(scheduler="threads") == "threads"
        assert observed_scheduler(scheduler="processes") == "processes"
    config.set(scheduler="processes")
    assert observed_scheduler(scheduler="sync") == "sync"


def test_per_call_scheduler_beats_config_set_for_lc_get():
    with config.set(scheduler="threads"):
        pid, in_main = lc.get({"w": (where_am_i,)}, "w", scheduler="sync")
    assert (pid, in_main) == (os.getpid(), True)


def test_set_scheduler_applies_to_lc_get():
    with config.set(scheduler="processes"):
        pid, _ = lc.get({"w": (where_am_i,)}, "w")
    assert pid != os.getpid()


def test_set_scheduler_none_never_breaks_compute():
    # None is accepted by validation; it must then mean "no override" (fall back to
    # the next source, here the default), not an unusable scheduler.
    try:
        config.set(scheduler=None)
    except ValueError:
        return  # rejected where it enters: also acceptable
    assert observed_scheduler() == "threads"


def test_reset_forgets_set_values():
    config.set(scheduler="sync", num_workers=2)
    config.reset()
    assert config.get("scheduler") == "threads"
    assert config.get("num_workers") is None


# --------------------------------------------------------------- observable effects


def test_scheduler_sync_runs_tasks_in_main_thread():
    with config.set(scheduler="sync"):
        assert where_am_i() == (os.getpid(), True)  # the test itself is in the main thread
        assert observed_scheduler() == "sync"


def test_scheduler_threads_runs_tasks_in_another_thread():
    with config.set(scheduler="threads"):
        assert observed_scheduler() == "threads"


def test_scheduler_processes_runs_tasks_in_another_process():
    with config.set(scheduler="processes"):
        assert observed_scheduler() == "processes"


def test_set_num_workers_runs_threads_on_exactly_that_many_threads():
    with config.set(scheduler="threads", num_workers=3):
        assert config.get("num_workers") == 3
        names = thread_names_of_concurrent_tasks(parties=3, n_tasks=9)
    assert len(names) == 3


def test_set_pool_makes_threads_scheduler_use_that_pool():
    with ThreadPoolExecutor(3, thread_name_prefix="user-pool") as pool:
        with config.set(scheduler="threads", pool=pool):
            assert config.get("pool") is pool
            names = thread_names_of_concurrent_tasks(parties=2, n_tasks=6)
    assert names and all(name.startswith("user-pool") for name in names), names


def test_set_pool_is_used_by_default_scheduler():
    with ThreadPoolExecutor(2, thread_name_prefix="default-pool") as pool:
        config.set(pool=pool)
        (names,) = lc.compute(
            [lc.delayed(lambda _: threading.current_thread().name)(i) for i in range(4)]
        )
    assert all(name.startswith("default-pool") for name in names), names


def test_per_call_sync_does_not_use_configured_pool():
    with ThreadPoolExecutor(2, thread_name_prefix="unused-pool") as pool:
        with config.set(pool=pool):
            assert observed_scheduler(scheduler="sync") == "sync"


# --------------------------------------------------------------- environment variables


def test_env_scheduler_selects_scheduler(monkeypatch):
    monkeypatch.setenv(ENV_SCHEDULER, "sync")
    assert config.get("scheduler") == "sync"
    assert observed_scheduler() == "sync"


def test_env_scheduler_processes_runs_in_other_process(monkeypatch):
    monkeypatch.setenv(ENV_SCHEDULER, "processes")
    assert observed_scheduler() == "processes"


def test_env_num_workers_sets_thread_count(monkeypatch):
    monkeypatch.setenv(ENV_NUM_WORKERS, "3")
    assert config.get("num_workers") == 3
    names = thread_names_of_concurrent_tasks(parties=3, n_tasks=9, scheduler="threads")
    assert len(names) == 3


def test_set_beats_env(monkeypatch):
    monkeypatch.setenv(ENV_SCHEDULER, "processes")
    monkeypatch.setenv(ENV_NUM_WORKERS, "5")
    with config.set(scheduler="sync", num_workers=2):
        assert (config.get("scheduler"), config.get("num_workers")) == ("sync", 2)
        assert observed_scheduler() == "sync"
    assert (config.get("scheduler"), config.get("num_workers")) == ("processes", 5)


def test_per_call_scheduler_beats_env(monkeypatch):
    monkeypatch.setenv(ENV_SCHEDULER, "processes")
    assert observed_scheduler(scheduler="sync") == "sync"


# --------------------------------------------------------------- config file


def test_file_in_home_config_dir_is_read(home_config_file):
    home_config_file('scheduler = "sync"\nnum_workers = 3\n')
    assert config.get("scheduler") == "sync"
    assert config.get("num_workers") == 3
    assert observed_scheduler() == "sync"


def test_file_in_xdg_config_home_is_read(monkeypatch, tmp_path):
    path = tmp_path / "xdg" / "lazycell" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text('scheduler = "processes"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config.get("scheduler") == "processes"
    assert observed_scheduler() == "processes"


def test_lazycell_config_env_names_the_file(monkeypatch, tmp_path, home_config_file):
    home_config_file('scheduler = "processes"\n')
    path = tmp_path / "elsewhere.toml"
    path.write_text('scheduler = "sync"\n')
    monkeypatch.setenv(ENV_CONFIG, str(path))
    assert config.get("scheduler") == "sync"
    assert observed_scheduler() == "sync"


def test_file_num_workers_sets_thread_count(home_config_file):
    home_config_file("num_workers = 3\n")
    names = thread_names_of_concurrent_tasks(parties=3, n_tasks=9, scheduler="threads")
    assert len(names) == 3


def test_file_change_is_picked_up(home_config_file):
    home_config_file('scheduler = "sync"\n')
    assert config.get("scheduler") == "sync"
    path = home_config_file('scheduler = "processes"\nnum_workers = 2\n')
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert config.get("scheduler") == "processes"


def test_file_beats_default(home_config_file):
    home_config_file('scheduler = "sync"\n')
    assert observed_scheduler() == "sync"


def test_env_beats_file(monkeypatch, home_config_file):
    home_config_file('scheduler = "processes"\nnum_workers = 5\n')
    monkeypatch.setenv(ENV_SCHEDULER, "sync")
    monkeypatch.setenv(ENV_NUM_WORKERS, "2")
    assert (config.get("scheduler"), config.get("num_workers")) == ("sync", 2)
    assert observed_scheduler() == "sync"


def test_file_fills_settings_the_env_leaves_unset(monkeypatch, home_config_file):
    home_config_file('scheduler = "sync"\nnum_workers = 5\n')
    monkeypatch.setenv(ENV_NUM_WORKERS, "2")
    assert (config.get("scheduler"), config.get("num_workers")) == ("sync", 2)


def test_set_beats_file(home_config_file):
    home_config_file('scheduler = "sync"\n')
    with config.set(scheduler="threads"):
        assert observed_scheduler() == "threads"


def test_per_call_beats_every_other_source(monkeypatch, home_config_file):
    home_config_file('scheduler = "processes"\n')
    monkeypatch.setenv(ENV_SCHEDULER, "processes")
    with config.set(scheduler="threads"):
        assert observed_scheduler(scheduler="sync") == "sync"


# --------------------------------------------------------------- bad values


def assert_config_error(excinfo, *fragments):
    assert isinstance(excinfo.value, config.ConfigError)
    assert isinstance(excinfo.value, ValueError)
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_set_unknown_scheduler_raises_listing_valid_names():
    with pytest.raises(ValueError) as info:
        config.set(scheduler="bogus")
    assert_config_error(info, "bogus", "lc.config.set", "sync", "threads", "processes")


def test_failed_set_changes_nothing():
    with pytest.raises(ValueError):
        config.set(scheduler="sync", num_workers=0)
    assert config.get("scheduler") == "threads"
    assert config.get("num_workers") is None


@pytest.mark.parametrize("bad", [0, -1, 2.5, "many", True])
def test_set_bad_num_workers_raises(bad):
    with pytest.raises(ValueError) as info:
        config.set(num_workers=bad)
    assert_config_error(info, "num_workers", "lc.config.set")


def test_set_pool_that_is_not_an_executor_raises():
    with pytest.raises(ValueError) as info:
        config.set(pool=4)
    assert_config_error(info, "pool", "lc.config.set")


def test_set_unknown_setting_raises():
    with pytest.raises(ValueError) as info:
        config.set(schedular="sync")
    assert_config_error(info, "schedular")


def test_env_unknown_scheduler_raises_naming_env_var(monkeypatch):
    monkeypatch.setenv(ENV_SCHEDULER, "bogus")
    with pytest.raises(ValueError) as info:
        config.get("scheduler")
    assert_config_error(info, "bogus", ENV_SCHEDULER, "sync", "threads", "processes")


def test_compute_with_bad_env_scheduler_raises(monkeypatch):
    monkeypatch.setenv(ENV_SCHEDULER, "bogus")
    with pytest.raises(ValueError) as info:
        lc.delayed(abs)(-1).compute()
    assert_config_error(info, ENV_SCHEDULER)


@pytest.mark.parametrize("bad", ["0", "-2", "abc", "2.5"])
def test_env_bad_num_workers_raises_naming_env_var(monkeypatch, bad):
    monkeypatch.setenv(ENV_NUM_WORKERS, bad)
    with pytest.raises(ValueError) as info:
        config.get("num_workers")
    assert_config_error(info, ENV_NUM_WORKERS, bad)


def test_compute_with_bad_env_num_workers_raises(monkeypatch):
    monkeypatch.setenv(ENV_NUM_WORKERS, "0")
    with pytest.raises(ValueError) as info:
        lc.delayed(abs)(-1).compute(scheduler="threads")
    assert_config_error(info, ENV_NUM_WORKERS)


def test_file_unknown_scheduler_raises_naming_file(home_config_file):
    path = home_config_file('scheduler = "bogus"\n')
    with pytest.raises(ValueError) as info:
        config.get("scheduler")
    assert_config_error(info, "bogus", str(path), "sync", "threads", "processes")


@pytest.mark.parametrize("bad", ["0", "-1", "2.5", "true"])
def test_file_bad_num_workers_raises_naming_file(home_config_file, bad):
    path = home_config_file(f"num_workers = {bad}\n")
    with pytest.raises(ValueError) as info:
        config.get("num_workers")
    assert_config_error(info, "num_workers", str(path))


def test_file_invalid_toml_raises_naming_file(home_config_file):
    path = home_config_file("scheduler = \n")
    with pytest.raises(ValueError) as info:
        config.get("scheduler")
    assert_config_error(info, str(path), "TOML")


def test_file_unknown_key_raises_naming_key_and_file(home_config_file):
    path = home_config_file('scheduler = "sync"\nworkers = 4\n')
    with pytest.raises(ValueError) as info:
        config.get("scheduler")
    assert_config_error(info, "workers", str(path))


def test_unreadable_file_raises_naming_file(tmp_path):
    # A directory where the file should be cannot be read, even by root.
    path = tmp_path / "home" / ".config" / "lazycell" / "config.toml"
    path.mkdir(parents=True)
    with pytest.raises(ValueError) as info:
        config.get("scheduler")
    assert_config_error(info, str(path))


def test_missing_lazycell_config_file_raises_naming_variable_and_path(monkeypatch, tmp_path):
    path = tmp_path / "nowhere" / "config.toml"
    monkeypatch.setenv(ENV_CONFIG, str(path))
    with pytest.raises(ValueError) as info:
        config.get("scheduler")
    assert_config_error(info, ENV_CONFIG, str(path))


def test_compute_with_invalid_file_raises(home_config_file):
    path = home_config_file("scheduler = [\n")
    with pytest.raises(ValueError) as info:
        lc.delayed(abs)(-1).compute()
    assert_config_error(info, str(path))


def test_missing_default_file_is_not_an_error():
    assert config.get("scheduler") == "threads"
    assert lc.delayed(abs)(-1).compute() == 1


@pytest.mark.parametrize("name", ["panel.keep_live", "advisor"])
def test_switches_take_true_false_or_their_words_and_name_a_bad_value(name, monkeypatch):
    monkeypatch.setenv(config.ENV_VARS[name], "no")
    assert config.get(name) is False
    with lc.config.set({name: "Yes"}):
        assert config.get(name) is True
    with pytest.raises(config.ConfigError) as error:
        lc.config.set({name: "maybe"})
    assert str(error.value).startswith(f"{name} 'maybe' from lc.config.set(")
    assert str(error.value).endswith("must be true or false (or 1 / 0)")
