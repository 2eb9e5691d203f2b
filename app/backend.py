"""The dashboard's one door to the lab: `worker.api`, or a stand-in with the same functions that tests install.

Pages call `api().list_runs(...)` and so on; they never import Celery, SQLAlchemy or the store. The store's own
failure (`StoreUnavailable`: a locked or unreachable database) is turned into one clear message by
`app.views.common.guarded`, so that no page ever shows a database traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

_installed: Any = None


class ApiUnavailable(RuntimeError):
    """worker.api could not be imported (a broken install, a missing dependency)."""


def install(stand_in: Any) -> None:
    """Route every page's calls to `stand_in` (an object with worker.api's functions); tests only."""
    global _installed
    _installed = stand_in


def uninstall() -> None:
    install(None)


def api() -> Any:
    if _installed is not None:
        return _installed
    try:
        return importlib.import_module("worker.api")
    except ImportError as error:
        raise ApiUnavailable(f"the worker API (worker.api) could not be imported: {error}") from error


def store_unavailable_error() -> type[BaseException] | tuple[()]:
    """The exception class the API raises when its database is unreachable (an empty tuple if unknown)."""
    module_or_object: ModuleType | Any = _installed if _installed is not None else _import_quietly()
    return getattr(module_or_object, "StoreUnavailable", ())


def _import_quietly() -> ModuleType | None:
    try:
        return importlib.import_module("worker.api")
    except ImportError:
        return None


ACTION_ERRORS = ("ConfigError", "QueueUnavailable", "RunNotFound", "RunStateError")
"""worker.api's errors that answer an action with a reason a researcher can act on (a run that finished in the
meantime, a broker that is down): shown as a message, not as a traceback."""


def action_errors() -> tuple[type[BaseException], ...]:
    source = _installed if _installed is not None else _import_quietly()
    return tuple(error for name in ACTION_ERRORS if isinstance(error := getattr(source, name, None), type))


def is_store_unavailable(error: BaseException) -> bool:
    expected = store_unavailable_error()
    return bool(expected) and isinstance(error, expected)
