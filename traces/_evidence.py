"""What evidence bundles and disclosure proofs share: the artifacts a run references, the
checkpoint they carry, who signed it, and the checkpoint an auditor kept.

This module must never trust a tree size or root that a signed checkpoint does not vouch for,
and never write to a store except the one checkpoint :func:`choose_checkpoint` is asked to sign.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from ._canonical import canonical_bytes, is_key
from ._ledger import ledger_of
from ._note import Checkpoint, OpenedNote, Signer, Verifier, open_checkpoint
from ._records import Decision, EffectRecord, RunHead, RunRecord, StepRecord
from ._store import ArtifactStore
from ._tlog import MerkleTree, verify_consistency
from .errors import EvidenceError, NoteError, ProofError, TraceError

__all__ = [
    "check_kept_checkpoint",
    "check_tree_checkpoint",
    "checkpoint_of",
    "choose_checkpoint",
    "hex_hashes",
    "run_artifacts",
    "strict_object",
    "trust_findings",
    "unhex",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")

Report = Callable[[str, str, str], None]
"""Adds a problem: (kind, subject, detail)."""


def hex_hashes(hashes: Iterable[bytes]) -> list[str]:
    """Proof hashes as JSON holds them: lowercase hex, 64 digits each."""
    return [h.hex() for h in hashes]


def strict_object(raw: bytes, keys: Sequence[str]) -> dict[str, Any]:
    """``raw`` parsed as a canonical JSON object of exactly ``keys``; ``ValueError`` if not."""
    value = orjson.loads(raw)  # JSONDecodeError is a ValueError
    if not isinstance(value, dict) or sorted(value) != sorted(keys):
        raise ValueError(f"not a JSON object of {', '.join(sorted(keys))}")
    if canonical_bytes(value) != raw:
        raise ValueError("not in canonical form (sorted keys, no spaces)")
    return value


def unhex(values: object, what: str) -> list[bytes]:
    """A JSON list of hex hashes as raw digests; ``ValueError`` naming ``what`` if it is not."""
    if not isinstance(values, list) or not all(
        isinstance(v, str) and _HEX64.fullmatch(v) for v in values
    ):
        raise ValueError(f"{what} is not a list of 64-digit lowercase hex hashes")
    return [bytes.fromhex(v) for v in values]


def run_artifacts(
    store: ArtifactStore,
    head: RunHead,
    events: Sequence[dict[str, Any]],
    roots: Iterable[str],
    *,
    strict: bool,
) -> list[str]:
    """Every artifact key the run references, sorted: its spec, inputs, recorded pipeline
    source files and the answers it was given (from the ``run_start`` event), the questions
    its ``ask`` events name, each run record in ``roots`` with its outputs
    and step records, the step records the log's ``step_end`` events name, and each step's
    input, output, effect records (with requests and responses), decisions and the router
    state versions they read; for a step that never ended, the effect records and decisions
    its ``effect`` and ``decision`` events name. ``strict``: raise :class:`EvidenceError` for
    an artifact that is missing or not what its reference says (exporting); else skip it
    (verification reports it)."""
    keys: set[str] = set()

    def add(key: object) -> bool:
        if is_key(key):
            keys.add(str(key))
            return True
        if strict and key is not None:
            raise EvidenceError(
                f"run {head.run_id} references {key!r}, which is not an artifact key"
            )
        return False

    def load(model: type[Any], key: str) -> Any:
        try:
            return model.model_validate_json(store.get(key))
        except (ValueError, LookupError, TraceError) as exc:
            if strict:
                raise EvidenceError(
                    f"run {head.run_id}: artifact {key} is not a readable {model.__name__} "
                    f"({type(exc).__name__}); fix: verify the run with 'orch verify "
                    f"{head.run_id}'"
                ) from None
            return None

    add(head.spec_hash)
    step_keys: set[str] = set()
    effect_keys: set[str] = set()
    decision_keys: set[str] = set()
    ended = {e.get("step") for e in events if e.get("type") == "step_end"}
    for event in events:
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        assert isinstance(data, dict)
        # A step that never ended (killed mid-step): its finished effects and decisions are
        # in the log only, and a resume serves them from there.
        if event.get("step") not in ended:
            if event.get("type") == "effect" and "served_from" not in data:
                if add(data.get("record")):
                    effect_keys.add(str(data["record"]))
            elif event.get("type") == "decision" and add(data.get("decision")):
                decision_keys.add(str(data["decision"]))
    for event in events:
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        assert isinstance(data, dict)
        if event.get("type") == "run_start":
            inputs = data.get("inputs")
            for key in inputs.values() if isinstance(inputs, dict) else ():
                add(key)
            origin = data.get("origin")
            sources = origin.get("sources") if isinstance(origin, dict) else None
            files = sources.get("files") if isinstance(sources, dict) else None
            for key in files.values() if isinstance(files, dict) else ():
                add(key)
            answers = data.get("answers")  # who answered the run's questions, and what
            for key in answers.values() if isinstance(answers, dict) else ():
                add(key)
        elif event.get("type") == "ask":
            add(data.get("question"))
        elif event.get("type") == "step_end" and add(data.get("record")):
            step_keys.add(str(data["record"]))
    for root in sorted(set(roots)):
        if not add(root):
            continue
        record: RunRecord | None = load(RunRecord, root)
        if record is None:
            continue
        add(record.spec_hash)
        for key in [*record.inputs.values(), *record.outputs.values()]:
            add(key)
        for _, key in record.steps:
            if add(key):
                step_keys.add(key)
    for key in sorted(step_keys):
        step: StepRecord | None = load(StepRecord, key)
        if step is None:
            continue
        add(step.input)
        add(step.output)
        effect_keys.update(k for k in step.effects if add(k))
        decision_keys.update(k for k in step.decisions if add(k))
    for eff_key in sorted(effect_keys):
        effect: EffectRecord | None = load(EffectRecord, eff_key)
        if effect is not None:
            add(effect.request)
            add(effect.response)
    for dec_key in sorted(decision_keys):
        decision: Decision | None = load(Decision, dec_key)
        if decision is not None:
            add(decision.state_version)
    return sorted(keys)


def choose_checkpoint(
    store: ArtifactStore, covering: int, signers: Sequence[Signer]
) -> tuple[bytes, bool]:
    """A signed checkpoint of ``store``'s ledger whose tree holds entry ``covering``: the
    latest stored one when it does, else a new one signed by ``signers`` and stored (the
    flag says so). Raises :class:`EvidenceError` when neither is possible."""
    ledger = ledger_of(store)
    latest = ledger.latest_checkpoint()
    if latest is not None and latest[0] > covering:
        return latest[1], False
    if not signers:
        have = (
            f"the latest stored checkpoint covers {latest[0]} entries"
            if latest
            else "the store has no checkpoint"
        )
        raise EvidenceError(
            f"no signed checkpoint of store {store.location} covers ledger entry #{covering} "
            f"({have}), and no signing key was given; fix: create a key with 'orch keys create "
            "NAME' and pass --key NAME (or set ORCH_SIGNING_KEY)"
        )
    return ledger.checkpoint(signers), True


def checkpoint_of(note: bytes, what: str) -> Checkpoint:
    try:
        return open_checkpoint(note, ())[0]
    except NoteError as exc:
        raise EvidenceError(f"{what} is not a signed checkpoint ({exc})") from None


def check_tree_checkpoint(tree: MerkleTree, checkpoint: Checkpoint, origin: str, what: str) -> None:
    """``checkpoint`` must be of this ledger (``origin``) and agree with its ``tree``."""
    if checkpoint.origin != origin:
        raise EvidenceError(
            f"{what} is a checkpoint of {checkpoint.origin!r}, not of this store's ledger "
            f"({origin!r}); fix: give a checkpoint of this store"
        )
    if checkpoint.size > tree.size:
        raise EvidenceError(
            f"{what} covers {checkpoint.size} ledger entries, but the ledger holds {tree.size}: "
            "the store was rolled back or its ledger cut short; fix: verify it with "
            "'orch verify --all'"
        )
    if tree.root(checkpoint.size) != checkpoint.root:
        raise EvidenceError(
            f"{what} (size {checkpoint.size}) does not match this store's ledger at that size: "
            "the ledger was rewritten or forked since it was signed; fix: verify the store "
            "with 'orch verify --all'"
        )


def trust_findings(
    opened: OpenedNote,
    trusted: Sequence[Verifier],
    subject: str,
    problem: Report,
    warn: Callable[[str], None],
    *,
    required: bool,
) -> None:
    """A checkpoint that none of ``trusted`` signed: a problem when the caller named keys to
    trust (``required``), else a warning naming its signers (it is still checked for
    consistency, only not for who vouched for it)."""
    if opened.verified:
        return
    signers = ", ".join(s.key for s in opened.unknown) or "nobody"
    if required:
        given = ", ".join(f"{v.name}+{v.key_id:08x}" for v in trusted) or "none"
        problem(
            "checkpoint",
            subject,
            f"is signed by {signers}, none of them a key you trust ({given}): it was not "
            "signed by the log you expect, or it was re-signed",
        )
    else:
        warn(
            f"{subject} is signed only by keys you did not say to trust: {signers}; fix: pass "
            "--trust KEY (a verifier key, a .pub file or a key name in your keyring) to check "
            "who signed it"
        )


def check_kept_checkpoint(
    kept: bytes,
    checkpoint: Checkpoint,
    consistency: tuple[int, list[bytes]] | None,
    trusted: Sequence[Verifier],
    problem: Report,
    warn: Callable[[str], None],
    *,
    proof_required: bool = False,
) -> bool:
    """Check ``checkpoint`` (the evidence's) against ``kept``, the checkpoint an auditor kept
    from earlier: same log, and the evidence's tree extends the kept one (``consistency``:
    the old size and the proof the evidence carries, if any). A smaller kept checkpoint and
    no proof is a problem when ``proof_required`` (a bundle: the auditor asked, and a bundle
    can carry one), else a warning (a disclosure carries none). True when it holds."""
    subject = "the checkpoint you kept"
    try:
        old, _ = open_checkpoint(kept, trusted)
    except NoteError as exc:
        problem("checkpoint", subject, f"not a valid signed checkpoint: {exc}")
        return False
    if old.origin != checkpoint.origin:
        problem(
            "checkpoint",
            subject,
            f"is a checkpoint of {old.origin!r}, the evidence's of {checkpoint.origin!r}: it "
            "is another store's, or this store's ledger was replaced",
        )
        return False
    if old.size > checkpoint.size:
        problem(
            "checkpoint",
            subject,
            f"covers {old.size} ledger entries, the evidence's checkpoint only "
            f"{checkpoint.size}: the store was rolled back to an older copy since you kept it",
        )
        return False
    if old.size == checkpoint.size:
        if old.root != checkpoint.root:
            problem(
                "checkpoint",
                subject,
                f"has root {old.root.hex()} for {old.size} entries, the evidence's checkpoint "
                f"{checkpoint.root.hex()}: the store's ledger was forked or rewritten",
            )
            return False
        return True
    if consistency is None:
        message = (
            f"(size {old.size}) cannot be held against this evidence: it carries no "
            "consistency proof; fix: export the bundle with --since of that checkpoint"
        )
        if proof_required:
            problem("checkpoint", subject, message)
            return False
        warn(f"{subject} {message}")
        return True
    old_size, proof = consistency
    if old_size != old.size:
        problem(
            "checkpoint",
            subject,
            f"has size {old.size}, but the evidence's consistency proof starts at size "
            f"{old_size}; fix: export the bundle again with --since of the checkpoint you kept",
        )
        return False
    try:
        verify_consistency(old.size, checkpoint.size, old.root, checkpoint.root, proof)
    except ProofError as exc:
        problem("checkpoint", subject, f"the store's ledger did not only grow since: {exc}")
        return False
    return True
