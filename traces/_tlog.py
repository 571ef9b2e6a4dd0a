"""Merkle tree hashing and proofs of a transparency log, exactly as RFC 9162 §2.1 (RFC 6962).

A leaf is ``SHA-256(0x00 || entry)``, an inner node ``SHA-256(0x01 || left || right)``, and the
root of ``n > 1`` leaves splits at the largest power of two smaller than ``n``. Inclusion proofs
(§2.1.3) show that a leaf is in a tree of a given size; consistency proofs (§2.1.4) show that a
tree of an old size is a prefix of a tree of a new size. Hashes are raw 32-byte digests, so the
proofs are byte-for-byte the ones other RFC 6962 libraries (Go's ``sumdb/tlog``,
``transparency-dev/merkle``, Certificate Transparency clients) build and check.

What a proof does not bind: an inclusion or consistency proof is checked against roots and
sizes the caller supplies; the pair (size, root) is only meaningful once a signed checkpoint
vouches for it. With the root of one size, a proof can verify for another size whose proof has
the same shape (for example leaf 0 of sizes 3 and 4), which is why the size is taken from the
checkpoint and never from the proof's sender.

This module must never sort or reorder leaves (the order is what is proven), never read a clock
or a random source, and never accept a hash that is not 32 bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from .errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MerkleTree",
    "consistency_proof_size",
    "inclusion_proof_size",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in a SHA-256 digest: every leaf hash, node hash, root and proof element."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root of the empty tree (RFC 9162: the hash of the empty string)."""


def leaf_hash(entry: bytes) -> bytes:
    """Return the leaf hash of a log entry: ``SHA-256(0x00 || entry)``."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the hash of an inner node: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n > 1``): where RFC 9162 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise ProofError(
            f"{what} is not a {HASH_SIZE}-byte SHA-256 digest (got {size}); "
            "fix: pass the raw digest bytes, not hex or base64 text"
        )


def _check_size(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProofError(f"{what} {value!r} is not a tree size; fix: pass an int >= 0")


def tree_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash (MTH) over leaf hashes, in the order given.

    Uses a stack of complete subtrees (a compact range), so it costs O(n) hashes and
    O(log n) memory; the result is the RFC's recursive definition.
    """
    stack: list[bytes] = []
    for count, leaf in enumerate(leaf_hashes, start=1):
        _check_hash(leaf, f"leaf hash {count - 1}")
        stack.append(bytes(leaf))
        # Each trailing zero bit of the new count is a pair of equal subtrees to merge.
        while count % 2 == 0:
            right = stack.pop()
            stack.append(node_hash(stack.pop(), right))
            count //= 2
    if not stack:
        return EMPTY_ROOT
    root = stack[-1]
    for left in reversed(stack[:-1]):
        root = node_hash(left, root)
    return root


class CompactRange:
    """The right edge of a tree: enough to extend it and compute its root, not to prove.

    A tree of ``size`` leaves is, left to right, one perfect subtree per bit set in ``size``
    (largest first); their roots are the range. Appending a leaf merges the subtrees its
    arrival completes; the root folds the range from the right. O(log n) hashes in memory,
    amortised O(1) hashes per append, O(log n) per root: what a process needs to sign the
    checkpoint of a large log it has not read (it checks the range against the root of an
    earlier checkpoint it trusts, then appends what came since)."""

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        _check_size(size, "size")
        hashes = list(hashes)
        for i, h in enumerate(hashes):
            _check_hash(h, f"range hash {i}")
        if len(hashes) != bin(size).count("1"):
            raise ProofError(
                f"a compact range of a tree of size {size} holds {bin(size).count('1')} "
                f"hashes, not {len(hashes)}"
            )
        self._size = size
        self._hashes = hashes

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> list[bytes]:
        """The subtree roots, largest (leftmost) first."""
        return list(self._hashes)

    def to_bytes(self) -> bytes:
        return b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> CompactRange:
        if len(data) % HASH_SIZE:
            raise ProofError(f"a compact range is whole hashes, not {len(data)} bytes")
        return cls(size, [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)])

    def append(self, leaf_hash: bytes) -> None:
        _check_hash(leaf_hash, f"leaf hash {self._size}")
        self._hashes.append(leaf_hash)
        count = self._size
        self._size += 1
        # Each trailing one bit of the old size is a subtree the new leaf completes.
        while count & 1:
            right = self._hashes.pop()
            left = self._hashes.pop()
            self._hashes.append(node_hash(left, right))
            count >>= 1

    def root(self) -> bytes:
        if not self._hashes:
            return EMPTY_ROOT
        root = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            root = node_hash(h, root)
        return root


class MerkleTree:
    """An append-only in-memory Merkle tree of leaf hashes, with RFC 9162 proofs.

    Every complete subtree's hash is kept: level ``k`` holds the ``size >> k`` hashes of the
    aligned subtrees of ``2**k`` leaves, packed in one ``bytearray`` per level. That is about
    ``2 * size * 32`` bytes (64 bytes per leaf: 64 MiB for a million leaves) and makes every
    root and proof O(log n) node look-ups: ``append`` costs amortised O(1) hashes, ``root(m)``
    of any size ``m`` at most O(log n) hashes, an inclusion or consistency proof O(log² n).
    """

    __slots__ = ("_levels", "_size")

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0
        self.extend(leaf_hashes)

    @property
    def size(self) -> int:
        """Number of leaves appended."""
        return self._size

    def __len__(self) -> int:
        return self._size

    def append(self, leaf_hash: bytes) -> int:
        """Append one leaf hash (see :func:`leaf_hash`); return its index."""
        _check_hash(leaf_hash, f"leaf hash {self._size}")
        index = self._size
        self._levels[0] += leaf_hash
        self._size = count = index + 1
        level = 0
        # A new node completes at the next level for each trailing zero bit of the new size.
        while count % 2 == 0:
            lower = self._levels[level]
            if level + 1 == len(self._levels):
                self._levels.append(bytearray())
            self._levels[level + 1] += hashlib.sha256(b"\x01" + lower[-64:]).digest()
            count //= 2
            level += 1
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaf hashes; the same tree as appending them one by one, faster."""
        batch = list(leaf_hashes)
        for offset, leaf in enumerate(batch):
            _check_hash(leaf, f"leaf hash {self._size + offset}")
        if not batch:
            return
        self._levels[0] += b"".join(batch)
        self._size += len(batch)
        level = 0
        while (self._size >> (level + 1)) > 0:
            lower = self._levels[level]
            if level + 1 == len(self._levels):
                self._levels.append(bytearray())
            upper = self._levels[level + 1]
            have, want = len(upper) // HASH_SIZE, self._size >> (level + 1)
            if have == want:
                break  # nothing new at this level, so nothing new above it either
            sha256 = hashlib.sha256
            upper += b"".join(
                sha256(b"\x01" + lower[64 * i : 64 * i + 64]).digest() for i in range(have, want)
            )
            level += 1

    def compact_range(self, size: int | None = None) -> CompactRange:
        """The compact range of the first ``size`` leaves (see :class:`CompactRange`)."""
        size = self._check_tree_size(size)
        hashes = []
        start = 0
        for level in reversed(range(size.bit_length())):
            if size >> level & 1:
                hashes.append(self._node(level, start >> level))
                start += 1 << level
        return CompactRange(size, hashes)

    def leaf(self, index: int) -> bytes:
        """Return the leaf hash at ``index``."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self._size:
            raise ProofError(
                f"leaf index {index!r} is out of range for a tree of size {self._size}; "
                f"fix: use an index in [0, {self._size})"
            )
        return self._node(0, index)

    def root(self, size: int | None = None) -> bytes:
        """Return the root of the first ``size`` leaves (default: all of them)."""
        size = self._check_tree_size(size)
        if size == 0:
            return EMPTY_ROOT
        return self._range_root(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, leaf-side element first."""
        size = self._check_tree_size(size)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
            raise ProofError(
                f"cannot prove leaf {index!r} in a tree of size {size}: no such leaf; "
                f"fix: use an index in [0, {size})"
            )
        path: list[bytes] = []
        offset, n, m = 0, size, index
        while n > 1:
            k = _split(n)
            if m < k:
                path.append(self._range_root(offset + k, offset + n))
                n = k
            else:
                path.append(self._range_root(offset, offset + k))
                offset, m, n = offset + k, m - k, n - k
        path.reverse()
        return path

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Return PROOF(old_size, D[0:new_size]) of RFC 9162 §2.1.4.1.

        Empty when ``old_size`` is 0 or equals ``new_size``: there is nothing to prove (see
        :func:`verify_consistency` for how those cases are checked).
        """
        new_size = self._check_tree_size(new_size)
        _check_size(old_size, "old size")
        if old_size > new_size:
            raise ProofError(
                f"cannot prove that a tree of size {old_size} is a prefix of one of size "
                f"{new_size}; fix: pass old_size <= new_size"
            )
        if old_size in (0, new_size):
            return []
        proof: list[bytes] = []
        offset, n, m, whole = 0, new_size, old_size, True
        while m != n:
            k = _split(n)
            if m <= k:
                proof.append(self._range_root(offset + k, offset + n))
                n = k
            else:
                proof.append(self._range_root(offset, offset + k))
                offset, m, n, whole = offset + k, m - k, n - k, False
        if not whole:
            # SUBPROOF(m, D[m], false): the old tree's last subtree is not known to the verifier.
            proof.append(self._range_root(offset, offset + m))
        proof.reverse()
        return proof

    def _check_tree_size(self, size: int | None) -> int:
        if size is None:
            return self._size
        _check_size(size, "tree size")
        if size > self._size:
            raise ProofError(
                f"tree size {size} is larger than the tree ({self._size} leaves); "
                f"fix: use a size <= {self._size}"
            )
        return size

    def _node(self, level: int, index: int) -> bytes:
        start = index * HASH_SIZE
        return bytes(self._levels[level][start : start + HASH_SIZE])

    def _range_root(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) where ``start`` is aligned to a power of two >= ``end - start``.

        Every subtree an RFC proof names is of that form; it is the fold, right to left, of
        the complete subtrees that tile the range, largest first.
        """
        nodes: list[bytes] = []
        pos = start
        while pos < end:
            level = (end - pos).bit_length() - 1
            nodes.append(self._node(level, pos >> level))
            pos += 1 << level
        root = nodes[-1]
        for left in reversed(nodes[:-1]):
            root = node_hash(left, root)
        return root


def inclusion_proof_size(index: int, size: int) -> int:
    """Number of hashes in the inclusion proof of leaf ``index`` in a tree of ``size``."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def consistency_proof_size(old_size: int, new_size: int) -> int:
    """Number of hashes in the consistency proof from ``old_size`` to ``new_size``."""
    if old_size in (0, new_size):
        return 0
    # The proof is the inclusion path of leaf old_size-1, from the level of the old tree's
    # last complete subtree up, plus that subtree itself unless it is the whole old tree.
    shift = (old_size & -old_size).bit_length() - 1
    return inclusion_proof_size(old_size - 1, new_size) - shift + (old_size != 1 << shift)


def root_from_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """Return the root that an inclusion proof leads to (RFC 9162 §2.1.3.2, steps 1 to 4)."""
    _check_hash(leaf_hash, "leaf hash")
    _check_size(size, "tree size")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
        raise ProofError(
            f"leaf index {index!r} is out of range for a tree of size {size}; "
            f"fix: check the index and size of the proof request (index < size)"
        )
    want = inclusion_proof_size(index, size)
    if len(proof) != want:
        raise ProofError(
            f"inclusion proof of leaf {index} in a tree of size {size} has {len(proof)} "
            f"hashes, it must have {want}; fix: request the proof for this index and size"
        )
    fn, sn, r = index, size - 1, bytes(leaf_hash)
    for i, p in enumerate(proof):
        _check_hash(p, f"inclusion proof element {i}")
        if sn == 0:
            raise ProofError(f"inclusion proof is longer than the path of leaf {index}")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"inclusion proof is shorter than the path of leaf {index}")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    RFC 9162 §2.1.3.2. Returns nothing; raises :class:`ProofError` saying what failed.
    """
    _check_hash(root, "root")
    computed = root_from_inclusion(leaf_hash, index, size, proof)
    if computed != root:
        raise ProofError(
            f"inclusion proof of leaf {index} in a tree of size {size} leads to root "
            f"{computed.hex()}, not the given root {bytes(root).hex()}; the leaf, index, size, "
            "proof or root is wrong, or the log does not contain this leaf"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``old_size`` with ``old_root`` is a prefix of ``new_size``'s.

    RFC 9162 §2.1.4.2 for ``0 < old_size < new_size``. Equal sizes need an empty proof and
    equal roots. The empty tree is a prefix of every tree: ``old_size`` 0 needs an empty proof
    and ``old_root`` equal to :data:`EMPTY_ROOT`, and proves nothing about ``new_root``.
    Returns nothing; raises :class:`ProofError` saying what failed.
    """
    _check_size(old_size, "old size")
    _check_size(new_size, "new size")
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    for i, p in enumerate(proof):
        _check_hash(p, f"consistency proof element {i}")
    if old_size > new_size:
        raise ProofError(
            f"old size {old_size} is larger than new size {new_size}: a log never shrinks; "
            "fix: pass the older checkpoint first (or the log has been rolled back)"
        )
    want = consistency_proof_size(old_size, new_size)
    if len(proof) != want:
        raise ProofError(
            f"consistency proof from size {old_size} to {new_size} has {len(proof)} hashes, "
            f"it must have {want}; fix: request the proof for these two sizes"
        )
    if old_size == 0:
        if old_root != EMPTY_ROOT:
            raise ProofError(
                f"old root {bytes(old_root).hex()} is not the root of the empty tree "
                f"({EMPTY_ROOT.hex()}), yet the old size is 0"
            )
        if new_size == 0 and new_root != EMPTY_ROOT:
            raise ProofError(
                f"new root {bytes(new_root).hex()} is not the root of the empty tree, "
                "yet the new size is 0"
            )
        return
    if old_size == new_size:
        if old_root != new_root:
            raise ProofError(
                f"two different roots for the same tree size {old_size}: "
                f"{bytes(old_root).hex()} and {bytes(new_root).hex()}; the log has forked"
            )
        return
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof from size {old_size} to {new_size} is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"consistency proof from size {old_size} to {new_size} is too short")
    if fr != old_root:
        raise ProofError(
            f"consistency proof from size {old_size} to {new_size} leads to old root "
            f"{fr.hex()}, not the given old root {bytes(old_root).hex()}; the proof or the old "
            "checkpoint is wrong, or the log has been rewritten"
        )
    if sr != new_root:
        raise ProofError(
            f"consistency proof from size {old_size} to {new_size} leads to new root "
            f"{sr.hex()}, not the given new root {bytes(new_root).hex()}; the proof or the new "
            "checkpoint is wrong, or the log has been rewritten"
        )
