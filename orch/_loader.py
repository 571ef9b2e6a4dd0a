"""Load a pipeline object from a Python file: ``path/to/file.py[:NAME]``.

NAME (default ``pipeline``) may be a built :class:`~orch._pipeline.Pipeline`, a
:class:`~orch.PipelineBuilder` (built here), or a function of no arguments returning
either. Errors in the user's file become a :class:`~orch.errors.PipelineLoadError` naming the
file, the line and the fix, never a traceback from inside the loader. While a file's top level
runs, :func:`refuse_run_at_import` (called by the runtime) turns a run the file starts into
an error: ``orch run FILE`` would otherwise run the pipeline twice.
"""

from __future__ import annotations

import contextvars
import hashlib
import importlib.util
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from orch._builder import PipelineBuilder
from orch._pipeline import Pipeline
from orch.errors import PipelineLoadError, PipelineValidationError

__all__ = [
    "import_file",
    "load_pipeline",
    "load_services",
    "refuse_run_at_import",
    "services_mapping",
    "split_target",
]

# The file whose top level import_file is running (a context variable: a run the file starts
# in a new event loop sees it too, another thread's imports do not).
_importing: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "orch_importing_file", default=None
)


def refuse_run_at_import() -> None:
    """Raise :class:`~orch.errors.PipelineLoadError` when called while :func:`import_file`
    runs a file's top level: a file that starts a run as it is imported."""
    path = _importing.get()
    if path is not None:
        raise PipelineLoadError(
            f"{str(path)!r} calls orch.run at import; fix: guard it with if __name__ == '__main__':"
        )


def split_target(target: str) -> tuple[Path, str]:
    """``file.py:name`` -> (path, name); the name defaults to ``pipeline``."""
    path, sep, name = target.rpartition(":")
    if not sep or not name.isidentifier():
        return Path(target), "pipeline"
    return Path(path), name


def import_file(path: Path) -> ModuleType:
    """Import the Python file at ``path`` once per process (later calls return the same
    module), under a name derived from its resolved path, with its folder on ``sys.path``
    while it runs so that it can import its neighbours. An error in the file becomes a
    :class:`~orch.errors.PipelineLoadError` naming the line."""
    if not path.exists():
        raise PipelineLoadError(f"pipeline file {str(path)!r} does not exist; fix: check the path")
    if path.suffix != ".py":
        raise PipelineLoadError(
            f"pipeline file {str(path)!r} is not a .py file; fix: give the "
            "Python file that defines the pipeline"
        )
    resolved = path.resolve()
    module_name = "orch_pipeline_" + hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise PipelineLoadError(f"cannot import {str(path)!r}; fix: check it is a Python file")
    module = importlib.util.module_from_spec(spec)
    # Let the file import its neighbours, as `python file.py` would.
    sys.path.insert(0, str(resolved.parent))
    sys.modules[module_name] = module
    token = _importing.set(path)
    try:
        spec.loader.exec_module(module)
    except (PipelineValidationError, PipelineLoadError):  # they name the file already
        del sys.modules[module_name]
        raise
    except Exception as exc:
        del sys.modules[module_name]
        frames = [
            f
            for f in traceback.extract_tb(exc.__traceback__)
            if Path(f.filename).resolve() == resolved
        ]
        where = f" at line {frames[-1].lineno}" if frames else ""
        raise PipelineLoadError(
            f"importing {str(path)!r} failed{where}: {type(exc).__name__}: {exc}; fix: correct "
            "the file (run it with python to see the full traceback)"
        ) from exc
    finally:
        _importing.reset(token)
        sys.path.remove(str(resolved.parent))
    return module


def load_pipeline(target: str, params: Mapping[str, Any] | None = None) -> Pipeline:
    """Load and (if needed) build the pipeline named by ``target``. With ``params`` the
    object must be a function; it is called with them as keyword arguments (a parameter
    sweep builds one pipeline per setting this way)."""
    path, name = split_target(target)
    module = import_file(path)
    if not hasattr(module, name):
        found = sorted(
            k for k, v in vars(module).items() if isinstance(v, (Pipeline, PipelineBuilder))
        )
        hint = f"pipelines in the file: {', '.join(found)}" if found else "it defines none"
        raise PipelineLoadError(
            f"{str(path)!r} has no object named {name!r} ({hint}); fix: use {path}:NAME"
        )
    obj = getattr(module, name)
    factory = callable(obj) and not isinstance(obj, (Pipeline, PipelineBuilder))
    if params and not factory:
        raise PipelineLoadError(
            f"{target!r} is a pipeline, not a function, so it cannot take the parameters "
            f"{', '.join(sorted(params))}; fix: point at a function that takes them as "
            "keyword arguments and returns a pipeline"
        )
    if factory:
        try:
            obj = obj(**dict(params or {}))
        except TypeError as exc:
            if params is None:
                raise
            raise PipelineLoadError(
                f"calling {target!r} with {', '.join(f'{k}={v!r}' for k, v in params.items())} "
                f"failed: {exc}; fix: sweep parameters the function takes"
            ) from None
    if isinstance(obj, PipelineBuilder):
        obj = obj.build()
    if not isinstance(obj, Pipeline):
        raise PipelineLoadError(
            f"{target!r} is a {type(obj).__name__}, not a pipeline; fix: "
            "point at a Pipeline, a PipelineBuilder, or a function "
            "returning one"
        )
    return obj


def load_services(target: str) -> dict[str, Any]:
    """The optional ``services`` the pipeline file provides (a mapping, or a function
    returning one): objects its agents reach through ``ctx.service(name)``."""
    path, _ = split_target(target)
    module = import_file(path)
    obj = getattr(module, "services", None)
    if obj is None:
        return {}
    return services_mapping(obj() if callable(obj) else obj, "services", str(path))


def services_mapping(obj: object, name: str, where: str) -> dict[str, Any]:
    """``obj`` (what ``name`` in ``where`` gave) as the services of a run: a mapping of name
    -> service, or a :class:`~orch.errors.PipelineLoadError` with the fix."""
    if not isinstance(obj, Mapping):
        raise PipelineLoadError(
            f"{name!r} in {where!r} is a {type(obj).__name__}; fix: make it a dict of name -> "
            "service, or a function returning one"
        )
    return dict(obj)
