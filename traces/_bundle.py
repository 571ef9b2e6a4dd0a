"""Evidence bundles (``.orchpack``, format ``orch.pack/1``): one run, checkable with no store.

A bundle is an uncompressed POSIX ustar archive in one canonical encoding (every byte fixed by
its contents, see ``docs/formats.md``): the manifest ``orchpack.json`` first, then the other
members sorted by name:

* ``checkpoint.note``: a signed checkpoint of the store's ledger that covers the run's last
  ledger entry (C2SP signed note);
* ``consistency.json`` (only when the exporter was given the checkpoint an auditor kept): the
  RFC 9162 consistency proof from that checkpoint's tree to the bundle's;
* ``events.jsonl``: the run's event log as stored, one line each, each ending in a newline;
* ``head.json``: the run head as stored;
* ``ledger/<index>.entry`` and ``ledger/<index>.proof``: each ledger entry that names the run
  (its exact bytes) and its RFC 9162 inclusion proof in the checkpoint's tree;
* ``objects/<64 hex>``: every artifact the run references, named by its SHA-256.

Verifying (:func:`verify_bundle`) reads the archive strictly, re-encodes what it read and
compares byte for byte, so a flipped byte anywhere is named (a member's header field, its
data, the tar padding after it, the end-of-archive blocks); then it loads the objects into a
:class:`~traces._store.MemoryStore` and runs :func:`traces._verify.verify_run` on it against the
bundle's ledger entries, and checks every inclusion proof, the checkpoint's signatures and,
with ``since``, the consistency proof from the checkpoint the auditor kept.

This module must never import, execute or unpickle anything it reads (a bundle's pipeline
source files are bytes to hash, nothing more), never write outside the store it exports from
(and only a checkpoint, when asked to sign one), and never trust a size or root that the
signed checkpoint does not vouch for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from ._canonical import canonical_bytes, digest, is_key
from ._evidence import (
    check_kept_checkpoint,
    check_tree_checkpoint,
    checkpoint_of,
    hex_hashes,
    run_artifacts,
    strict_object,
    trust_findings,
    unhex,
)
from ._ledger import ORIGIN_PREFIX, ledger_of
from ._ledger_entries import LedgerEntry, SealEntry, parse_entry
from ._note import Checkpoint, Verifier, open_checkpoint
from ._records import RunHead
from ._store import ArtifactStore, MemoryStore, check_run_id
from ._tlog import MerkleTree, leaf_hash, root_from_inclusion
from ._ustar import (
    BLOCK,
    MAX_MEMBER_SIZE,
    Part,
    encode_tar,
    first_difference,
    member_name_problem,
    padding,
    part_at,
    tar_layout,
)
from ._verify import Problem, VerifyReport, verify_run
from ._verify_ledger import LedgerView
from .errors import EvidenceError, NoteError, ProofError, RunNotFoundError

__all__ = [
    "BUNDLE_FORMAT",
    "MANIFEST_NAME",
    "BundleManifest",
    "MemberInfo",
    "bundle_layout",
    "export_bundle",
    "is_bundle",
    "open_bundle",
    "verify_bundle",
]

BUNDLE_FORMAT: Final = "orch.pack/1"
MANIFEST_NAME: Final = "orchpack.json"

_ENTRY_RE = re.compile(r"ledger/([0-9]{20})\.(entry|proof)")
_OBJECT_RE = re.compile(r"objects/([0-9a-f]{64})")
_FIXED_MEMBERS = ("checkpoint.note", "consistency.json", "events.jsonl", "head.json")

# -- the manifest ----------------------------------------------------------------------------

_FROZEN = ConfigDict(frozen=True, extra="forbid", strict=True)


class MemberInfo(BaseModel):
    """What the manifest says of one member."""

    model_config = _FROZEN
    sha256: str
    """``sha256:<hex>`` of the member's bytes."""
    size: int
    """Its length in bytes."""


class BundleManifest(BaseModel):
    """``orchpack.json``: what the bundle holds (canonical JSON, the archive's first member)."""

    model_config = _FROZEN
    format: Literal["orch.pack/1"]
    run: str
    root_hash: str | None
    """The run's root hash (None for a run that never finished)."""
    origin: str
    """The store's ledger origin ``orch/store/<id>``: whose checkpoint the bundle carries."""
    orch_version: str
    """The version of orch that wrote the bundle (information only)."""
    members: dict[str, MemberInfo]
    """Every other member by name (sorted, as canonical JSON sorts keys)."""
    hash: str
    """``sha256:`` of the canonical JSON of this manifest without ``hash``: it finds damage
    to the manifest itself (it proves nothing: the checkpoint's signature does that)."""

    @staticmethod
    def body_hash(body: dict[str, Any]) -> str:
        """The manifest hash of ``body`` (a manifest as JSON data, with or without ``hash``)."""
        return digest(canonical_bytes({k: v for k, v in body.items() if k != "hash"}))


# -- exporting -------------------------------------------------------------------------------


def _entry_member(index: int, suffix: str) -> str:
    return f"ledger/{index:020d}.{suffix}"


def export_bundle(
    store: ArtifactStore,
    run_id: str,
    *,
    checkpoint: bytes,
    orch_version: str,
    since: bytes | None = None,
) -> bytes:
    """The bundle of run ``run_id`` of ``store`` (exact id) with ``checkpoint`` (a signed
    checkpoint of its ledger covering the run's last entry, see :func:`choose_checkpoint`),
    and with ``since`` (a checkpoint an auditor kept) a consistency proof from it. The same
    run, checkpoint and ``since`` give the same bytes. Raises :class:`EvidenceError` for a
    run that cannot be bundled (not in the ledger, not intact) and
    :class:`~traces.errors.RunNotFoundError` for an unknown run."""
    head_raw = store.read_run_head(check_run_id(run_id))
    if head_raw is None:
        raise RunNotFoundError(f"no run {run_id!r} in store {store.location}")
    ledger = ledger_of(store)
    if not store.supports_ledger or store.ledger_size() == 0:
        raise EvidenceError(
            f"store {store.location} keeps no ledger, so run {run_id} cannot be bundled with "
            "proof that it was logged; fix: record the run in a store with a ledger"
        )
    entries = ledger.run_entries(run_id)
    if not entries:
        raise EvidenceError(
            f"run {run_id} is not in the ledger of store {store.location} (it was made before "
            "the store kept one, or it is still starting); fix: bundle a run recorded since"
        )
    report = verify_run(store, run_id)
    if not report.ok:
        first = report.problems[0]
        raise EvidenceError(
            f"run {run_id} does not verify ({len(report.problems)} problem(s); first: "
            f"{first.subject}: {first.detail}); fix: see 'orch verify {run_id}'"
        )
    origin = ledger.origin()
    tree = ledger.tree()
    cp = checkpoint_of(checkpoint, "the checkpoint to bundle")
    check_tree_checkpoint(tree, cp, origin, "the checkpoint to bundle")
    if cp.size <= entries[-1][0]:
        raise EvidenceError(
            f"the checkpoint to bundle covers {cp.size} ledger entries, but run {run_id}'s "
            f"last entry is #{entries[-1][0]}; fix: sign a newer checkpoint"
        )
    head = RunHead.model_validate_json(head_raw)
    lines = store.read_events(run_id)
    events = [orjson.loads(line) for line in lines[: report.checked.get("events", 0)]]
    seals = [e for _, e in _parsed(entries) if isinstance(e, SealEntry)]
    roots = [r for r in [head.root_hash, *(s.root_hash for s in seals)] if r is not None]
    members: dict[str, bytes] = {
        "checkpoint.note": checkpoint,
        "events.jsonl": b"".join(line + b"\n" for line in lines),
        "head.json": head_raw,
    }
    for index, data in entries:
        members[_entry_member(index, "entry")] = data
        members[_entry_member(index, "proof")] = canonical_bytes(
            {
                "inclusion_path": hex_hashes(tree.inclusion_proof(index, cp.size)),
                "leaf_index": index,
                "tree_size": cp.size,
            }
        )
    for key in run_artifacts(store, head, events, roots, strict=True):
        members["objects/" + key.removeprefix("sha256:")] = store.get(key)
    if since is not None:
        old = checkpoint_of(since, "the checkpoint you kept")
        check_tree_checkpoint(tree, old, origin, "the checkpoint you kept")
        if old.size > cp.size:
            raise EvidenceError(
                f"the checkpoint you kept covers {old.size} entries, more than the bundle's "
                f"({cp.size}); fix: bundle with a newer checkpoint (sign one with --key)"
            )
        members["consistency.json"] = canonical_bytes(
            {
                "consistency_path": hex_hashes(tree.consistency_proof(old.size, cp.size)),
                "tree_size_1": old.size,
                "tree_size_2": cp.size,
            }
        )
    body: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "members": {
            name: {"sha256": digest(data), "size": len(data)}
            for name, data in sorted(members.items())
        },
        "orch_version": orch_version,
        "origin": origin,
        "root_hash": report.root_hash,
        "run": run_id,
    }
    body["hash"] = BundleManifest.body_hash(body)
    manifest = canonical_bytes(body)
    return encode_tar([(MANIFEST_NAME, manifest), *sorted(members.items())])


def _parsed(entries: Iterable[tuple[int, bytes]]) -> list[tuple[int, LedgerEntry]]:
    return [(index, parse_entry(data)) for index, data in entries]


# -- reading ---------------------------------------------------------------------------------


def is_bundle(data: bytes) -> bool:
    """Whether ``data`` is meant as a bundle (damaged or not): two of its three marks, the
    first member's name, the ustar magic and the manifest's format, are where they belong (a
    flipped byte can erase one of them, never two)."""
    marks = [
        data[:14] == MANIFEST_NAME.encode() + b"\0",
        data[257:265] == b"ustar\x0000",
        b'"format":"orch.pack/1"' in data[BLOCK : 64 * BLOCK],
    ]
    return sum(marks) >= 2


def bundle_layout(data: bytes) -> list[Part]:
    """Every byte range of an intact bundle, named as verification names it (for tools and
    tests that want to know what a byte of the file is)."""
    raw = _manifest_bytes(data)
    if isinstance(raw, str):
        raise EvidenceError(f"not a readable bundle: {raw}")
    manifest = BundleManifest.model_validate_json(raw)
    return tar_layout(
        [(MANIFEST_NAME, len(raw)), *((n, i.size) for n, i in manifest.members.items())]
    )


@dataclass
class _Findings:
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    def problem(self, kind: str, subject: str, detail: str) -> None:
        self.problems.append(Problem(kind=kind, subject=subject, detail=detail))

    def count(self, what: str, n: int = 1) -> None:
        self.checked[what] = self.checked.get(what, 0) + n


def _manifest_bytes(data: bytes) -> bytes | str:
    """The manifest's bytes, found by where its JSON ends (so that a damaged header cannot
    misplace it), or why they cannot be found."""
    if len(data) < BLOCK:
        return f"the file has {len(data)} bytes: not even one tar header"
    nul = data.find(b"\0", BLOCK)
    # latin-1 maps each byte to one character: the JSON's end in characters is its length in
    # bytes; the manifest itself is parsed strictly (UTF-8) afterwards.
    text = data[BLOCK : len(data) if nul < 0 else nul].decode("latin-1")
    try:
        _, end = json.JSONDecoder().raw_decode(text)
    except ValueError as exc:
        return f"not a JSON object ({exc})"
    return data[BLOCK : BLOCK + end]


def _read_manifest(raw: bytes, f: _Findings) -> BundleManifest | None:
    subject = f"member {MANIFEST_NAME!r} (data)"
    try:
        value = orjson.loads(raw)
        manifest = BundleManifest.model_validate(value)
    except orjson.JSONDecodeError as exc:
        f.problem("bundle", subject, f"not valid JSON: {exc}")
        return None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        f.problem("bundle", subject, f"not an {BUNDLE_FORMAT} manifest: {where}: {err['msg']}")
        return None
    if canonical_bytes(value) != raw:
        f.problem(
            "bundle", subject, "not in canonical form (sorted keys, no spaces): it was edited"
        )
        return None
    actual = BundleManifest.body_hash(value)
    if actual != manifest.hash:
        f.problem(
            "bundle",
            subject,
            f"its contents hash to {actual}, not to its recorded hash {manifest.hash}: the "
            "manifest was altered",
        )
        return None
    for name, info in manifest.members.items():
        problem = member_name_problem(name)
        if problem is None and not (
            name in _FIXED_MEMBERS or _ENTRY_RE.fullmatch(name) or _OBJECT_RE.fullmatch(name)
        ):
            problem = f"{name!r} is not a member of an {BUNDLE_FORMAT} bundle"
        if problem is None and (not is_key(info.sha256) or not 0 <= info.size <= MAX_MEMBER_SIZE):
            problem = f"member {name!r} has no valid sha256 and size"
        if problem is not None:
            f.problem("bundle", subject, problem)
            return None
    return manifest


def _read_archive(data: bytes, f: _Findings) -> tuple[BundleManifest, dict[str, bytes]] | None:
    """The manifest and every member's bytes, with a finding for each part of the archive
    that is not exactly what its canonical encoding would be."""
    raw = _manifest_bytes(data)
    if isinstance(raw, str):
        f.problem("bundle", f"member {MANIFEST_NAME!r} (data)", raw)
        return None
    manifest = _read_manifest(raw, f)
    if manifest is None:
        return None
    # The manifest is intact (its own hash says so): it fixes every member's place and size,
    # so each byte of the file has one expected value and one name.
    sizes = [(MANIFEST_NAME, len(raw)), *((n, i.size) for n, i in manifest.members.items())]
    layout = tar_layout(sizes)
    members: dict[str, bytes] = {}
    read: list[tuple[str, bytes]] = []
    offset = 0
    for name, size in sizes:
        chunk = data[offset + BLOCK : offset + BLOCK + size]
        offset += BLOCK + size + padding(size)
        read.append((name, chunk))
        if name == MANIFEST_NAME:
            continue
        members[name] = chunk
        want = manifest.members[name].sha256
        if len(chunk) == size and digest(chunk) != want:
            f.problem(
                "bundle",
                f"member {name!r} (data)",
                f"its bytes hash to {digest(chunk)}, the manifest lists {want}: the member was "
                "altered",
            )
    expected = encode_tar(read)
    if len(data) < len(expected):
        f.problem(
            "bundle",
            part_at(layout, len(data)),
            f"the file ends at byte {len(data)}, inside this part; the archive has "
            f"{len(expected)} bytes: it was cut short",
        )
    elif len(data) > len(expected):
        f.problem(
            "bundle",
            "data after the end-of-archive blocks",
            f"{len(data) - len(expected)} byte(s) follow the end of the archive: something "
            "was appended",
        )
    reported: set[str] = set()
    limit = min(len(data), len(expected))
    pos = first_difference(data, expected, 0, limit)
    while pos is not None:
        part = part_at(layout, pos)
        if part not in reported:
            reported.add(part)
            f.problem(
                "bundle",
                part,
                f"byte {pos} is 0x{data[pos]:02x}, the canonical encoding has "
                f"0x{expected[pos]:02x}: the archive was altered",
            )
        end = (
            next(p.end for p in layout if p.start <= pos < p.end)
            if part != "data after the end-of-archive blocks"
            else limit
        )
        pos = first_difference(data, expected, end, limit)
    f.count("members", len(sizes))
    return manifest, members


# -- verifying -------------------------------------------------------------------------------


def verify_bundle(
    data: bytes,
    trusted: Sequence[Verifier] = (),
    since: bytes | None = None,
    *,
    require_trusted: bool | None = None,
) -> VerifyReport:
    """Verify a bundle with no store: its encoding, the run in it (:func:`verify_run`), the
    ledger entries' inclusion proofs, the checkpoint's signatures (``trusted``: the keys whose
    signatures count) and, with ``since`` (a checkpoint the auditor kept), that the log only
    grew since. A checkpoint signed by none of ``trusted`` is a problem when
    ``require_trusted`` (default: when keys were given), else a warning naming its signers.
    Every finding is a :class:`~traces._verify.Problem` naming the part; raises
    :class:`EvidenceError` only when ``data`` is not meant as a bundle (:func:`is_bundle`)."""
    if not is_bundle(data):
        raise EvidenceError(
            f"not an {BUNDLE_FORMAT} bundle: it does not start with a ustar header of "
            f"{MANIFEST_NAME!r}; fix: give a file written by 'orch export'"
        )
    f = _Findings()
    report = VerifyReport(run_id=None, status="unknown")
    read = _read_archive(data, f)
    if read is not None:
        manifest, members = read
        report.run_id = manifest.run
        required = bool(trusted) if require_trusted is None else require_trusted
        _verify_contents(manifest, members, (trusted, required), since, f, report)
    report.problems = f.problems
    report.warnings = f.warnings + report.warnings
    report.checked = dict(sorted({**report.checked, **f.checked}.items()))
    return report


def _verify_contents(
    manifest: BundleManifest,
    members: dict[str, bytes],
    trust: tuple[Sequence[Verifier], bool],
    since: bytes | None,
    f: _Findings,
    report: VerifyReport,
) -> None:
    run = manifest.run
    try:
        check_run_id(run)
    except ValueError:
        f.problem(
            "bundle", f"member {MANIFEST_NAME!r} (data)", f"run id {run!r} is not a valid run id"
        )
        return
    for name in ("checkpoint.note", "events.jsonl", "head.json"):
        if name not in members:
            f.problem("bundle", f"member {name!r}", "is missing: every bundle has one")
    if "head.json" not in members or "checkpoint.note" not in members:
        return
    trusted = trust[0]
    checkpoint = _verify_checkpoint(members["checkpoint.note"], manifest, trust, f)
    view = _ledger_view(manifest, members, checkpoint, f)
    consistency = _consistency(members.get("consistency.json"), checkpoint, f)
    if since is not None and checkpoint is not None:
        if check_kept_checkpoint(
            since,
            checkpoint,
            consistency,
            trusted,
            f.problem,
            f.warnings.append,
            proof_required=True,
        ):
            f.count("kept checkpoints")
    elif consistency is not None:
        f.warnings.append(
            f"the bundle carries a consistency proof from ledger size {consistency[0]}; pass "
            "--since with the checkpoint you kept to check that the store only grew since"
        )

    store, objects = _run_store(run, members, f)
    try:
        sub = verify_run(store, run, ledger=view)
    except RunNotFoundError:  # pragma: no cover - the head was written above
        return
    for p in sub.problems:
        f.problems.append(p)
    f.warnings.extend(sub.warnings)
    report.status, report.complete, report.root_hash = sub.status, sub.complete, sub.root_hash
    report.checked = dict(sub.checked)
    if sub.root_hash != manifest.root_hash:
        f.problem(
            "bundle",
            f"member {MANIFEST_NAME!r} (data)",
            f"names root hash {manifest.root_hash}, the run's is {sub.root_hash}",
        )
    _check_referenced(store, run, objects, view, f)


def _run_store(run: str, members: dict[str, bytes], f: _Findings) -> tuple[MemoryStore, list[str]]:
    """The bundle's run as a store in memory: its objects, head and log."""
    store = MemoryStore()
    objects: list[str] = []
    for name, data in members.items():
        match = _OBJECT_RE.fullmatch(name)
        if match:
            key = "sha256:" + match.group(1)
            # Stored under its name as it is: a mismatch is then reported by verify_run,
            # naming the artifact and what referenced it.
            store._write_blob(key, data)
            objects.append(key)
    store.write_run_head(run, members["head.json"])
    events = members.get("events.jsonl", b"")
    if events and not events.endswith(b"\n"):
        f.problem(
            "bundle",
            "member 'events.jsonl' (data)",
            "does not end in a newline: it was cut or edited",
        )
    for line in events[:-1].split(b"\n") if events else []:
        store.append_event(run, line)
    return store, objects


def open_bundle(data: bytes) -> tuple[str, MemoryStore]:
    """The run a bundle holds, as a store in memory (to replay it), once the whole bundle
    verified (:func:`verify_bundle`, with no key trusted: a replay checks the record, not who
    signed it). A bundle with a problem raises :class:`EvidenceError` naming the first."""
    report = verify_bundle(data)
    if report.problems:
        first = report.problems[0]
        raise EvidenceError(
            f"the bundle does not verify ({len(report.problems)} problem(s), the first: "
            f"{first.subject}: {first.detail}); fix: check it with 'orch verify FILE'"
        )
    f = _Findings()
    read = _read_archive(data, f)
    assert read is not None and report.run_id is not None  # it verified just now
    store, _ = _run_store(report.run_id, read[1], f)
    return report.run_id, store


def _verify_checkpoint(
    note: bytes, manifest: BundleManifest, trust: tuple[Sequence[Verifier], bool], f: _Findings
) -> Checkpoint | None:
    trusted, required = trust
    subject = "member 'checkpoint.note'"
    try:
        checkpoint, opened = open_checkpoint(note, trusted)
    except NoteError as exc:
        f.problem("checkpoint", subject, f"not a valid signed checkpoint: {exc}")
        return None
    if checkpoint.origin != manifest.origin or not manifest.origin.startswith(ORIGIN_PREFIX):
        f.problem(
            "checkpoint",
            subject,
            f"is a checkpoint of {checkpoint.origin!r}, the manifest names the store's log "
            f"{manifest.origin!r}",
        )
        return None
    trust_findings(opened, trusted, subject, f.problem, f.warnings.append, required=required)
    f.count("checkpoints")
    return checkpoint


def _ledger_view(
    manifest: BundleManifest,
    members: dict[str, bytes],
    checkpoint: Checkpoint | None,
    f: _Findings,
) -> LedgerView:
    """The bundle's ledger entries as the view :func:`verify_run` checks a run against, each
    entry's inclusion proof checked against the checkpoint."""
    indexes = sorted({int(m.group(1)) for n in members if (m := _ENTRY_RE.fullmatch(n))})
    parsed: list[tuple[int, LedgerEntry]] = []
    for index in indexes:
        entry_name, proof_name = _entry_member(index, "entry"), _entry_member(index, "proof")
        for name in (entry_name, proof_name):
            if name not in members:
                f.problem(
                    "bundle",
                    f"member {name!r}",
                    "is missing: each ledger entry comes with its proof",
                )
        if entry_name not in members:
            continue
        data = members[entry_name]
        try:
            entry = parse_entry(data)
        except ValueError as exc:
            f.problem(
                "ledger",
                f"member {entry_name!r} (data)",
                f"not a ledger entry: {str(exc).splitlines()[0]}",
            )
            continue
        if getattr(entry, "run", None) != manifest.run:
            f.problem(
                "ledger", f"member {entry_name!r} (data)", f"does not name run {manifest.run}"
            )
            continue
        parsed.append((index, entry))
        f.count("ledger entries")
        if checkpoint is not None and proof_name in members:
            _check_inclusion(data, index, members[proof_name], proof_name, checkpoint, f)
    if not parsed:
        f.problem(
            "bundle", "ledger entries", f"the bundle holds no ledger entry of run {manifest.run}"
        )
    store_id = manifest.origin.removeprefix(ORIGIN_PREFIX)
    return LedgerView(
        size=checkpoint.size if checkpoint is not None else 0,
        tree=MerkleTree(),
        entries=[(i, e) for i, e in parsed],
        by_run={manifest.run: parsed} if parsed else {},
        store_id=store_id,
        complete=False,
    )


def _check_inclusion(
    entry: bytes, index: int, raw: bytes, name: str, checkpoint: Checkpoint, f: _Findings
) -> None:
    subject = f"member {name!r} (data)"
    try:
        value = strict_object(raw, ("inclusion_path", "leaf_index", "tree_size"))
        path = unhex(value["inclusion_path"], "inclusion_path")
    except ValueError as exc:
        f.problem("ledger", subject, f"not an inclusion proof: {exc}")
        return
    if value["leaf_index"] != index or value["tree_size"] != checkpoint.size:
        f.problem(
            "ledger",
            subject,
            f"proves leaf {value['leaf_index']!r} in a tree of {value['tree_size']!r}, not entry "
            f"#{index} in the checkpoint's {checkpoint.size}",
        )
        return
    try:
        root = root_from_inclusion(leaf_hash(entry), index, checkpoint.size, path)
    except ProofError as exc:
        f.problem("ledger", subject, str(exc))
        return
    if root != checkpoint.root:
        f.problem(
            "ledger",
            f"ledger entry #{index}",
            f"its inclusion proof leads to root {root.hex()}, not the checkpoint's "
            f"{checkpoint.root.hex()}: the entry or its proof was altered, or the store's log "
            "does not hold it",
        )
        return
    f.count("inclusion proofs")


def _consistency(
    raw: bytes | None, checkpoint: Checkpoint | None, f: _Findings
) -> tuple[int, list[bytes]] | None:
    if raw is None or checkpoint is None:
        return None
    subject = "member 'consistency.json' (data)"
    try:
        value = strict_object(raw, ("consistency_path", "tree_size_1", "tree_size_2"))
        proof = unhex(value["consistency_path"], "consistency_path")
    except ValueError as exc:
        f.problem("checkpoint", subject, f"not a consistency proof: {exc}")
        return None
    old, new = value["tree_size_1"], value["tree_size_2"]
    if type(old) is not int or old < 0:
        f.problem("checkpoint", subject, f"tree_size_1 {old!r} is not a tree size")
        return None
    if new != checkpoint.size:
        f.problem(
            "checkpoint", subject, f"ends at size {new!r}, the checkpoint's is {checkpoint.size}"
        )
        return None
    return old, proof


def _check_referenced(
    store: MemoryStore, run: str, objects: list[str], view: LedgerView, f: _Findings
) -> None:
    """Every object in the bundle must be one the run references: nothing rides along."""
    try:
        head = RunHead.model_validate_json(store.read_run_head(run) or b"")
    except ValidationError:
        return  # verify_run reported the head
    events: list[dict[str, Any]] = []
    for line in store.read_events(run):
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            break
        if isinstance(event, dict):
            events.append(event)
    roots = [head.root_hash] if head.root_hash else []
    roots += [e.root_hash for _, e in view.by_run.get(run, []) if isinstance(e, SealEntry)]
    referenced = set(run_artifacts(store, head, events, roots, strict=False))
    for key in objects:
        if key not in referenced:
            f.problem(
                "bundle",
                f"member 'objects/{key.removeprefix('sha256:')}'",
                "is not referenced by the run: a bundle holds the run's artifacts and nothing else",
            )
