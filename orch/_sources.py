"""A pipeline's own source files: which they are, and whether they changed since a run.

``orch run`` keeps the bytes of the pipeline's source files in the store (content-addressed,
so a file that did not change costs nothing) and their hashes in the run's origin, which lands
in the hash-chained ``run_start`` event::

    origin["sources"] = {"root": "/abs/folder/of/the/pipeline/file",
                         "files": {"flow.py": "sha256:...", "lib/prompts.py": "sha256:..."}}

so that ``orch replay`` can compare the files on disk with the record before it imports
anything (:func:`check_sources`), and the record can be written out again to replay it
elsewhere (:func:`read_recorded_sources`).

Which files (:func:`find_sources`): the pipeline file, and every module it imports, directly or
through another module found this way, whose file lies under the pipeline file's folder (the
*root*). Imports are read from the source text: ``import a.b``, ``from .c import d`` and
``importlib.import_module("e")``, anywhere in the file, in functions too. A module name
resolves to the file Python loaded for it (``sys.modules``), and to the file the root holds for
it. Not sources: files under ``site-packages`` or ``dist-packages``, files of an installed
distribution, and the packages of an editable install unless the pipeline file lies inside
one; their code is versioned by their distribution, not by the run.

Why imports rather than the modules in ``sys.modules``: what a process has loaded depends on
its history (a notebook or a test session that loaded another pipeline from the same folder),
and a record must not; and a module imported inside a function loads only while the run runs,
after its origin was written. The limit: a module named by a value computed at run time
(``import_module(name)``) is not found, so it is neither recorded nor checked.

This module must never import, execute or compile a file (it only parses), never read a path a
record names other than a regular ``.py`` file under the record's root, and never put anything
host-specific in the record but the root.
"""

from __future__ import annotations

import ast
import json
import os
import stat
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from orch.errors import PipelineLoadError
from traces import ArtifactStore, digest, is_key

__all__ = [
    "SOURCE_SUFFIX",
    "PipelineSources",
    "RecordedSources",
    "SourceChange",
    "check_sources",
    "find_sources",
    "is_source_path",
    "read_recorded_sources",
    "record_sources",
]

SOURCE_SUFFIX = ".py"
"""Only Python source files are sources: what can be hashed, compared and written back out."""

_INSTALL_DIRS = frozenset({"site-packages", "dist-packages"})
_MAX_PATH = 4096


# -- finding a pipeline's sources ----------------------------------------------------------


@dataclass(frozen=True)
class PipelineSources:
    """The source files of a pipeline, as found on disk or read back from a record."""

    root: Path
    """The folder of the pipeline file (absolute)."""
    files: Mapping[str, bytes]
    """Each file's bytes under its path relative to ``root`` (POSIX form), sorted by path."""

    def hashes(self) -> dict[str, str]:
        """Each file's ``sha256:`` key, as the record holds it."""
        return {path: digest(data) for path, data in self.files.items()}


def find_sources(pipeline_file: str | os.PathLike[str]) -> PipelineSources:
    """The pipeline file at ``pipeline_file`` and its own source modules (see the module
    docstring for which), read now. Call it after the pipeline was loaded, so that
    ``sys.modules`` names the files its imports really loaded. The same files give the same
    answer whatever other pipelines the process loaded; sorted by path."""
    file = Path(pipeline_file).resolve()
    root = file.parent
    installed = _InstalledCode(root)
    found: dict[str, bytes] = {}
    seen: set[tuple[str, str]] = set()
    # (relative path, package that the file's relative imports start from)
    pending: list[tuple[str, str]] = [(file.name, "")]
    while pending:
        rel, package = pending.pop()
        if (rel, package) in seen:
            continue
        seen.add((rel, package))
        if rel not in found:
            found[rel] = _read_source(root, rel, file)
        for name in sorted(_imported_names(found[rel], rel, package)):
            for candidate in _module_files(name, root):
                own = _own_path(candidate, root, installed)
                if own is not None:
                    is_init = candidate.name == "__init__.py"
                    pending.append((own, name if is_init else name.rpartition(".")[0]))
    return PipelineSources(root, dict(sorted(found.items())))


def record_sources(store: ArtifactStore, sources: PipelineSources) -> dict[str, Any]:
    """Put each source file's bytes in ``store``; return what ``origin["sources"]`` holds."""
    return {
        "root": str(sources.root),
        "files": {path: store.put(bytes(data)) for path, data in sorted(sources.files.items())},
    }


def _read_source(root: Path, rel: str, pipeline: Path) -> bytes:
    try:
        return root.joinpath(rel).read_bytes()
    except OSError as exc:
        raise PipelineLoadError(
            f"cannot read {str(root.joinpath(rel))!r}, a source file of pipeline "
            f"{str(pipeline)!r}: {exc.strerror}; fix: make it readable"
        ) from None


def _imported_names(source: bytes, rel: str, package: str) -> set[str]:
    """Absolute names of every module ``source`` may import: each dotted prefix too, since
    importing ``a.b`` runs ``a/__init__.py`` first."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Python warned (or will) when it compiled the file
            tree = ast.parse(source, filename=rel)
    except (SyntaxError, ValueError, RecursionError):
        return set()  # it will not import either: nothing more to find through it
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.update(_prefixes(alias.name))
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            if base is not None:
                names.update(_prefixes(base))
                # `from pkg import x` imports pkg.x when x is a submodule
                names.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
        elif isinstance(node, ast.Call) and _is_import_call(node):
            # A literal name only; a relative one is skipped (its package argument may vary).
            value = node.args[0].value if isinstance(node.args[0], ast.Constant) else None
            if isinstance(value, str) and not value.startswith("."):
                names.update(_prefixes(value))
    return {n for n in names if all(part.isidentifier() for part in n.split("."))}


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _absolute(module: str | None, level: int, package: str) -> str | None:
    """The absolute name ``from <level dots><module> import ...`` names in ``package``."""
    if level == 0:
        return module
    parts = package.split(".") if package else []
    if len(parts) < level:
        return None  # beyond the top-level package: Python refuses it too
    base = ".".join(parts[: len(parts) - level + 1])
    return f"{base}.{module}" if module else base


def _is_import_call(node: ast.Call) -> bool:
    func = node.func
    named = (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id in ("import_module", "__import__")
    )
    return named and bool(node.args)


def _module_files(name: str, root: Path) -> list[Path]:
    """The file Python loaded for module ``name`` and the one the root holds for it (the
    pipeline's folder is first on ``sys.path`` while it is imported), absolute, unresolved."""
    files: list[Path] = []
    loaded = getattr(sys.modules.get(name), "__file__", None)
    if isinstance(loaded, str):
        files.append(Path(os.path.abspath(loaded)))
    parts = name.split(".")
    # A package folder wins over a module file of the same name, as in Python's FileFinder.
    for candidate in (
        root.joinpath(*parts, "__init__.py"),
        root.joinpath(*parts[:-1], parts[-1] + SOURCE_SUFFIX),
    ):
        if candidate.is_file():
            if candidate not in files:
                files.append(candidate)
            break
    return files


def _own_path(path: Path, root: Path, installed: _InstalledCode) -> str | None:
    """``path`` relative to ``root`` when it is one of the pipeline's own sources, else None."""
    if path.suffix != SOURCE_SUFFIX or _INSTALL_DIRS.intersection(path.parts):
        return None
    if path.is_relative_to(root):
        rel = path.relative_to(root)
    else:  # reached through a symlinked folder on sys.path?
        try:
            real = path.resolve()
        except OSError:
            return None
        if not real.is_relative_to(root) or _INSTALL_DIRS.intersection(real.parts):
            return None
        rel = real.relative_to(root)
    if installed.owns(path):
        return None
    return rel.as_posix()


class _InstalledCode:
    """Which files belong to an installed distribution (looked up on first use only: most
    pipelines import nothing under their folder)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def owns(self, path: Path) -> bool:
        real = path.resolve()
        for package in self._editable_packages:
            # A pipeline that lives inside the package is the user's own code in it.
            if real.is_relative_to(package) and not self.root.is_relative_to(package):
                return True
        return real in self._dist_files

    @cached_property
    def _dist_files(self) -> frozenset[Path]:
        """The files of every distribution installed at or under the root (``pip install
        --target`` into the pipeline's folder, say); others cannot hold a file under it."""
        files: set[Path] = set()
        for dist in metadata.distributions():
            base = Path(str(dist.locate_file(""))).resolve()
            if base.is_relative_to(self.root):
                files.update(Path(str(dist.locate_file(f))).resolve() for f in dist.files or ())
        return frozenset(files)

    @cached_property
    def _editable_packages(self) -> list[Path]:
        """The package folders (or module files) of every editable install: its
        ``top_level.txt`` names when it has one, else each folder with an ``__init__.py``
        directly in the project (or its ``src/``), as a path-based editable install exposes."""
        found: list[Path] = []
        for dist in metadata.distributions():
            project = _editable_project(dist)
            if project is None:
                continue
            tops = (dist.read_text("top_level.txt") or "").split()
            for base in (project, project / "src"):
                if not base.is_dir():
                    continue
                if tops:
                    for top in tops:
                        for candidate in (base / top, base / (top + SOURCE_SUFFIX)):
                            if candidate.exists():
                                found.append(candidate.resolve())
                else:
                    found.extend(
                        d.resolve() for d in base.iterdir() if (d / "__init__.py").is_file()
                    )
        return sorted(set(found))


def _editable_project(dist: metadata.Distribution) -> Path | None:
    """The project folder of an editable install (PEP 660's ``direct_url.json``), else None."""
    try:
        info = json.loads(dist.read_text("direct_url.json") or "null")
    except ValueError:
        return None
    if not isinstance(info, dict):
        return None
    dir_info = info.get("dir_info")
    url = info.get("url")
    if not isinstance(dir_info, dict) or dir_info.get("editable") is not True:
        return None
    if not isinstance(url, str) or not url.startswith("file://"):
        return None
    return Path(unquote(urlparse(url).path))


# -- checking a record's sources against the disk ------------------------------------------


def is_source_path(path: object) -> bool:
    """True when ``path`` may name a source file in a record: a relative POSIX path to a
    ``.py`` file with no empty, ``.`` or ``..`` part, so that it stays under the root."""
    if not isinstance(path, str) or not 0 < len(path) <= _MAX_PATH:
        return False
    if "\x00" in path or "\\" in path or path.startswith("/") or ":" in path:
        return False
    parts = path.split("/")
    return all(p not in ("", ".", "..") for p in parts) and path.endswith(SOURCE_SUFFIX)


@dataclass(frozen=True)
class RecordedSources:
    """The source files a run's origin names: their root and each one's key."""

    root: str
    """The absolute folder of the pipeline file on the machine that made the run."""
    files: Mapping[str, str]
    """Each file's ``sha256:`` key under its path relative to ``root``, sorted by path."""

    @classmethod
    def from_origin(cls, origin: Mapping[str, Any], run_id: str) -> RecordedSources | None:
        """The sources ``origin`` (a run_start event's) records; None for a run recorded
        before sources were; a :class:`~orch.errors.PipelineLoadError` when they are not in
        the form :func:`record_sources` writes (the record is not to be trusted)."""
        raw = origin.get("sources")
        if raw is None:
            return None
        problem = _record_problem(raw)
        if problem is not None:
            raise PipelineLoadError(
                f"run {run_id} records its source files in a form orch does not write "
                f"({problem}); fix: replay it with --pipeline FILE.py[:NAME] naming code you "
                "trust, and verify the store (orch verify)"
            )
        return cls(raw["root"], dict(sorted(raw["files"].items())))

    def path(self, rel: str, root: str | os.PathLike[str] | None = None) -> Path:
        """Where source ``rel`` is under ``root`` (default: the recorded root)."""
        return Path(self.root if root is None else root).joinpath(*rel.split("/"))


def _record_problem(raw: object) -> str | None:
    if not isinstance(raw, dict):
        return f"sources is a {type(raw).__name__}, not an object"
    root, files = raw.get("root"), raw.get("files")
    if not isinstance(root, str) or not os.path.isabs(root) or "\x00" in root:
        return f"root {root!r} is not an absolute path"
    if not isinstance(files, dict) or not files:
        return "files is not a non-empty object"
    for path, key in files.items():
        if not is_source_path(path):
            return f"{path!r} is not a relative path to a .py file under the root"
        if not is_key(key):
            return f"the key of {path!r} is not sha256:<64 hex>"
    return None


@dataclass(frozen=True)
class SourceChange:
    """A recorded source file whose bytes on disk are not the recorded ones."""

    path: str
    """Its path relative to the root."""
    file: Path
    """Where it was looked for."""
    recorded: str
    """The key the record holds."""
    now: str | None
    """The key of the bytes there now; None when there is no regular file there."""

    def describe(self) -> str:
        now = self.now if self.now is not None else "missing (no file there)"
        return f"{self.file}: recorded {self.recorded}, now {now}"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "file": str(self.file),
            "recorded": self.recorded,
            "now": self.now,
        }


def check_sources(
    recorded: RecordedSources, root: str | os.PathLike[str] | None = None
) -> list[SourceChange]:
    """Hash every recorded source file as it is under ``root`` now (default: the recorded
    root) and return those that differ or are missing, sorted by path; [] when all match.
    Reads only regular files, never runs them."""
    changes: list[SourceChange] = []
    for rel, key in recorded.files.items():
        file = recorded.path(rel, root)
        data = _read_regular_file(file)
        now = None if data is None else digest(data)
        if now != key:
            changes.append(SourceChange(rel, file, key, now))
    return changes


def read_recorded_sources(store: ArtifactStore, recorded: RecordedSources) -> PipelineSources:
    """The recorded source files' bytes from ``store``, each verified against its key (to put
    them in a bundle, or write them out to replay the recorded code itself)."""
    return PipelineSources(
        Path(recorded.root), {rel: store.get(key) for rel, key in recorded.files.items()}
    )


def _read_regular_file(file: Path) -> bytes | None:
    # O_NONBLOCK: a FIFO placed where a source should be must not hang the check; it is then
    # refused as not a regular file, like a device or a folder.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(file, flags)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        try:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            return f.read()
        except OSError:
            return None
