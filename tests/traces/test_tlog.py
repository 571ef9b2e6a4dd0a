"""RFC 9162 Merkle tree hashing and proofs: known answers of other implementations and properties.

The known answers are the 8-leaf test tree of transparency-dev/merkle (``testonly``: leaf
inputs, every complete subtree hash, the root of every prefix; ``cmd/proofgen``: inclusion and
consistency proofs) and its golden roots of large trees (``compact/range_test.go``). The
corruptions applied to the proofs are the ones its ``testdata`` probes use.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traces._merkle import merkle_root
from traces._tlog import (
    EMPTY_ROOT,
    MerkleTree,
    consistency_proof_size,
    inclusion_proof_size,
    leaf_hash,
    node_hash,
    root_from_inclusion,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from traces.errors import ProofError

H = bytes.fromhex

# transparency-dev/merkle testonly.LeafInputs()
LEAF_INPUTS = [
    H(""),
    H("00"),
    H("10"),
    H("2021"),
    H("3031"),
    H("40414243"),
    H("5051525354555657"),
    H("606162636465666768696a6b6c6d6e6f"),
]
# testonly.NodeHashes(): [level][index] of every complete subtree of the 8-leaf tree.
NODE_HASHES = [
    [
        H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        H("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        H("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        H("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        H("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        H("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [H("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")],
]
# testonly.RootHashes(): the root of the first n leaves, n = 0..8.
ROOTS = [
    H("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    H("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    H("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    H("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    H("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    H("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]
# cmd/proofgen inclusionProofs (its leaf indices are 1-based; these are 0-based).
INCLUSION_PROOFS: list[tuple[int, int, list[bytes]]] = [
    (0, 1, []),
    (
        0,
        8,
        [
            H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (2, 3, [H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]
# cmd/proofgen consistencyProofs.
CONSISTENCY_PROOFS: list[tuple[int, int, list[bytes]]] = [
    (1, 1, []),
    (
        1,
        8,
        [
            H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]
# compact/range_test.go TestGetRootHashGolden: leaf i is the two bytes (i & 0xff, i >> 8 & 0xff).
GOLDEN_ROOTS = {
    10: "VjWMPSYNtCuCNlF/RLnQy6HcwSk6CIipfxm+hettA+4=",
    15: "j4SulYmocFuxdeyp12xXCIgK6PekBcxzAIj4zbQzNEI=",
    16: "c+4Uc6BCMOZf/v3NZK1kqTUJe+bBoFtOhP+P3SayKRE=",
    100: "dUh9hYH88p0CMoHkdr1wC2szbhcLAXOejWpINIooKUY=",
    255: "SmdsuKUqiod3RX2jyF2M6JnbdE4QuTwwipfAowI4/i0=",
    256: "qFI0t/tZ1MdOYgyPpPzHFiZVw86koScXy9q3FU5casA=",
    1000: "RXrgb8xHd55Y48FbfotJwCbV82Kx22LZfEbmBGAvwlQ=",
    4095: "cWRFdQhPcjn9WyBXE/r1f04ejxIm5lvg40DEpRBVS0w=",
    4096: "6uU/phfHg1n/GksYT6TO9aN8EauMCCJRl3dIK0HDs2M=",
    10000: "VZcav65F9haHVRk3wre2axFoBXRNeUh/1d9d5FQfxIg=",
    65535: "iPuVYJhP6SEE4gUFp8qbafd2rYv9YTCDYqAxCj8HdLM=",
}
SOME_HASH = H("abacaba000000000000000000000000000000000000000000060061e00123456")


def _tree8() -> MerkleTree:
    return MerkleTree(leaf_hash(entry) for entry in LEAF_INPUTS)


# --- the RFC 9162 §2.1 definitions, written out recursively, as an independent reference ----


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _k(len(leaves))
    return node_hash(ref_mth(leaves[:k]), ref_mth(leaves[k:]))


def ref_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    if len(leaves) <= 1:
        return []
    k = _k(len(leaves))
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [ref_mth(leaves)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], complete), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


# --- the order of hashing the RFC's verifiers follow, to tell which tampered sizes must fail ---


def inclusion_ops(index: int, size: int) -> tuple[str, ...] | None:
    if index >= size:
        return None
    fn, sn, ops = index, size - 1, []
    for _ in range(inclusion_proof_size(index, size)):
        if fn & 1 or fn == sn:
            ops.append("L")
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            ops.append("R")
        fn, sn = fn >> 1, sn >> 1
    return tuple(ops)


def consistency_ops(m: int, n: int) -> tuple[object, ...] | None:
    if not 0 < m < n:
        return None
    fn, sn, ops = m - 1, n - 1, []
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    for _ in range(consistency_proof_size(m, n) - (m & (m - 1) != 0)):
        if fn & 1 or fn == sn:
            ops.append("B")
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            ops.append("R")
        fn, sn = fn >> 1, sn >> 1
    return (m & (m - 1) == 0, tuple(ops))


LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(200)]
TREE = MerkleTree(LEAVES)


def _rejects(verify: Callable[..., None], *args: object) -> bool:
    try:
        verify(*args)
    except ProofError:
        return True
    return False


def _flip(value: bytes, bit: int = 0) -> bytes:
    return bytes([value[0] ^ (1 << bit)]) + value[1:]


# --- known answers ----------------------------------------------------------------------------


def test_hashes_of_the_8_leaf_tree() -> None:
    assert ROOTS[0] == EMPTY_ROOT
    assert [leaf_hash(e) for e in LEAF_INPUTS] == NODE_HASHES[0]
    for level in range(1, 4):
        below = NODE_HASHES[level - 1]
        assert [node_hash(below[2 * i], below[2 * i + 1]) for i in range(len(below) // 2)] == (
            NODE_HASHES[level]
        )
    tree = MerkleTree()
    assert tree.root() == ROOTS[0]
    for n, entry in enumerate(LEAF_INPUTS, start=1):
        assert tree.append(leaf_hash(entry)) == n - 1
        assert tree.root() == ROOTS[n]
    for n in range(9):
        assert tree.root(n) == ROOTS[n]
        assert tree_root(NODE_HASHES[0][:n]) == ROOTS[n]
        assert ref_mth(NODE_HASHES[0][:n]) == ROOTS[n]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_PROOFS)
def test_inclusion_proofs_of_transparency_dev(index: int, size: int, proof: list[bytes]) -> None:
    tree = _tree8()
    assert tree.inclusion_proof(index, size) == proof
    verify_inclusion(NODE_HASHES[0][index], index, size, proof, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_PROOFS)
def test_consistency_proofs_of_transparency_dev(old: int, new: int, proof: list[bytes]) -> None:
    tree = _tree8()
    assert tree.consistency_proof(old, new) == proof
    verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


def test_transparency_dev_happy_path_probe_in_base64() -> None:
    # testdata/inclusion/1/happy-path.json, as the probe files spell it.
    b64 = base64.b64decode
    verify_inclusion(
        b64("bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0="),
        0,
        8,
        [
            b64("lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c="),
            b64("Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4="),
            b64("a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ="),
        ],
        b64("XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg="),
    )


def _inclusion_corruptions(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> list[tuple[str, tuple[bytes, int, int, list[bytes], bytes]]]:
    """The corrupted probes transparency-dev generates (cmd/proofgen) for one proof."""
    probes = [
        ("index - 1", (leaf, index - 1, size, proof, root)),
        ("index + 1", (leaf, index + 1, size, proof, root)),
        ("index ^ 2", (leaf, index ^ 2, size, proof, root)),
        ("size * 2", (leaf, index, size * 2, proof, root)),
        ("size // 2", (leaf, index, size // 2, proof, root)),
        ("wrong leaf", (leaf_hash(b"WrongLeaf"), index, size, proof, root)),
        ("empty root", (leaf, index, size, proof, EMPTY_ROOT)),
        ("random root", (leaf, index, size, proof, SOME_HASH)),
        ("trailing garbage", (leaf, index, size, [*proof, b""], root)),
        ("trailing root", (leaf, index, size, [*proof, root], root)),
        ("preceding garbage", (leaf, index, size, [b"", *proof], root)),
        ("preceding root", (leaf, index, size, [root, *proof], root)),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = _flip(bad[i], 3)
        probes.append((f"proof[{i}] bit 3", (leaf, index, size, bad, root)))
    if proof:
        probes.append(("removed component", (leaf, index, size, proof[:-1], root)))
        for i in range(len(proof) + 1):
            probes.append(
                (f"inserted at {i}", (leaf, index, size, [*proof[:i], SOME_HASH, *proof[i:]], root))
            )
    return probes


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_PROOFS)
def test_corrupted_inclusion_probes_fail(index: int, size: int, proof: list[bytes]) -> None:
    leaf = NODE_HASHES[0][index]
    probes = _inclusion_corruptions(index, size, proof, ROOTS[size], leaf)
    assert [what for what, args in probes if not _rejects(verify_inclusion, *args)] == []


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_PROOFS[1:])
def test_corrupted_consistency_probes_fail(old: int, new: int, proof: list[bytes]) -> None:
    r1, r2 = ROOTS[old], ROOTS[new]
    probes: list[tuple[str, tuple[int, int, bytes, bytes, list[bytes]]]] = [
        ("old - 1", (old - 1, new, r1, r2, proof)),
        ("old + 1", (old + 1, new, r1, r2, proof)),
        ("old ^ 2", (old ^ 2, new, r1, r2, proof)),
        ("new * 2", (old, new * 2, r1, r2, proof)),
        ("new // 2", (old, new // 2, r1, r2, proof)),
        ("wrong old root", (old, new, SOME_HASH, r2, proof)),
        ("wrong new root", (old, new, r1, SOME_HASH, proof)),
        ("swapped roots", (old, new, r2, r1, proof)),
        ("empty proof", (old, new, r1, r2, [])),
        ("truncated", (old, new, r1, r2, proof[:-1])),
        ("trailing garbage", (old, new, r1, r2, [*proof, b""])),
        ("trailing root1", (old, new, r1, r2, [*proof, r1])),
        ("trailing root2", (old, new, r1, r2, [*proof, r2])),
        ("preceding garbage", (old, new, r1, r2, [b"", *proof])),
        ("preceding root1", (old, new, r1, r2, [r1, *proof])),
        ("preceding root2", (old, new, r1, r2, [r2, *proof])),
        ("preceding proof[0]", (old, new, r1, r2, [proof[0], *proof])),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = _flip(bad[i], 4)
        probes.append((f"proof[{i}] bit 4", (old, new, r1, r2, bad)))
    assert [what for what, args in probes if not _rejects(verify_consistency, *args)] == []


def test_golden_roots_of_large_trees() -> None:
    tree = MerkleTree(leaf_hash(bytes([i & 0xFF, (i >> 8) & 0xFF])) for i in range(65535))
    for size, root in GOLDEN_ROOTS.items():
        assert base64.b64encode(tree.root(size)).decode() == root, size
    # Proofs deep inside a large tree verify against those roots.
    for index, size in [(0, 65535), (65534, 65535), (4095, 4096), (777, 10000), (9999, 10000)]:
        proof = tree.inclusion_proof(index, size)
        verify_inclusion(tree.leaf(index), index, size, proof, tree.root(size))
    for old, new in [(1, 65535), (4095, 4096), (4096, 65535), (10000, 65535), (255, 1000)]:
        verify_consistency(
            old, new, tree.root(old), tree.root(new), tree.consistency_proof(old, new)
        )


# --- edge cases -------------------------------------------------------------------------------


def test_inclusion_edge_cases() -> None:
    leaf = leaf_hash(b"only")
    verify_inclusion(leaf, 0, 1, [], leaf)  # a one-leaf tree's root is its leaf hash
    with pytest.raises(ProofError, match="out of range for a tree of size 0"):
        verify_inclusion(leaf, 0, 0, [], EMPTY_ROOT)
    with pytest.raises(ProofError, match="out of range for a tree of size 1"):
        verify_inclusion(leaf, 1, 1, [], leaf)
    with pytest.raises(ProofError, match="out of range"):
        verify_inclusion(leaf, -1, 1, [], leaf)
    with pytest.raises(ProofError, match="has 1 hashes, it must have 0"):
        verify_inclusion(leaf, 0, 1, [leaf], leaf)
    with pytest.raises(ProofError, match="leaf hash is not a 32-byte"):
        verify_inclusion(b"", 0, 1, [], leaf)
    with pytest.raises(ProofError, match="root is not a 32-byte"):
        verify_inclusion(leaf, 0, 1, [], leaf.hex().encode())
    with pytest.raises(ProofError, match="inclusion proof element 0 is not a 32-byte"):
        root_from_inclusion(leaf, 0, 2, [b"x" * 31])
    with pytest.raises(ProofError, match=r"leads to root [0-9a-f]{64}, not the given root"):
        verify_inclusion(leaf, 0, 1, [], SOME_HASH)


def test_consistency_edge_cases() -> None:
    a, b = LEAVES[0], LEAVES[1]
    verify_consistency(1, 1, a, a, [])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 5, EMPTY_ROOT, TREE.root(5), [])  # the empty tree prefixes all trees
    with pytest.raises(ProofError, match="the log has forked"):
        verify_consistency(1, 1, a, b, [])
    with pytest.raises(ProofError, match="has 1 hashes, it must have 0"):
        verify_consistency(1, 1, a, a, [a])
    with pytest.raises(ProofError, match="has 1 hashes, it must have 0"):
        verify_consistency(0, 1, EMPTY_ROOT, a, [EMPTY_ROOT])  # "useless" probe of transparency-dev
    with pytest.raises(ProofError, match="not the root of the empty tree"):
        verify_consistency(0, 1, a, a, [])
    with pytest.raises(ProofError, match="not the root of the empty tree"):
        verify_consistency(0, 0, EMPTY_ROOT, a, [])
    with pytest.raises(ProofError, match="a log never shrinks"):
        verify_consistency(2, 1, a, b, [])
    with pytest.raises(ProofError, match="has 0 hashes, it must have 1"):
        verify_consistency(1, 2, a, node_hash(a, b), [])
    with pytest.raises(ProofError, match="new root is not a 32-byte"):
        verify_consistency(1, 1, a, b"don't care 2", [])  # transparency-dev accepts this one
    with pytest.raises(ProofError, match="not a tree size"):
        verify_consistency(-1, 1, a, a, [])
    # From an old size that is a power of two the old root seeds the path, so only the new root
    # can come out wrong; from other sizes the proof recomputes the old root too.
    with pytest.raises(ProofError, match="leads to old root"):
        verify_consistency(3, 4, _flip(TREE.root(3)), TREE.root(4), TREE.consistency_proof(3, 4))
    with pytest.raises(ProofError, match="leads to new root"):
        verify_consistency(1, 2, a, node_hash(b, a), [b])


def test_tree_rejects_bad_requests() -> None:
    tree = MerkleTree(LEAVES[:5])
    with pytest.raises(ProofError, match="larger than the tree"):
        tree.root(6)
    with pytest.raises(ProofError, match="no such leaf"):
        tree.inclusion_proof(5)
    with pytest.raises(ProofError, match="no such leaf"):
        tree.inclusion_proof(3, 3)
    with pytest.raises(ProofError, match="old_size <= new_size"):
        tree.consistency_proof(4, 3)
    with pytest.raises(ProofError, match="larger than the tree"):
        tree.consistency_proof(4, 6)
    with pytest.raises(ProofError, match="leaf hash 5 is not a 32-byte"):
        tree.append(b"short")
    with pytest.raises(ProofError, match="leaf hash 6 is not a 32-byte"):
        tree.extend([LEAVES[5], "nope"])  # type: ignore[list-item]
    assert tree.size == 5  # a rejected batch appends nothing
    with pytest.raises(ProofError, match="out of range"):
        tree.leaf(5)
    assert tree.consistency_proof(0) == []
    assert tree.consistency_proof(5) == []


def test_size_is_not_bound_by_an_inclusion_proof() -> None:
    # RFC 6962 inclusion proofs of leaf 0 in trees of 3 and 4 leaves have the same shape, so
    # the proof for size 3 also "verifies" as size 4 against the size-3 root. The size must
    # come from a signed checkpoint, never from whoever sends the proof (see the module doc).
    proof = TREE.inclusion_proof(0, 3)
    verify_inclusion(LEAVES[0], 0, 4, proof, TREE.root(3))
    assert inclusion_ops(0, 3) == inclusion_ops(0, 4)


# --- properties -------------------------------------------------------------------------------


@given(st.lists(st.binary(max_size=8), max_size=70))
def test_tree_root_is_the_rfc_mth_and_merkle_root(entries: list[bytes]) -> None:
    hashes = [leaf_hash(e) for e in entries]
    root = tree_root(hashes)
    assert root == ref_mth(hashes)
    assert root == MerkleTree(hashes).root()
    # traces._merkle carries odd nodes up a level, which builds the same tree as RFC 9162.
    assert merkle_root(entries) == "sha256:" + root.hex()


@given(st.lists(st.integers(min_value=0, max_value=40), max_size=8))
def test_append_and_extend_build_the_same_tree(chunks: list[int]) -> None:
    one_by_one, batched, start = MerkleTree(), MerkleTree(), 0
    for chunk in chunks:
        batch = LEAVES[start : start + chunk]
        for h in batch:
            one_by_one.append(h)
        batched.extend(batch)
        start += chunk
        assert batched.root() == one_by_one.root() == tree_root(LEAVES[:start])
    assert batched._levels == one_by_one._levels


@settings(max_examples=300)
@given(st.data())
def test_every_inclusion_proof_verifies_and_tampering_fails(data: st.DataObject) -> None:
    size = data.draw(st.integers(min_value=1, max_value=len(LEAVES)), label="size")
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    root, leaf = TREE.root(size), LEAVES[index]
    proof = TREE.inclusion_proof(index, size)
    assert proof == ref_path(index, LEAVES[:size])
    assert len(proof) == inclusion_proof_size(index, size)
    verify_inclusion(leaf, index, size, proof, root)

    if proof:
        at = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="element")
        bit = data.draw(st.integers(min_value=0, max_value=7), label="bit")
        bad = list(proof)
        bad[at] = _flip(bad[at], bit)
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, size, bad, root)
    other = data.draw(st.integers(min_value=0, max_value=2 * len(LEAVES)), label="other index")
    if other != index:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, other, size, proof, root)
    new_size = data.draw(st.integers(min_value=0, max_value=2 * len(LEAVES)), label="other size")
    if inclusion_ops(index, new_size) != inclusion_ops(index, size):
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, new_size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(b"not in the tree"), index, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, index, size, proof, _flip(root, index % 8))


@settings(max_examples=300)
@given(st.data())
def test_every_consistency_proof_verifies_and_tampering_fails(data: st.DataObject) -> None:
    new = data.draw(st.integers(min_value=0, max_value=len(LEAVES)), label="new size")
    old = data.draw(st.integers(min_value=0, max_value=new), label="old size")
    old_root, new_root = TREE.root(old), TREE.root(new)
    proof = TREE.consistency_proof(old, new)
    if 0 < old < new:
        assert proof == ref_subproof(old, LEAVES[:new], True)
    assert len(proof) == consistency_proof_size(old, new)
    verify_consistency(old, new, old_root, new_root, proof)

    if proof:
        at = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="element")
        bit = data.draw(st.integers(min_value=0, max_value=7), label="bit")
        bad = list(proof)
        bad[at] = _flip(bad[at], bit)
        with pytest.raises(ProofError):
            verify_consistency(old, new, old_root, new_root, bad)
        with pytest.raises(ProofError):
            verify_consistency(old, new, old_root, new_root, proof[:-1])
    if old > 0:
        with pytest.raises(ProofError):
            verify_consistency(old, new, _flip(old_root), new_root, proof)
    if new > 0 and old < new:
        # The empty tree proves nothing about the new root; from any other size it must.
        if old > 0:
            with pytest.raises(ProofError):
                verify_consistency(old, new, old_root, _flip(new_root), proof)
        else:
            verify_consistency(old, new, old_root, _flip(new_root), proof)
    if old == new:
        with pytest.raises(ProofError):
            verify_consistency(old, new, old_root, _flip(new_root), proof)
    other_old = data.draw(st.integers(min_value=0, max_value=2 * len(LEAVES)), label="other old")
    other_new = data.draw(st.integers(min_value=0, max_value=2 * len(LEAVES)), label="other new")
    for m, n in [(other_old, new), (old, other_new)]:
        if (m, n) == (old, new) or (
            consistency_ops(m, n) is not None and consistency_ops(m, n) == consistency_ops(old, new)
        ):
            continue
        if m == 0 and old == 0 and (n > 0 or new == 0):
            continue  # from the empty tree, every size is consistent with an empty proof
        with pytest.raises(ProofError):
            verify_consistency(m, n, old_root, new_root, proof)


@given(st.integers(min_value=1, max_value=len(LEAVES)), st.integers(min_value=0, max_value=7))
def test_consistent_trees_of_a_different_log_fail(new: int, flip_leaf: int) -> None:
    # A log that rewrote one leaf below the old size cannot prove it only grew.
    old = max(1, new // 2)
    forged = list(LEAVES[:new])
    forged[flip_leaf % old] = leaf_hash(b"rewritten")
    forged_tree = MerkleTree(forged)
    if old == new:
        with pytest.raises(ProofError):
            verify_consistency(old, new, TREE.root(old), forged_tree.root(new), [])
        return
    with pytest.raises(ProofError):
        verify_consistency(
            old, new, TREE.root(old), forged_tree.root(new), forged_tree.consistency_proof(old)
        )
