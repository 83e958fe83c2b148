"""Where computations run unless told otherwise: ``lc.config``.

Precedence, strongest first:

1. the per-call argument: ``x.compute(scheduler="sync")``;
2. ``lc.config.set(...)`` — globally, or for a ``with`` block;
3. environment variables ``LAZYCELL_SCHEDULER``, ``LAZYCELL_NUM_WORKERS``;
4. the TOML file ``~/.config/lazycell/config.toml`` (or the path in
   ``LAZYCELL_CONFIG``), with top-level keys ``scheduler`` and ``num_workers``
   and a ``[panel]`` table (``keep_live = true``: ``panel.keep_live``);
5. defaults: the threads scheduler with one thread per core.

Every value is checked where it enters; a bad one is a :class:`ConfigError`
(a ``ValueError``) naming where it came from.

>>> import lazycell as lc
>>> with lc.config.set(scheduler="sync"):
...     lc.config.get("scheduler")
'sync'
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from lazycell.schedulers.registry import canonical_scheduler_name, scheduler_names_text

__all__ = ["ConfigError", "get", "set", "config_file_path", "SETTINGS"]

SETTINGS = ("scheduler", "num_workers", "pool", "panel.keep_live", "advisor")
DEFAULTS: dict[str, Any] = {
    "scheduler": "threads",
    "num_workers": None,
    "pool": None,
    # a finished cell's panel: the live widget (True) or a static summary (False)
    "panel.keep_live": False,
    # the scheduler advisor's one-line hint after a compute (diagnostics/advisor.py)
    "advisor": True,
}
ENV_VARS = {
    "scheduler": "LAZYCELL_SCHEDULER",
    "num_workers": "LAZYCELL_NUM_WORKERS",
    "panel.keep_live": "LAZYCELL_PANEL_KEEP_LIVE",
    "advisor": "LAZYCELL_ADVISOR",
}
FILE_KEYS = ("scheduler", "num_workers", "panel.keep_live", "advisor")  # [panel] keep_live = true
# How a switch may be spelt in the environment or the config file.
SWITCH_WORDS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}

_set_values: dict[str, Any] = {}
_lock = threading.Lock()
_file_cache: dict = {}


class ConfigError(ValueError):
    """A configuration value is wrong; the message says which, where from, and what fits."""


def config_file_path() -> Path:
    """The config file in use: ``$LAZYCELL_CONFIG`` or ``~/.config/lazycell/config.toml``."""
    explicit = os.environ.get("LAZYCELL_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "lazycell" / "config.toml"


def _read_config_file() -> dict:
    path = config_file_path()
    explicit = bool(os.environ.get("LAZYCELL_CONFIG"))
    try:
        stat = path.stat()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(
                f"config file {path} (from LAZYCELL_CONFIG) does not exist; "
                "create it or unset LAZYCELL_CONFIG"
            ) from None
        return {}
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    stamp = (str(path), stat.st_mtime_ns, stat.st_size)
    if _file_cache.get("stamp") == stamp:
        return _file_cache["values"]
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    # A table ([panel]) holds dotted settings: {"panel": {"keep_live": 1}} -> "panel.keep_live".
    raw = {
        f"{name}.{key}" if isinstance(value, dict) else name: inner
        for name, value in raw.items()
        for key, inner in (value.items() if isinstance(value, dict) else [(None, value)])
    }
    unknown = sorted(k for k in raw if k not in FILE_KEYS)
    if unknown:
        raise ConfigError(
            f"config file {path} has unknown key(s) {', '.join(unknown)}; "
            f"known keys are {', '.join(FILE_KEYS)}"
        )
    values = {name: validate(name, value, f"config file {path}") for name, value in raw.items()}
    _file_cache.update(stamp=stamp, values=values)
    return values


def validate(name: str, value: Any, source: str) -> Any:
    """Check one setting; returns it normalised or raises ConfigError naming ``source``."""
    if name == "scheduler":
        if value is None:
            return None
        if isinstance(value, str):
            try:
                return canonical_scheduler_name(value)
            except ValueError:
                raise ConfigError(
                    f"scheduler {value!r} from {source} is not known; "
                    f"valid names: {scheduler_names_text()}"
                ) from None
        if isinstance(value, Executor) or callable(value) or hasattr(value, "run"):
            return value
        raise ConfigError(
            f"scheduler from {source} must be a name ({scheduler_names_text()}), "
            f"an Executor or a get-function, not {type(value).__name__}"
        )
    if name == "num_workers":
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ConfigError(
                    f"num_workers {value!r} from {source} is not a whole number; "
                    "give a positive integer such as 4"
                ) from None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"num_workers {value!r} from {source} must be a positive integer such as 4"
            )
        return value
    if name == "pool":
        if value is None or isinstance(value, Executor):
            return value
        raise ConfigError(
            f"pool from {source} must be a concurrent.futures.Executor "
            f"(e.g. ThreadPoolExecutor(4)), not {type(value).__name__}"
        )
    if name in ("panel.keep_live", "advisor"):  # switches
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in SWITCH_WORDS:
            return SWITCH_WORDS[value.strip().lower()]
        raise ConfigError(f"{name} {value!r} from {source} must be true or false (or 1 / 0)")
    raise ConfigError(f"unknown setting {name!r}; known settings are {', '.join(SETTINGS)}")


def get(name: str, default: Any = None) -> Any:
    """The value of setting ``name`` after applying the precedence above."""
    if name not in SETTINGS:
        raise ConfigError(f"unknown setting {name!r}; known settings are {', '.join(SETTINGS)}")
    with _lock:
        value = _set_values.get(name)
    if value is not None:  # set(name=None) means "no override": fall through
        return value
    env_var = ENV_VARS.get(name)
    if env_var and os.environ.get(env_var, "").strip():
        return validate(name, os.environ[env_var], f"environment variable {env_var}")
    file_values = _read_config_file()
    if name in file_values:
        return file_values[name]
    value = DEFAULTS[name]
    return default if value is None else value


class set:  # noqa: N801 - reads as lc.config.set(...), like dask.config.set
    """Change settings for the session, or for a ``with`` block.

    >>> lc.config.set(scheduler="processes", num_workers=2)   # from now on
    >>> with lc.config.set(scheduler="sync"):                 # only inside
    ...     total.compute()
    >>> lc.config.set({"panel.keep_live": True})              # dotted names in a dict
    """

    _MISSING = object()

    def __init__(self, dotted: dict[str, Any] | None = None, **settings: Any):
        settings = {**(dotted or {}), **settings}
        checked = {
            name: validate(name, value, f"lc.config.set({name}=...)")
            for name, value in settings.items()
        }
        with _lock:
            self._previous = {name: _set_values.get(name, self._MISSING) for name in checked}
            _set_values.update(checked)

    def __enter__(self) -> set:
        return self

    def __exit__(self, *exc) -> None:
        with _lock:
            for name, value in self._previous.items():
                if value is self._MISSING:
                    _set_values.pop(name, None)
                else:
                    _set_values[name] = value


def reset() -> None:
    """Forget every ``lc.config.set`` value (environment and file still apply)."""
    with _lock:
        _set_values.clear()
