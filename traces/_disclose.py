"""Disclosure proofs (``.orchproof``, format ``orch.disclosure/1``): one step, nothing else.

A disclosure proves that one step (or one decision of one step) belongs to a run that the
store's ledger sealed, while revealing nothing else of the run: not its run record, not the
other steps' records, not its events. It is one canonical JSON object:

* ``step``: the step record's bytes, its key, its index among the run's steps (sorted by step
  id), the number of steps, and the RFC 6962 audit path from its leaf
  (``step_leaf(step_id, key)``) to the run's ``steps_root``;
* ``seal``: the run's ``seal`` ledger entry (exact bytes), which states ``steps_root`` with
  the root hash, its index in the ledger and its RFC 9162 inclusion proof;
* ``checkpoint``: the signed checkpoint whose tree holds the seal;
* ``artifacts``: for a step, what its record references (input, output, effect records with
  their requests and responses, decisions); for a decision, that decision only;
* ``digests``: the SHA-256 of each other field and of that list, which locates accidental
  damage to one field (it proves nothing: anyone can recompute it).

Bytes are base64, proof hashes lowercase hex. :func:`verify_disclosure` checks every hash, the
audit path, the seal's run and ``steps_root``, the inclusion proof, the signatures, and that
each revealed artifact is one the step record references; a flipped byte anywhere is named
by its field. This module must never reveal more than the step's own record and what it names,
and never import or execute anything it reads.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from ._canonical import canonical_bytes, digest, is_key
from ._evidence import check_kept_checkpoint, hex_hashes, trust_findings
from ._ledger import ORIGIN_PREFIX, ledger_of
from ._ledger_entries import SealEntry, parse_entry
from ._note import Checkpoint, Verifier, open_checkpoint
from ._records import Decision, EffectRecord, RunRecord, StepRecord, step_leaf
from ._store import ArtifactStore, check_run_id
from ._tlog import MerkleTree, leaf_hash, root_from_inclusion
from ._verify import Problem, VerifyReport
from .errors import EvidenceError, NoteError, ProofError, RunNotFoundError

__all__ = [
    "DISCLOSURE_FORMAT",
    "FIELDS",
    "Disclosure",
    "disclose",
    "field_at",
    "is_disclosure",
    "parse_decision_ref",
    "seal_of",
    "verify_disclosure",
]

DISCLOSURE_FORMAT: Final = "orch.disclosure/1"

FIELDS: Final = (
    "artifacts",
    "checkpoint",
    "decision",
    "digests",
    "format",
    "kind",
    "run",
    "seal",
    "step",
)
"""The top-level fields, in the order canonical JSON writes them."""
_DIGESTED = tuple(f for f in FIELDS if f != "digests")

_FROZEN = ConfigDict(frozen=True, extra="forbid", strict=True)


class StepProof(BaseModel):
    model_config = _FROZEN
    audit_path: list[str]
    count: int
    id: str
    index: int
    key: str
    record: str


class SealProof(BaseModel):
    model_config = _FROZEN
    entry: str
    index: int
    inclusion_path: list[str]


class DecisionRef(BaseModel):
    model_config = _FROZEN
    index: int
    key: str


class Digests(BaseModel):
    model_config = _FROZEN
    fields: list[str]
    hash: str


class Disclosure(BaseModel):
    """An ``orch.disclosure/1`` document (see the module docstring)."""

    model_config = _FROZEN
    artifacts: dict[str, str]
    checkpoint: str
    decision: DecisionRef | None
    digests: Digests
    format: Literal["orch.disclosure/1"]
    kind: Literal["step", "decision"]
    run: str
    seal: SealProof
    step: StepProof


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(f"{what} is not standard base64") from None
    if _b64(raw) != text:
        raise ValueError(f"{what} is not the canonical base64 of its bytes")
    return raw


def _digests(body: dict[str, Any]) -> dict[str, Any]:
    fields = [digest(canonical_bytes(body[name])) for name in _DIGESTED]
    return {"fields": fields, "hash": digest(canonical_bytes(fields))}


def parse_decision_ref(ref: str) -> tuple[str, int]:
    """``STEP#N`` as (step id, decision index); :class:`EvidenceError` when it is not."""
    step, sep, number = ref.rpartition("#")
    if not sep or not step or not number.isdigit() or (number != "0" and number[0] == "0"):
        raise EvidenceError(
            f"decision {ref!r} is not STEP#N; fix: name the step and the decision's index in "
            "it, e.g. vote#0 (orch show RUN lists them)"
        )
    return step, int(number)


def seal_of(store: ArtifactStore, run_id: str) -> tuple[int, bytes, SealEntry]:
    """The run's seal entry: its ledger index, exact bytes and parsed form. Raises
    :class:`EvidenceError` for a run that has none (it never ended in its own process)."""
    if store.read_run_head(check_run_id(run_id)) is None:
        raise RunNotFoundError(f"no run {run_id!r} in store {store.location}")
    if not store.supports_ledger or store.ledger_size() == 0:
        raise EvidenceError(
            f"store {store.location} keeps no ledger, so no step of run {run_id} can be proven "
            "against a sealed root; fix: record the run in a store with a ledger"
        )
    for index, data in reversed(ledger_of(store).run_entries(run_id)):
        entry = parse_entry(data)
        if isinstance(entry, SealEntry):
            return index, data, entry
    raise EvidenceError(
        f"run {run_id} was never sealed in the ledger (it was killed, or is still running), so "
        "none of its steps can be proven against a sealed root; fix: resume it "
        f"('orch run FILE --resume {run_id}') and prove the step in the resume"
    )


def disclose(
    store: ArtifactStore,
    run_id: str,
    step_id: str,
    *,
    checkpoint: bytes,
    decision: int | None = None,
) -> bytes:
    """The disclosure of step ``step_id`` of run ``run_id`` (or, with ``decision``, of that
    decision of the step) against ``checkpoint``, which must hold the run's seal (see
    :func:`choose_checkpoint` with :func:`seal_of`'s index)."""
    seal_index, seal_bytes, seal = seal_of(store, run_id)
    record = RunRecord.model_validate_json(store.get(seal.root_hash))
    ids = [s for s, _ in record.steps]
    if step_id not in ids:
        shown = ", ".join(repr(s) for s in ids[:10]) + (" ..." if len(ids) > 10 else "")
        raise EvidenceError(
            f"run {run_id} has no step {step_id!r}; fix: name one of its steps ({shown})"
        )
    index = ids.index(step_id)
    key = record.steps[index][1]
    tree = MerkleTree(leaf_hash(step_leaf(s, k)) for s, k in record.steps)
    if "sha256:" + tree.root().hex() != seal.steps_root:
        raise EvidenceError(
            f"run {run_id}'s steps do not hash to the steps root its seal states; fix: verify "
            f"the run ('orch verify {run_id}')"
        )
    record_bytes = store.get(key)
    step = StepRecord.model_validate_json(record_bytes)
    artifacts: dict[str, bytes] = {}
    decision_ref: dict[str, Any] | None = None
    if decision is not None:
        if not 0 <= decision < len(step.decisions):
            raise EvidenceError(
                f"step {step_id!r} of run {run_id} has {len(step.decisions)} decision(s), no "
                f"#{decision}; fix: give an index from 0 to {len(step.decisions) - 1}"
                if step.decisions
                else f"step {step_id!r} of run {run_id} made no decision; fix: prove the step "
                "with --step"
            )
        dkey = step.decisions[decision]
        artifacts[dkey] = store.get(dkey)
        decision_ref = {"index": decision, "key": dkey}
    else:
        for ref in _step_refs(step):
            artifacts[ref] = store.get(ref)
        for eff_key in step.effects:
            effect = EffectRecord.model_validate_json(artifacts[eff_key])
            for io_ref in (effect.request, effect.response):
                if io_ref is not None:
                    artifacts[io_ref] = store.get(io_ref)
    ledger = ledger_of(store)
    cp = open_checkpoint(checkpoint, ())[0]
    tree_log = ledger.tree()
    if cp.origin != ledger.origin() or cp.size > tree_log.size or cp.size <= seal_index:
        raise EvidenceError(
            f"the checkpoint to use (of {cp.origin!r}, size {cp.size}) does not hold ledger "
            f"entry #{seal_index} of this store; fix: use a checkpoint of this store signed "
            "after the run ended"
        )
    if tree_log.root(cp.size) != cp.root:
        raise EvidenceError(
            f"the checkpoint of size {cp.size} does not match this store's ledger: it was "
            "rewritten; fix: verify the store with 'orch verify --all'"
        )
    body: dict[str, Any] = {
        "artifacts": {k: _b64(v) for k, v in sorted(artifacts.items())},
        "checkpoint": _b64(checkpoint),
        "decision": decision_ref,
        "format": DISCLOSURE_FORMAT,
        "kind": "step" if decision is None else "decision",
        "run": run_id,
        "seal": {
            "entry": _b64(seal_bytes),
            "inclusion_path": hex_hashes(tree_log.inclusion_proof(seal_index, cp.size)),
            "index": seal_index,
        },
        "step": {
            "audit_path": hex_hashes(tree.inclusion_proof(index, tree.size)),
            "count": tree.size,
            "id": step_id,
            "index": index,
            "key": key,
            "record": _b64(record_bytes),
        },
    }
    body["digests"] = _digests(body)
    return canonical_bytes(body)


def _step_refs(step: StepRecord) -> list[str]:
    """The artifacts a step record names itself (not yet its effects' requests/responses)."""
    refs = [r for r in (step.input, step.output) if r is not None]
    return refs + list(step.effects) + list(step.decisions)


# -- reading ---------------------------------------------------------------------------------


def _anchors(data: bytes) -> dict[str, int]:
    """Where each top-level field begins (its ``{`` or ``,`` and quoted name), found in the
    order canonical JSON writes them; a damaged name is absent."""
    found: dict[str, int] = {}
    pos = 0
    for i, name in enumerate(FIELDS):
        pattern = (b"{" if i == 0 else b",") + b'"' + name.encode() + b'":'
        at = data.find(pattern, pos)
        if at >= 0:
            found[name] = at
            pos = at + len(pattern)
    return found


def field_at(data: bytes, offset: int) -> str:
    """The top-level field that byte ``offset`` of a disclosure belongs to: from the ``{``
    or ``,`` before its name to the next field's (the closing ``}`` is the last field's)."""
    anchors = _anchors(data)
    missing = [f for f in FIELDS if f not in anchors]
    if missing:
        return missing[0]  # one flipped byte damaged that name
    owner = FIELDS[0]
    for name in FIELDS:
        if anchors[name] <= offset:
            owner = name
    return owner


def _broken_field(data: bytes, anchors: dict[str, int]) -> str:
    """The field whose value is not JSON on its own: where one flipped byte broke the whole
    document (each field's value lies between its name and the next field's)."""
    for i, name in enumerate(FIELDS):
        start = anchors[name] + len(name) + 4  # the { or , the quoted name and the colon
        end = anchors[FIELDS[i + 1]] if i + 1 < len(FIELDS) else len(data) - 1
        try:
            orjson.loads(data[start:end])
        except orjson.JSONDecodeError:
            return name
    return FIELDS[-1]  # every value parses: the closing brace, which is the last field's


def is_disclosure(data: bytes) -> bool:
    """Whether ``data`` is meant as a disclosure (damaged or not): two of three marks, its
    first field, its format and its digests field, are there."""
    marks = [
        data.startswith(b'{"artifacts":'),
        b'"format":"orch.disclosure/1"' in data,
        b'"digests":{"fields":[' in data,
    ]
    return sum(marks) >= 2


def _subject(name: str, detail: str = "") -> str:
    return f"field {name!r}" + (f" ({detail})" if detail else "")


def verify_disclosure(
    data: bytes,
    trusted: Sequence[Verifier] = (),
    since: bytes | None = None,
    *,
    require_trusted: bool | None = None,
) -> VerifyReport:
    """Verify a disclosure (see the module docstring). ``trusted``: keys whose signatures
    count (a checkpoint none of them signed is a problem when ``require_trusted``, default:
    when keys were given, else a warning naming its signers); ``since``: a checkpoint the
    auditor kept (a disclosure holds no consistency proof, so only the same log and a tree
    no smaller are checked). Raises :class:`EvidenceError` only when ``data`` is not meant
    as one."""
    if not is_disclosure(data):
        raise EvidenceError(
            f"not an {DISCLOSURE_FORMAT} proof: it is not the JSON object 'orch prove' writes; "
            "fix: give a file written by 'orch prove'"
        )
    report = VerifyReport(run_id=None, status="unknown")
    required = bool(trusted) if require_trusted is None else require_trusted
    v = _Verifier(data, trusted, required, report)
    v.run(since)
    report.checked = dict(sorted(v.checked.items()))
    return report


class _Verifier:
    def __init__(
        self, data: bytes, trusted: Sequence[Verifier], required: bool, report: VerifyReport
    ) -> None:
        self.data = data
        self.trusted = trusted
        self.required = required
        self.report = report
        self.checked: dict[str, int] = {}

    def problem(self, kind: str, subject: str, detail: str) -> None:
        self.report.problems.append(Problem(kind=kind, subject=subject, detail=detail))

    def count(self, what: str) -> None:
        self.checked[what] = self.checked.get(what, 0) + 1

    def run(self, since: bytes | None) -> None:
        doc = self.parse()
        if doc is None:
            return
        self.report.run_id = doc.run
        checkpoint = self.checkpoint(doc)
        seal = self.seal(doc, checkpoint)
        step = self.step(doc, seal)
        if step is not None:
            self.artifacts(doc, step)
        if seal is not None:
            self.report.status = seal.status
            self.report.root_hash = seal.root_hash
            self.report.complete = True
        if (
            since is not None
            and checkpoint is not None
            and check_kept_checkpoint(
                since, checkpoint, None, self.trusted, self.problem, self.report.warnings.append
            )
        ):
            self.count("kept checkpoints")

    def parse(self) -> Disclosure | None:
        data = self.data
        anchors = _anchors(data)
        missing = [f for f in FIELDS if f not in anchors]
        if missing:
            self.problem(
                "disclosure",
                _subject(missing[0]),
                "the field's name is not where canonical JSON puts it: it was altered",
            )
            return None
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            name = _broken_field(data, anchors)
            self.problem(
                "disclosure",
                _subject(name),
                f"not valid JSON ({exc.msg}): the field was altered",
            )
            return None
        try:
            doc = Disclosure.model_validate(value)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = [str(p) for p in err["loc"]]
            name = loc[0] if loc and loc[0] in FIELDS else field_at(data, 0)
            self.problem(
                "disclosure",
                _subject(name, ".".join(loc[1:])),
                f"not an {DISCLOSURE_FORMAT} field: {err['msg']}",
            )
            return None
        canonical = canonical_bytes(value)
        if canonical != data:
            pos = next(
                (i for i, (a, b) in enumerate(zip(data, canonical, strict=False)) if a != b),
                min(len(data), len(canonical)) - 1,
            )
            self.problem(
                "disclosure",
                _subject(field_at(data, pos)),
                f"not in canonical form at byte {pos}: it was edited",
            )
            return None
        stored = doc.digests
        if (
            len(stored.fields) != len(_DIGESTED)
            or digest(canonical_bytes(stored.fields)) != stored.hash
        ):
            self.problem(
                "disclosure", _subject("digests"), "does not hash to its own hash: it was altered"
            )
        else:
            actual = _digests(value)["fields"]
            for name, mine, theirs in zip(_DIGESTED, actual, stored.fields, strict=True):
                if mine != theirs:
                    self.problem(
                        "disclosure",
                        _subject(name),
                        f"hashes to {mine}, its digest says {theirs}: the field was altered",
                    )
        return doc

    def checkpoint(self, doc: Disclosure) -> Checkpoint | None:
        subject = _subject("checkpoint")
        try:
            note = _unb64(doc.checkpoint, "the checkpoint")
            checkpoint, opened = open_checkpoint(note, self.trusted)
        except (ValueError, NoteError) as exc:
            self.problem("checkpoint", subject, f"not a valid signed checkpoint: {exc}")
            return None
        if not checkpoint.origin.startswith(ORIGIN_PREFIX):
            self.problem(
                "checkpoint",
                subject,
                f"is a checkpoint of {checkpoint.origin!r}, not of an orch store",
            )
            return None
        trust_findings(
            opened,
            self.trusted,
            subject,
            self.problem,
            self.report.warnings.append,
            required=self.required,
        )
        self.count("checkpoints")
        return checkpoint

    def seal(self, doc: Disclosure, checkpoint: Checkpoint | None) -> SealEntry | None:
        subject = _subject("seal")
        try:
            raw = _unb64(doc.seal.entry, "entry")
            entry = parse_entry(raw)
            path = [_unhex(h) for h in doc.seal.inclusion_path]
        except ValueError as exc:
            self.problem(
                "ledger", subject, f"not a ledger entry and its proof: {str(exc).splitlines()[0]}"
            )
            return None
        if not isinstance(entry, SealEntry):
            self.problem("ledger", subject, f"is a {entry.type!r} entry, not the run's seal")
            return None
        if entry.run != doc.run:
            self.problem(
                "ledger",
                _subject("run"),
                f"names run {doc.run!r}, the seal entry run {entry.run!r}",
            )
        if checkpoint is None:
            return entry
        try:
            root = root_from_inclusion(leaf_hash(raw), doc.seal.index, checkpoint.size, path)
        except ProofError as exc:
            self.problem("ledger", subject, str(exc))
            return None
        if root != checkpoint.root:
            self.problem(
                "ledger",
                subject,
                f"the inclusion proof of ledger entry #{doc.seal.index} leads to root "
                f"{root.hex()}, not the checkpoint's {checkpoint.root.hex()}: the entry, its "
                "index or its proof was altered",
            )
            return None
        self.count("inclusion proofs")
        return entry

    def step(self, doc: Disclosure, seal: SealEntry | None) -> StepRecord | None:
        subject = _subject("step")
        proof = doc.step
        try:
            raw = _unb64(proof.record, "record")
            path = [_unhex(h) for h in proof.audit_path]
        except ValueError as exc:
            self.problem("step", subject, str(exc))
            return None
        if digest(raw) != proof.key:
            self.problem(
                "step",
                subject,
                f"its record hashes to {digest(raw)}, not to its key {proof.key}: it was altered",
            )
            return None
        try:
            record = StepRecord.model_validate_json(raw)
        except ValidationError as exc:
            self.problem("step", subject, f"not a step record: {exc.errors()[0]['msg']}")
            return None
        if canonical_bytes(record) != raw:
            self.problem("step", subject, "its record is not in canonical form")
            return None
        if record.step_id != proof.id:
            self.problem(
                "step", subject, f"its record is of step {record.step_id!r}, not {proof.id!r}"
            )
            return None
        try:
            root = root_from_inclusion(
                leaf_hash(step_leaf(proof.id, proof.key)), proof.index, proof.count, path
            )
        except ProofError as exc:
            self.problem("step", subject, str(exc))
            return None
        if seal is not None:
            if proof.count != seal.steps:
                self.problem(
                    "step",
                    subject,
                    f"its audit path is in a tree of {proof.count} steps, but the run's seal "
                    f"states {seal.steps}: the disclosure was altered",
                )
                return None
            if "sha256:" + root.hex() != seal.steps_root:
                self.problem(
                    "step",
                    subject,
                    f"its audit path leads to steps root sha256:{root.hex()}, the run's seal "
                    f"states {seal.steps_root}: the step is not the run's, or was altered",
                )
                return None
            self.count("steps")
        return record

    def artifacts(self, doc: Disclosure, step: StepRecord) -> None:
        revealed: dict[str, bytes] = {}
        for key, text in doc.artifacts.items():
            subject = _subject("artifacts", key)
            try:
                data = _unb64(text, "the artifact")
            except ValueError as exc:
                self.problem("artifact", subject, str(exc))
                continue
            if not is_key(key) or digest(data) != key:
                self.problem(
                    "artifact",
                    subject,
                    f"its bytes hash to {digest(data)}, not to its key: it was altered",
                )
                continue
            revealed[key] = data
            self.count("artifacts")
        if doc.kind == "decision":
            allowed = self._decision(doc, step, revealed)
        else:
            allowed = self._step_artifacts(doc, step, revealed)
        for key in sorted(set(doc.artifacts) - allowed):
            self.problem(
                "artifact",
                _subject("artifacts", key),
                "is not referenced by the step record: a disclosure reveals nothing else",
            )

    def _decision(self, doc: Disclosure, step: StepRecord, revealed: dict[str, bytes]) -> set[str]:
        ref = doc.decision
        if ref is None:
            self.problem("disclosure", _subject("decision"), "is null, but the kind is 'decision'")
            return set()
        if not 0 <= ref.index < len(step.decisions) or step.decisions[ref.index] != ref.key:
            self.problem(
                "disclosure",
                _subject("decision"),
                f"names decision #{ref.index} {ref.key}, which is not that decision of step "
                f"{step.step_id!r}",
            )
            return set()
        if ref.key not in revealed:
            if ref.key not in doc.artifacts:
                self.problem(
                    "artifact", _subject("artifacts"), f"does not reveal decision {ref.key}"
                )
            return {ref.key}
        try:
            decision = Decision.model_validate_json(revealed[ref.key])
        except ValidationError as exc:
            self.problem(
                "artifact",
                _subject("artifacts", ref.key),
                f"not a decision: {exc.errors()[0]['msg']}",
            )
            return {ref.key}
        if canonical_bytes(decision) != revealed[ref.key]:
            self.problem("artifact", _subject("artifacts", ref.key), "not in canonical form")
        self.count("decisions")
        return {ref.key}

    def _step_artifacts(
        self, doc: Disclosure, step: StepRecord, revealed: dict[str, bytes]
    ) -> set[str]:
        if doc.decision is not None:
            self.problem("disclosure", _subject("decision"), "is set, but the kind is 'step'")
        wanted = set(_step_refs(step))
        for index, key in enumerate(step.effects):
            if key not in revealed:
                continue
            try:
                effect = EffectRecord.model_validate_json(revealed[key])
            except ValidationError as exc:
                self.problem(
                    "artifact",
                    _subject("artifacts", key),
                    f"not an effect record: {exc.errors()[0]['msg']}",
                )
                continue
            if (effect.step_id, effect.index) != (step.step_id, index):
                self.problem(
                    "artifact",
                    _subject("artifacts", key),
                    f"records itself as effect #{effect.index} of step {effect.step_id!r}, not "
                    f"#{index} of {step.step_id!r}",
                )
            wanted.update(r for r in (effect.request, effect.response) if r is not None)
            self.count("effects")
        for key in sorted(wanted - set(doc.artifacts)):
            self.problem(
                "artifact",
                _subject("artifacts"),
                f"does not reveal {key}, which the step record references",
            )
        return wanted


def _unhex(text: str) -> bytes:
    if len(text) != 64 or text.strip("0123456789abcdef"):
        raise ValueError(f"{text[:70]!r} is not a 64-digit lowercase hex hash")
    return bytes.fromhex(text)
