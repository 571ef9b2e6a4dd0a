"""The evaluation journal: what makes an evaluation resumable.

A JSON-lines file: a header naming what is evaluated (dataset, split, pipeline spec hash,
graded output, seed), then one line per finished task, appended and flushed as each run
ends, so a process killed mid-evaluation (SIGKILL included) leaves every finished task's
line on disk. Starting the same evaluation with the same journal skips those tasks and
reuses their results, provided their runs are still in the store; a journal written for
something else is refused with the fix, never mixed in. A torn last line (the write the
kill interrupted) is dropped and its task run again.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from .dataset import DatasetError

__all__ = ["JOURNAL_FORMAT", "Journal"]

JOURNAL_FORMAT = "orch.eval-journal/1"


class Journal:
    """Open with the evaluation's identity; :attr:`done` holds the results found."""

    def __init__(self, path: str | os.PathLike[str], identity: dict[str, Any]) -> None:
        self.path = Path(path)
        self.identity = {"format": JOURNAL_FORMAT, **identity}
        self.done: dict[str, dict[str, Any]] = {}
        self.torn = 0
        self._file: IO[bytes] | None = None

    def _read(self) -> int:
        """Load finished results; returns the byte length of the whole lines read."""
        data = self.path.read_bytes()
        if not data:
            return 0
        lines = data.split(b"\n")
        good = 0
        try:
            header = orjson.loads(lines[0])
        except orjson.JSONDecodeError:
            if len(lines) == 1:  # only a torn header: nothing was ever finished
                return 0
            raise DatasetError(
                f"{self.path} is not an evaluation journal (its first line is not JSON); "
                "fix: pass another --journal path, or delete this file"
            ) from None
        if not isinstance(header, dict) or header.get("format") != JOURNAL_FORMAT:
            raise DatasetError(
                f"{self.path} is not an evaluation journal; fix: pass another path, or "
                "delete the file"
            )
        if header != self.identity:
            diff = sorted(
                k for k in set(header) | set(self.identity) if header.get(k) != self.identity.get(k)
            )
            raise DatasetError(
                f"journal {self.path} belongs to another evaluation (differs in: "
                f"{', '.join(diff)}); fix: rerun with the same settings to resume it, or "
                "delete it (or pass --fresh) to start over"
            )
        good = len(lines[0]) + 1
        for line in lines[1:]:
            if not line:
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                self.torn += 1
                break  # the line a kill cut short; it and anything after it is dropped
            self.done[row["task"]] = row
            good += len(line) + 1
        return good

    def open(self, fresh: bool = False) -> Journal:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keep = 0
        if self.path.exists() and not fresh:
            keep = self._read()
        self._file = open(self.path, "r+b" if keep else "wb")  # noqa: SIM115 (closed in close)
        if keep:
            self._file.truncate(keep)
            self._file.seek(keep)
        else:
            self._file.write(orjson.dumps(self.identity) + b"\n")
            self._file.flush()
        return self

    def forget(self, task: str) -> None:
        """Drop a found result (its run is not in the store), so the task runs again."""
        self.done.pop(task, None)

    def append(self, row: dict[str, Any]) -> None:
        assert self._file is not None, "open the journal first"
        # One write per line, flushed: a killed process loses at most the line in flight.
        self._file.write(orjson.dumps(row) + b"\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
