"""Evidence bundles: written from a store, read strictly, verified with no store.

A real run (model calls, decisions, a router state version, its recorded source file) is
bundled; the bundle must verify on its own, be the same bytes each time, be a plain ustar
archive other tools read, and name the exact part of any byte flipped anywhere in it.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import orjson
import pytest
from evidence_pipeline import record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from traces import ArtifactStore, DirectoryStore, MemoryStore, canonical_bytes, digest
from traces._bundle import BundleManifest, bundle_layout, export_bundle, is_bundle, verify_bundle
from traces._evidence import choose_checkpoint
from traces._ledger import ledger_of
from traces._note import Signer
from traces._ustar import encode_tar, part_at, tar_layout
from traces.errors import EvidenceError

SIGNER = Signer.generate("test.example/log")
OTHER = Signer.generate("other.example/log")


def _bundle(store: ArtifactStore, run_id: str, since: bytes | None = None) -> bytes:
    last = ledger_of(store).run_entries(run_id)[-1][0]
    note, _ = choose_checkpoint(store, last, [SIGNER])
    return export_bundle(store, run_id, checkpoint=note, orch_version="test", since=since)


@pytest.fixture(scope="module")
def made() -> tuple[MemoryStore, str, bytes]:
    store = MemoryStore()
    run_id = record(store).run_id
    return store, run_id, _bundle(store, run_id)


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        out = {}
        for m in tar.getmembers():
            f = tar.extractfile(m)
            assert f is not None
            out[m.name] = f.read()
        return out


def _rebuild(members: dict[str, bytes], **manifest_changes: object) -> bytes:
    """A bundle of ``members`` with a manifest made consistent again (a forger's bundle)."""
    body = orjson.loads(members["orchpack.json"])
    rest = {k: v for k, v in members.items() if k != "orchpack.json"}
    body["members"] = {n: {"sha256": digest(d), "size": len(d)} for n, d in sorted(rest.items())}
    body.update(manifest_changes)
    body["hash"] = BundleManifest.body_hash(body)
    return encode_tar([("orchpack.json", canonical_bytes(body)), *sorted(rest.items())])


def _subjects(data: bytes, **kwargs: object) -> list[str]:
    report = verify_bundle(data, [SIGNER.verifier()], **kwargs)  # type: ignore[arg-type]
    assert not report.ok, "the change went unnoticed"
    return [p.subject for p in report.problems]


def test_bundle_verifies_with_no_store(made: tuple[MemoryStore, str, bytes]) -> None:
    _, run_id, data = made
    report = verify_bundle(data, [SIGNER.verifier()])
    assert report.ok, report.problems
    assert report.warnings == []
    assert report.run_id == run_id and report.complete and report.status == "ok"
    checked = report.checked
    assert checked["inclusion proofs"] == checked["ledger entries"] == 2  # start and seal
    assert checked["steps"] == 3 and checked["effects"] == 4 and checked["decisions"] == 2
    assert checked["sources"] == 1 and checked["checkpoints"] == 1


def test_bundle_is_a_plain_canonical_ustar_archive(made: tuple[MemoryStore, str, bytes]) -> None:
    store, run_id, data = made
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        infos = tar.getmembers()
    names = [m.name for m in infos]
    assert names[0] == "orchpack.json" and names[1:] == sorted(names[1:])
    assert {"head.json", "events.jsonl", "checkpoint.note"} <= set(names)
    assert all(
        (m.mode, m.uid, m.gid, m.uname, m.gname, m.mtime, m.type) == (0o644, 0, 0, "", "", 0, b"0")
        for m in infos
    )
    assert data.endswith(b"\0" * 1024) and len(data) % 512 == 0
    members = _members(data)
    assert members["head.json"] == store.read_run_head(run_id)
    assert members["events.jsonl"] == b"".join(e + b"\n" for e in store.read_events(run_id))
    manifest = orjson.loads(members["orchpack.json"])
    assert manifest["format"] == "orch.pack/1" and manifest["run"] == run_id
    assert manifest["origin"] == ledger_of(store).origin()
    for name, info in manifest["members"].items():
        assert digest(members[name]) == info["sha256"]
    for name, blob in members.items():
        if name.startswith("objects/"):
            assert digest(blob) == "sha256:" + name.removeprefix("objects/")
    for index, entry in ledger_of(store).run_entries(run_id):
        assert members[f"ledger/{index:020d}.entry"] == entry


def test_bundle_is_deterministic(made: tuple[MemoryStore, str, bytes]) -> None:
    store, run_id, data = made
    assert _bundle(store, run_id) == data  # same run, same stored checkpoint


def test_bundle_holds_every_referenced_artifact_and_nothing_else(
    made: tuple[MemoryStore, str, bytes],
) -> None:
    store, run_id, data = made
    objects = {n for n in _members(data) if n.startswith("objects/")}
    other = record(store, q="another run")  # its artifacts must stay out
    assert {n for n in _members(_bundle(store, run_id)) if n.startswith("objects/")} == objects
    events = [orjson.loads(e) for e in store.read_events(run_id)]
    state = events[0]["data"]["inputs"]["state"]
    state_version = store.get_value(state)  # the input holds the key of the state version
    assert "objects/" + state_version.removeprefix("sha256:") in objects
    source = events[0]["data"]["origin"]["sources"]["files"]["evidence_pipeline.py"]
    assert "objects/" + source.removeprefix("sha256:") in objects
    other_output = other.record.outputs["answer"]
    assert "objects/" + other_output.removeprefix("sha256:") not in objects


def test_untrusted_signer_is_a_warning_and_a_wrong_key_a_problem(
    made: tuple[MemoryStore, str, bytes],
) -> None:
    _, _, data = made
    report = verify_bundle(data)
    assert report.ok
    assert any("test.example/log+" in w and "did not say to trust" in w for w in report.warnings)
    wrong = verify_bundle(data, [OTHER.verifier()])
    assert [p.subject for p in wrong.problems] == ["member 'checkpoint.note'"]
    assert "none of them a key you trust" in wrong.problems[0].detail
    lenient = verify_bundle(data, [OTHER.verifier()], require_trusted=False)
    assert lenient.ok and lenient.warnings


def _flip(data: bytes, offset: int, xor: int = 0x41) -> bytes:
    out = bytearray(data)
    out[offset] ^= xor
    return bytes(out)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_any_flipped_byte_is_found_and_named(
    made: tuple[MemoryStore, str, bytes], data: st.DataObject
) -> None:
    _, _, bundle = made
    layout = bundle_layout(bundle)
    offset = data.draw(st.integers(0, len(bundle) - 1), label="offset")
    xor = data.draw(st.integers(1, 255), label="xor")
    part = part_at(layout, offset)
    assert part in _subjects(_flip(bundle, offset, xor))


def _offset(layout: list, name: str) -> int:
    return next(p.start for p in layout if p.name == name)


@pytest.mark.parametrize(
    "part",
    [
        "member 'orchpack.json' header field size",
        "member 'orchpack.json' (data)",
        "tar padding after member 'orchpack.json'",
        "member 'checkpoint.note' (data)",
        "member 'head.json' header field chksum",
        "member 'head.json' header field mode",
        "member 'head.json' (data)",
        "tar padding after member 'head.json'",
        "member 'events.jsonl' header field name",
        "member 'events.jsonl' (data)",
        "member 'ledger/00000000000000000001.entry' (data)",
        "member 'ledger/00000000000000000002.proof' (data)",
        "member 'events.jsonl' header field mtime",
        "member 'events.jsonl' header field uname",
        "member 'events.jsonl' header field prefix",
        "end-of-archive blocks",
    ],
)
def test_targeted_flips_name_their_part(made: tuple[MemoryStore, str, bytes], part: str) -> None:
    _, _, data = made
    layout = bundle_layout(data)
    assert part in _subjects(_flip(data, _offset(layout, part)))


def test_each_object_flipped_names_its_member(made: tuple[MemoryStore, str, bytes]) -> None:
    _, _, data = made
    layout = bundle_layout(data)
    objects = [p for p in layout if p.name.startswith("member 'objects/") and "(data)" in p.name]
    assert len(objects) > 20
    for part in objects:
        assert part.name in _subjects(_flip(data, part.end - 1)), part.name


def test_appended_and_cut_bundles_are_named(made: tuple[MemoryStore, str, bytes]) -> None:
    _, _, data = made
    assert "data after the end-of-archive blocks" in _subjects(data + b"\0" * 512)
    assert "end-of-archive blocks" in _subjects(data[:-10])
    layout = bundle_layout(data)
    cut = _offset(layout, "member 'head.json' (data)") + 5
    assert "member 'head.json' (data)" in _subjects(data[:cut])


def test_consistent_forgeries_are_caught_by_the_run_and_ledger_checks(
    made: tuple[MemoryStore, str, bytes],
) -> None:
    _, _, data = made
    members = _members(data)
    # An extra object, even one listed in a recomputed manifest: nothing rides along.
    extra = dict(members, **{"objects/" + digest(b"x").removeprefix("sha256:"): b"x"})
    assert any(
        "is not referenced by the run" in p.detail for p in verify_bundle(_rebuild(extra)).problems
    )
    # A seal entry edited, manifest recomputed: its inclusion proof no longer holds.
    entries = sorted(n for n in members if n.endswith(".entry"))
    seal = members[entries[-1]].replace(b'"status":"ok"', b'"status":"failed"')
    report = verify_bundle(_rebuild(dict(members, **{entries[-1]: seal})), [SIGNER.verifier()])
    assert any("its inclusion proof leads to root" in p.detail for p in report.problems)
    # A ledger entry left out: the run's own checks find the log unsealed.
    fewer = {k: v for k, v in members.items() if not k.startswith(entries[-1][:-6])}
    assert not verify_bundle(_rebuild(fewer), [SIGNER.verifier()]).ok
    # The manifest's root hash changed consistently.
    assert not verify_bundle(_rebuild(members, root_hash="sha256:" + "0" * 64)).ok


def _checkpoint(store: ArtifactStore) -> bytes:
    return ledger_of(store).checkpoint([SIGNER])


def test_since_an_older_checkpoint_of_the_same_store_holds() -> None:
    store = MemoryStore()
    record(store)
    old = _checkpoint(store)
    run_id = record(store, q="later").run_id
    record(store, q="even later")
    data = _bundle(store, run_id, since=old)
    assert "consistency.json" in _members(data)
    report = verify_bundle(data, [SIGNER.verifier()], since=old)
    assert report.ok, report.problems
    assert report.checked["kept checkpoints"] == 1
    # Without --since, it only says the proof is there.
    assert any("consistency proof" in w for w in verify_bundle(data, [SIGNER.verifier()]).warnings)


def test_since_another_stores_checkpoint_is_a_problem() -> None:
    store, elsewhere = MemoryStore(), MemoryStore()
    run_id = record(store).run_id
    record(elsewhere)
    foreign = _checkpoint(elsewhere)
    report = verify_bundle(_bundle(store, run_id), [SIGNER.verifier()], since=foreign)
    assert [p.subject for p in report.problems] == ["the checkpoint you kept"]
    assert "another store's" in report.problems[0].detail


def test_since_a_checkpoint_of_a_history_rolled_back_since_is_a_problem(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "s")
    record(store)
    store.close()
    shutil.copytree(tmp_path / "s", tmp_path / "backup")
    store = DirectoryStore(tmp_path / "s")
    record(store, q="to be rolled back")
    kept = _checkpoint(store)  # the auditor keeps this one
    store.close()
    shutil.rmtree(tmp_path / "s")  # the operator puts an older copy of the store back
    shutil.copytree(tmp_path / "backup", tmp_path / "s")
    store = DirectoryStore(tmp_path / "s")
    run_id = record(store, q="after the rollback").run_id
    report = verify_bundle(_bundle(store, run_id), [SIGNER.verifier()], since=kept)
    assert [p.subject for p in report.problems] == ["the checkpoint you kept"]
    assert "forked or rewritten" in report.problems[0].detail
    with pytest.raises(EvidenceError, match="rewritten or forked"):
        _bundle(store, run_id, since=kept)  # nor will export pretend otherwise


def test_since_a_newer_checkpoint_than_the_bundles_is_a_rollback() -> None:
    store = MemoryStore()
    run_id = record(store).run_id
    data = _bundle(store, run_id)
    record(store, q="later")
    newer = _checkpoint(store)
    report = verify_bundle(data, [SIGNER.verifier()], since=newer)
    assert "rolled back" in report.problems[0].detail


def test_export_needs_a_checkpoint_or_a_key() -> None:
    store = MemoryStore()
    run_id = record(store).run_id
    last = ledger_of(store).run_entries(run_id)[-1][0]
    with pytest.raises(EvidenceError, match=r"orch keys create NAME.*--key NAME"):
        choose_checkpoint(store, last, [])
    note, signed = choose_checkpoint(store, last, [SIGNER])
    assert signed and store.checkpoint_sizes() == [last + 1]
    assert choose_checkpoint(store, last, []) == (note, False)  # the stored one, reused


def test_a_checkpoint_that_does_not_cover_the_run_is_refused() -> None:
    store = MemoryStore()
    record(store)
    early = _checkpoint(store)
    run_id = record(store, q="later").run_id
    with pytest.raises(EvidenceError, match="sign a newer checkpoint"):
        export_bundle(store, run_id, checkpoint=early, orch_version="test")


def test_a_tampered_run_is_not_exported(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "s")
    result = record(store)
    key = dict(result.record.steps)["ask"]
    store._tamper(key, b"{}")
    with pytest.raises(EvidenceError, match="does not verify"):
        _bundle(store, result.run_id)


def test_what_is_not_a_bundle_is_said_so() -> None:
    assert not is_bundle(b"hello")
    with pytest.raises(EvidenceError, match=r"not an orch\.pack/1 bundle"):
        verify_bundle(b"{}" * 600)
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("notes.txt")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(EvidenceError):
        verify_bundle(plain.getvalue())


def test_member_names_that_do_not_fit_ustar_are_refused() -> None:
    with pytest.raises(EvidenceError, match="does not fit a ustar name field"):
        encode_tar([("a" * 101, b"")])
    with pytest.raises(EvidenceError, match="not a relative path"):
        encode_tar([("../escape", b"")])
    assert part_at(tar_layout([("a", 3)]), 512 + 3) == "tar padding after member 'a'"
