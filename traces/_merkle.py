"""Merkle root over an ordered list of leaf hashes.

Leaves and inner nodes are domain-separated (``0x00`` / ``0x01`` prefixes, as in RFC 6962)
so that a leaf can never be passed off as an inner node. An odd node at the end of a level is
carried up unchanged. The order of leaves is the caller's contract (step ids, sorted): this
module must never sort, because the order is part of what is proven.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from ._canonical import HASH_PREFIX

__all__ = ["EMPTY_ROOT", "merkle_root"]

EMPTY_ROOT = HASH_PREFIX + hashlib.sha256(b"").hexdigest()


def merkle_root(leaves: Iterable[bytes]) -> str:
    """Return ``sha256:<hex>`` Merkle root of the leaf byte strings, in the order given.

    ``leaves`` may be a generator: each leaf is hashed as it comes and not kept (a run's
    leaves, all kept at once, cost more in allocation than in hashing)."""
    sha256 = hashlib.sha256
    level = [sha256(b"\x00" + leaf).digest() for leaf in leaves]
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        nxt = [
            sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return HASH_PREFIX + level[0].hex()
