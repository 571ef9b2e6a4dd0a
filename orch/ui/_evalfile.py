"""Evaluation files for ``orch ui``: the ``orch.eval-report/1`` files of one folder, read.

``orch eval --save FILE`` writes an evaluation to a file of its own (the store keeps the runs,
not the evaluation), so the Evaluations page lists a folder given with ``orch ui --evals
DIR``. Only that folder is read: a name is a plain file name (letters, digits, ``.``, ``_``,
``-``, ending ``.json``; no path, so no traversal), a symbolic link or anything but a regular
file is never opened, and a file larger than :data:`MAX_BYTES` is refused.

The format is documented (``docs/eval.md``) and declared once, in :mod:`orch._evalformat`:
the writer (:mod:`routers.eval._evalfile`, which the engine's UI may not import: ``routers``
sits above ``orch``) makes its models strict; this module reads with them as declared, which
ignore fields they do not know, so a file a newer writer made with more fields still opens.
Every string in a file is untrusted text. Parsed files are kept per (name, size,
modification time), a few at a time.
"""

from __future__ import annotations

import math
import os
import re
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from orch._evalformat import (
    EVAL_FORMAT,
    EvalConfigOf,
    EvalCurveOf,
    EvalFileOf,
    EvalPoint,
    EvalReferencesOf,
    EvalRun,
    EvalTable,
)
from orch.ui._errors import UiError

__all__ = [
    "EVAL_FORMAT",
    "MAX_BYTES",
    "EvalConfig",
    "EvalDoc",
    "EvalEntry",
    "EvalFiles",
    "check_name",
]

MAX_BYTES = 256 * 1024 * 1024
"""The largest evaluation file opened (one holds every task's run of every configuration)."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.json")
_KEPT = 16


def check_name(name: str) -> str:
    """``name`` when it may name a file of the folder; UiError(400) otherwise."""
    if not _NAME.fullmatch(name):
        raise UiError(
            400,
            f"{name[:80]!r} is not the name of an evaluation file; fix: pick one from the "
            "Evaluations page (a file name ending .json, no folder)",
        )
    return name


class EvalConfig(EvalConfigOf[EvalRun]):
    """A configuration, as the pages read it."""

    def figures(self) -> dict[str, Any]:
        """The summary as saved, else computed from the runs (as ``orch report`` does)."""
        if self.summary:
            return self.summary
        n = len(self.runs)
        modes: dict[str, int] = {}
        for r in self.runs:
            if r.mode is not None:
                modes[r.mode] = modes.get(r.mode, 0) + 1
        return {
            "tasks": n,
            "failed": sum(not r.ok for r in self.runs),
            "accuracy": sum(r.score for r in self.runs) / n if n else 0.0,
            "cost_usd": sum(r.cost_usd for r in self.runs),
            "cost_per_task_usd": sum(r.cost_usd for r in self.runs) / n if n else 0.0,
            "modes": {k: v / n for k, v in sorted(modes.items())},
        }

    def point(self) -> tuple[float, float] | None:
        """(cost per task, accuracy) when the summary has both, finite."""
        s = self.figures()
        cost, quality = s.get("cost_per_task_usd"), s.get("accuracy")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (cost, quality)):
            return None
        assert isinstance(cost, int | float) and isinstance(quality, int | float)
        if not (math.isfinite(cost) and math.isfinite(quality)):
            return None
        return float(cost), float(quality)


EvalReferences = EvalReferencesOf[EvalPoint]
EvalCurve = EvalCurveOf[EvalPoint]


class EvalDoc(EvalFileOf[EvalReferences, EvalConfig, EvalCurve, EvalTable]):
    """An evaluation file, as the pages read it."""

    def config(self, label: str) -> EvalConfig:
        try:
            return super().config(label)
        except KeyError:
            raise UiError(
                404,
                f"evaluation {self.title[:80]!r} has no configuration {label[:80]!r}; fix: "
                "click a point or a row of the evaluation's page",
            ) from None


@dataclass(frozen=True)
class EvalEntry:
    """A line of the Evaluations list."""

    name: str
    doc: EvalDoc | None
    problem: str | None
    """Why the file does not read as an evaluation (None: it does)."""
    size: int


class EvalFiles:
    """The evaluation files of one folder (see the module docstring); thread-safe."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._kept: OrderedDict[tuple[str, int, int, int], EvalDoc] = OrderedDict()
        self._lock = threading.Lock()

    def _stat(self, name: str) -> os.stat_result:
        try:
            st = os.lstat(self.folder / name)  # lstat: a link is not followed, never opened
        except FileNotFoundError:
            raise UiError(
                404,
                f"no evaluation file {name!r} in the evaluations folder; fix: pick one "
                "from the Evaluations page",
            ) from None
        if not stat.S_ISREG(st.st_mode):
            raise UiError(
                404,
                f"{name!r} is not a regular file (a link or a folder); fix: copy the "
                "evaluation file itself into the folder",
            )
        if st.st_size > MAX_BYTES:
            raise UiError(
                413,
                f"evaluation file {name!r} has {st.st_size} bytes, more than the "
                f"{MAX_BYTES} this page reads; fix: render it with orch report {name}",
            )
        return st

    def _parse(self, name: str, data: bytes) -> EvalDoc:
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise UiError(
                422, f"{name!r} is not JSON ({exc}); fix: give a file orch eval --save wrote"
            ) from None
        if not isinstance(raw, dict) or raw.get("format") != EVAL_FORMAT:
            got = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
            raise UiError(
                422,
                f"{name!r} is not an evaluation file (format {str(got)[:60]!r}, expected "
                f"{EVAL_FORMAT!r}); fix: give a file orch eval --save wrote",
            )
        try:
            return EvalDoc.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise UiError(
                422,
                f"evaluation file {name!r}: {where[:120]}: {first['msg']}; fix: write it "
                "again with orch eval --save",
            ) from None

    def open(self, name: str) -> EvalDoc:
        """The evaluation file ``name``; UiError (400, 404, 413, 422) saying why not."""
        check_name(name)
        st = self._stat(name)
        key = (name, st.st_size, st.st_mtime_ns, st.st_ino)
        with self._lock:
            doc = self._kept.get(key)
            if doc is not None:
                self._kept.move_to_end(key)
                return doc
        # O_NOFOLLOW: were the file swapped for a link since the lstat, opening it fails.
        try:
            fd = os.open(self.folder / name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise UiError(404, f"cannot open evaluation file {name!r}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise UiError(413, f"evaluation file {name!r} grew past {MAX_BYTES} bytes")
        doc = self._parse(name, data)
        with self._lock:
            self._kept[key] = doc
            while len(self._kept) > _KEPT:
                self._kept.popitem(last=False)
        return doc

    def entries(self) -> list[EvalEntry]:
        """Every ``.json`` file of the folder whose name may be one, by name; those that are
        no evaluation file say why."""
        try:
            names = sorted(
                e.name
                for e in os.scandir(self.folder)
                if _NAME.fullmatch(e.name) and e.is_file(follow_symlinks=False)
            )
        except OSError as exc:
            raise UiError(
                500,
                f"cannot list the evaluations folder: {exc.strerror}; fix: give orch ui "
                "--evals a folder it can read",
            ) from None
        found = []
        for name in names:
            try:
                doc = self.open(name)
                found.append(EvalEntry(name, doc, None, self._stat(name).st_size))
            except UiError as exc:
                found.append(EvalEntry(name, None, exc.line, 0))
        return found
