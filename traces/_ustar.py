"""The canonical POSIX ustar encoding of an evidence bundle, and the name of each byte of it.

One archive has one encoding here: members in the order given, each a 512-byte ustar header
(mode 0644, uid and gid 0, empty user and group names, mtime 0, type ``0``, no prefix, no pax
or GNU extension) and its data NUL-padded to a multiple of 512 bytes, then two zero blocks and
nothing else. :func:`tar_layout` names every byte range of such an archive, so that a
verifier that re-encodes what it read can say which part a differing byte belongs to.

This module must never read a file, follow a link, or accept a member name that does not fit
the ustar name field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .errors import EvidenceError

__all__ = [
    "BLOCK",
    "END_OF_ARCHIVE",
    "MAX_MEMBER_SIZE",
    "Part",
    "encode_tar",
    "first_difference",
    "member_name_problem",
    "padding",
    "part_at",
    "tar_layout",
]

BLOCK: Final = 512
END_OF_ARCHIVE: Final = b"\0" * (2 * BLOCK)
MAX_MEMBER_SIZE: Final = 8**11 - 1
"""The largest member: what the 11 octal digits of the size field hold."""
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")

# (field, start, end) of a ustar header, POSIX.1-1988.
_FIELDS: Final = (
    ("name", 0, 100),
    ("mode", 100, 108),
    ("uid", 108, 116),
    ("gid", 116, 124),
    ("size", 124, 136),
    ("mtime", 136, 148),
    ("chksum", 148, 156),
    ("typeflag", 156, 157),
    ("linkname", 157, 257),
    ("magic", 257, 263),
    ("version", 263, 265),
    ("uname", 265, 297),
    ("gname", 297, 329),
    ("devmajor", 329, 337),
    ("devminor", 337, 345),
    ("prefix", 345, 500),
    ("pad", 500, 512),
)


def member_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a member name of a canonical archive, or None."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        return f"member name {name!r} is not a relative path of letters, digits, '.', '_', '-'"
    if len(name) > 100:
        return (
            f"member name {name!r} has {len(name)} bytes and does not fit a ustar name field "
            "(100 bytes; the prefix field is not used)"
        )
    return None


def _header(name: str, size: int) -> bytes:
    problem = member_name_problem(name)
    if problem is not None:
        raise EvidenceError(f"{problem}; fix: name members within the ustar limits")
    if not 0 <= size <= MAX_MEMBER_SIZE:
        raise EvidenceError(
            f"member {name!r} has {size} bytes, more than a ustar size field holds (8 GiB); "
            "fix: a run this large cannot be bundled"
        )
    h = bytearray(BLOCK)
    h[0 : len(name)] = name.encode("ascii")
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"00000000000\0"
    h[148:156] = b" " * 8  # the checksum is computed with its own field as spaces
    h[156:157] = b"0"
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    h[329:337] = b"0000000\0"
    h[337:345] = b"0000000\0"
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def padding(size: int) -> int:
    """NUL bytes after ``size`` bytes of data, to the next 512-byte boundary."""
    return -size % BLOCK


def encode_tar(members: Sequence[tuple[str, bytes]]) -> bytes:
    """The canonical ustar archive of ``members`` in the order given: a header and the data
    (NUL-padded to 512 bytes) of each, then two zero blocks, nothing else."""
    parts: list[bytes] = []
    for name, data in members:
        parts += [_header(name, len(data)), data, b"\0" * padding(len(data))]
    parts.append(END_OF_ARCHIVE)
    return b"".join(parts)


@dataclass(frozen=True)
class Part:
    """A byte range of an archive and what it is, as verification names it."""

    start: int
    end: int
    name: str


def tar_layout(members: Sequence[tuple[str, int]]) -> list[Part]:
    """Every byte range of the canonical archive of members (name, size), named: each header
    field (``member 'X' header field size``), the data (``member 'X' (data)``), the padding
    (``tar padding after member 'X'``) and ``end-of-archive blocks``."""
    parts: list[Part] = []
    offset = 0
    for name, size in members:
        for fname, start, end in _FIELDS:
            parts.append(
                Part(offset + start, offset + end, f"member {name!r} header field {fname}")
            )
        offset += BLOCK
        if size:
            parts.append(Part(offset, offset + size, f"member {name!r} (data)"))
        pad = padding(size)
        if pad:
            parts.append(
                Part(offset + size, offset + size + pad, f"tar padding after member {name!r}")
            )
        offset += size + pad
    parts.append(Part(offset, offset + len(END_OF_ARCHIVE), "end-of-archive blocks"))
    return parts


def part_at(parts: Sequence[Part], offset: int) -> str:
    """The name of the part of ``parts`` (a :func:`tar_layout`) that holds ``offset``."""
    for part in parts:
        if part.start <= offset < part.end:
            return part.name
    return "data after the end-of-archive blocks"


def first_difference(a: bytes, b: bytes, start: int, stop: int) -> int | None:
    """The first offset in ``[start, stop)`` where ``a`` and ``b`` differ, or None."""
    if a[start:stop] == b[start:stop]:
        return None
    lo, hi = start, stop
    while hi - lo > 1:  # bisect on slice equality: C speed for large members
        mid = (lo + hi) // 2
        if a[lo:mid] != b[lo:mid]:
            hi = mid
        else:
            lo = mid
    return lo
