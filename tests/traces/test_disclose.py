"""Disclosure proofs: one step or one decision of a sealed run, and nothing else of it.

A proof must verify with no store, reveal only the step's record and what it references (or
the one decision), and name the field of any byte flipped in it.
"""

from __future__ import annotations

import base64

import orjson
import pytest
from evidence_pipeline import record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traces import MemoryStore, RunRecord, StepRecord, canonical_bytes
from traces._disclose import (
    FIELDS,
    disclose,
    field_at,
    is_disclosure,
    parse_decision_ref,
    seal_of,
    verify_disclosure,
)
from traces._evidence import choose_checkpoint
from traces._note import Signer
from traces.errors import EvidenceError

SIGNER = Signer.generate("test.example/log")
OTHER = Signer.generate("other.example/log")


class Made:
    def __init__(self) -> None:
        self.store = MemoryStore()
        result = record(self.store)
        self.run_id = result.run_id
        self.record: RunRecord = result.record
        self.note, _ = choose_checkpoint(self.store, seal_of(self.store, self.run_id)[0], [SIGNER])
        self.step = disclose(self.store, self.run_id, "ask", checkpoint=self.note)
        self.decision = disclose(self.store, self.run_id, "route", checkpoint=self.note, decision=0)

    def step_record(self, step_id: str) -> StepRecord:
        return StepRecord.model_validate_json(self.store.get(dict(self.record.steps)[step_id]))


@pytest.fixture(scope="module")
def made() -> Made:
    return Made()


def _flip(data: bytes, offset: int, xor: int = 0x41) -> bytes:
    out = bytearray(data)
    out[offset] ^= xor
    return bytes(out)


def _subjects(data: bytes) -> list[str]:
    report = verify_disclosure(data, [SIGNER.verifier()])
    assert not report.ok, "the change went unnoticed"
    return [p.subject for p in report.problems]


def test_step_and_decision_proofs_verify(made: Made) -> None:
    for data, what in ((made.step, "effects"), (made.decision, "decisions")):
        report = verify_disclosure(data, [SIGNER.verifier()])
        assert report.ok, report.problems
        assert report.warnings == []
        assert report.run_id == made.run_id and report.status == "ok"
        assert report.root_hash == made.record.root_hash()
        assert report.checked["steps"] == report.checked["inclusion proofs"] == 1
        assert report.checked[what] >= 1


def test_a_step_proof_reveals_the_step_and_nothing_else(made: Made) -> None:
    doc = orjson.loads(made.step)
    text = made.step.decode()
    step = made.step_record("ask")
    effects = [made.store.get_value(k) for k in step.effects]
    referenced = {step.input, step.output, *step.effects}
    referenced |= {e["request"] for e in effects} | {e["response"] for e in effects}
    assert set(doc["artifacts"]) == referenced
    assert base64.b64decode(doc["step"]["record"]) == made.store.get(dict(made.record.steps)["ask"])
    for other_id, other_key in made.record.steps:
        if other_id != "ask":
            assert other_key not in text  # no other step's record, not even its key
    assert set(doc["artifacts"]).isdisjoint({made.record.spec_hash, *made.record.inputs.values()})
    for line in made.store.read_events(made.run_id):  # no event
        event = orjson.loads(line)
        assert event["hash"] not in text
        assert base64.b64encode(line).decode() not in text
    blobs = b"".join(base64.b64decode(v) for v in doc["artifacts"].values())
    assert canonical_bytes(made.record) not in blobs  # no run record


def test_the_run_record_is_named_only_by_the_seal(made: Made) -> None:
    doc = orjson.loads(made.step)
    root = made.record.root_hash()
    seal = base64.b64decode(doc["seal"]["entry"])
    assert root.encode() in seal
    without_seal = {k: v for k, v in doc.items() if k not in ("seal", "digests")}
    assert root not in orjson.dumps(without_seal).decode()


def test_a_decision_proof_reveals_that_decision_only(made: Made) -> None:
    doc = orjson.loads(made.decision)
    step = made.step_record("route")
    assert list(doc["artifacts"]) == [step.decisions[0]]
    assert doc["decision"] == {"index": 0, "key": step.decisions[0]}
    assert step.decisions[1] not in made.decision.decode()
    assert step.input not in doc["artifacts"]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(which=st.sampled_from(["step", "decision"]), data=st.data())
def test_any_flipped_byte_names_its_field(made: Made, which: str, data: st.DataObject) -> None:
    proof = made.step if which == "step" else made.decision
    offset = data.draw(st.integers(0, len(proof) - 1), label="offset")
    xor = data.draw(st.integers(1, 255), label="xor")
    assert f"field {field_at(proof, offset)!r}" in " ".join(_subjects(_flip(proof, offset, xor)))


@pytest.mark.parametrize("name", FIELDS)
def test_a_flip_in_each_field_is_named(made: Made, name: str) -> None:
    for proof in (made.step, made.decision):
        starts = [i for i in range(len(proof)) if field_at(proof, i) == name]
        for offset in (starts[len(starts) // 2], starts[-1]):
            assert f"field {name!r}" in " ".join(_subjects(_flip(proof, offset))), offset


def _forge(proof: bytes, **changes: object) -> bytes:
    """The proof with fields changed and its digests made consistent again."""
    from traces._disclose import _digests

    body = orjson.loads(proof)
    body.update(changes)
    body["digests"] = _digests(body)
    return canonical_bytes(body)


def test_consistent_forgeries_fail_the_proof_checks(made: Made) -> None:
    doc = orjson.loads(made.step)
    # Another step's record under this step's name: the audit path no longer leads to the root.
    tail = made.store.get(dict(made.record.steps)["tail"])
    step = dict(doc["step"], record=base64.b64encode(tail).decode())
    assert "field 'step'" in _subjects(_forge(made.step, step=step))
    # Another index: the audit path leads elsewhere.
    wrong_index = dict(doc["step"], index=(doc["step"]["index"] + 1) % doc["step"]["count"])
    assert "field 'step'" in _subjects(_forge(made.step, step=wrong_index))
    # An artifact the step does not reference, even a real one of the run.
    extra = dict(doc["artifacts"])
    extra[made.record.spec_hash] = base64.b64encode(made.store.get(made.record.spec_hash)).decode()
    report = verify_disclosure(_forge(made.step, artifacts=extra), [SIGNER.verifier()])
    assert any("not referenced by the step record" in p.detail for p in report.problems)
    # An artifact left out.
    fewer = dict(list(doc["artifacts"].items())[1:])
    report = verify_disclosure(_forge(made.step, artifacts=fewer), [SIGNER.verifier()])
    assert any("which the step record references" in p.detail for p in report.problems)
    # Another run's id.
    assert "field 'run'" in _subjects(_forge(made.step, run="20000101-000000-00000000"))
    # The kind switched.
    assert "field 'decision'" in _subjects(_forge(made.step, kind="decision"))


def test_untrusted_signer_is_a_warning_and_a_wrong_key_a_problem(made: Made) -> None:
    report = verify_disclosure(made.step)
    assert report.ok and "test.example/log+" in report.warnings[0]
    wrong = verify_disclosure(made.step, [OTHER.verifier()])
    assert [p.subject for p in wrong.problems] == ["field 'checkpoint'"]


def test_since_is_held_against_the_proofs_checkpoint(made: Made) -> None:
    assert verify_disclosure(made.step, [SIGNER.verifier()], since=made.note).ok
    elsewhere = MemoryStore()
    record(elsewhere)
    foreign, _ = choose_checkpoint(elsewhere, 0, [SIGNER])
    report = verify_disclosure(made.step, [SIGNER.verifier()], since=foreign)
    assert [p.subject for p in report.problems] == ["the checkpoint you kept"]


def test_a_run_never_sealed_cannot_be_disclosed() -> None:
    store = MemoryStore()
    run_id = record(store).run_id
    store._tamper_truncate_ledger(store.ledger_size() - 1)  # as a killed process leaves it
    with pytest.raises(EvidenceError) as caught:
        seal_of(store, run_id)
    message = str(caught.value)
    assert "never sealed" in message and "fix:" in message and "\n" not in message


def test_unknown_steps_and_decisions_are_refused(made: Made) -> None:
    with pytest.raises(EvidenceError, match="has no step 'nope'"):
        disclose(made.store, made.run_id, "nope", checkpoint=made.note)
    with pytest.raises(EvidenceError, match="no #5"):
        disclose(made.store, made.run_id, "route", checkpoint=made.note, decision=5)
    with pytest.raises(EvidenceError, match="made no decision"):
        disclose(made.store, made.run_id, "ask", checkpoint=made.note, decision=0)
    assert parse_decision_ref("vote#12") == ("vote", 12)
    assert parse_decision_ref("a#b#0") == ("a#b", 0)
    for bad in ("vote", "vote#", "#1", "vote#x", "vote#01"):
        with pytest.raises(EvidenceError, match="STEP#N"):
            parse_decision_ref(bad)


def test_what_is_not_a_disclosure_is_said_so() -> None:
    assert not is_disclosure(b'{"format":"orch.pack/1"}')
    with pytest.raises(EvidenceError, match="not an orch"):
        verify_disclosure(b"[]")
