"""The independent JavaScript verifier, written from ``docs/formats.md`` alone, on orch's evidence.

``tests/fixtures/independent_verifier/verify.mjs`` knows orch only through the document (and
the RFC 9162 / C2SP specs it cites). These tests hold the document to what orch writes: the
golden files verify; a copy with any single byte changed (tar headers, padding, objects, ledger
entries, proofs, the note, every disclosure field) is refused; a copy whose unkeyed hashes
(manifest, member list, disclosure digests) were recomputed after a change is still refused by
the proofs, the signature and the records; an untrusted key never counts as a signature; floats
are read as the document says orjson writes them; on fresh exports, and on bundles of runs in
every lifecycle state, it agrees with ``orch verify``. Where orch's Python verifier does not do
what the document says, an xfail names the gap (``ORCH_GAPS``).

Needs ``node`` (Node.js 20) on PATH: skips without it, unless ``ORCH_REQUIRE_NODE=1`` (then
fails). This module never runs anything it reads from an evidence file.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from stalled_gather import stalled_pipeline

from orch import arun
from traces._note import Verifier

FIXTURES = Path(__file__).parents[1] / "fixtures"
VERIFIER = FIXTURES / "independent_verifier" / "verify.mjs"
GOLDEN = FIXTURES / "golden_evidence"
SIGNER = (GOLDEN / "signer.pub").read_text().strip()
SIGNER_ID = SIGNER.rsplit("+", 1)[0]
"""``name+keyid``: how the verifier names the golden files' signer."""
KEPT = GOLDEN / "kept.checkpoint"
DISCLOSURE_FIELDS = [
    "artifacts",
    "checkpoint",
    "decision",
    "digests",
    "format",
    "kind",
    "run",
    "seal",
    "step",
]
HEADER_FIELDS = [0, 100, 108, 116, 124, 136, 148, 156, 157, 257, 263, 265, 297, 329, 337, 345, 500]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None:
        reason = "node (Node.js 20) is not on PATH: the independent verifier cannot run"
        if os.environ.get("ORCH_REQUIRE_NODE") == "1":
            pytest.fail(f"{reason}; ORCH_REQUIRE_NODE=1; fix: install Node.js 20")
        pytest.skip(f"{reason}; install it (ORCH_REQUIRE_NODE=1 turns this skip into a failure)")
    return found


def verify(node: str, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, str(VERIFIER), str(path), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def assert_refused(result: subprocess.CompletedProcess[str], what: str, expect: str = "") -> None:
    # Node exits 1 on an uncaught exception too: a refusal must be printed problem lines.
    output = result.stdout + result.stderr
    assert result.returncode == 1, f"{what}: exit {result.returncode}\n{output}"
    assert result.stdout.strip(), f"{what}: exit 1 without a problem line\n{result.stderr}"
    assert "    at " not in result.stderr, f"{what}: the verifier crashed\n{result.stderr}"
    assert expect in result.stdout, f"{what}: expected {expect!r} in\n{result.stdout}"


def key(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canon(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ---- the bundle, re-encoded as formats.md section 3 says ----


def tar_header(name: str, size: int) -> bytes:
    h = bytearray(512)
    h[0 : len(name)] = name.encode("ascii")
    for at, value in [
        (100, b"0000644\0"),
        (108, b"0000000\0"),
        (116, b"0000000\0"),
        (124, b"%011o\0" % size),
        (136, b"00000000000\0"),
        (148, b" " * 8),
        (156, b"0"),
        (257, b"ustar\0"),
        (263, b"00"),
        (329, b"0000000\0"),
        (337, b"0000000\0"),
    ]:
        h[at : at + len(value)] = value
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def read_bundle(raw: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        out: dict[str, bytes] = {}
        for info in tar.getmembers():
            member = tar.extractfile(info)
            assert member is not None
            out[info.name] = member.read()
        return out


def write_bundle(members: dict[str, bytes]) -> bytes:
    """The archive of these members, with the manifest's member list and hash made to match."""
    manifest = json.loads(members["orchpack.json"])
    others = sorted(n for n in members if n != "orchpack.json")
    manifest["members"] = {n: {"sha256": key(members[n]), "size": len(members[n])} for n in others}
    del manifest["hash"]
    manifest["hash"] = key(canon(manifest))
    out = bytearray()
    for name in ["orchpack.json", *others]:
        data = canon(manifest) if name == "orchpack.json" else members[name]
        out += tar_header(name, len(data)) + data + bytes(-len(data) % 512)
    return bytes(out + bytes(1024))


def bundle_offsets(raw: bytes) -> Iterator[tuple[int, str]]:
    """Offsets to flip, in every part of the archive: each header field, data, padding, end."""
    members = json.loads(raw[512 : raw.index(b"\0", 512)])["members"]
    pos, sizes = (
        0,
        [
            ("orchpack.json", raw.index(b"\0", 512) - 512),
            *[(n, m["size"]) for n, m in members.items()],
        ],
    )
    for j, (name, size) in enumerate(sizes):
        fields = HEADER_FIELDS if j == 0 else [HEADER_FIELDS[j % len(HEADER_FIELDS)]]
        for at in fields:
            yield pos + at, f"{name} header byte {at}"
        data = pos + 512
        if name == "checkpoint.note":  # each line: origin, size, root, time, blank, signature
            note = raw[data : data + size]
            starts = [0, *[i + 1 for i, b in enumerate(note[:-1]) if b == 0x0A]]
            for line_start in starts:
                yield data + line_start, f"{name} line at {line_start}"
            yield data + size - 2, f"{name} signature end"
        spots = [0, size // 2, size - 1] if not name.startswith("objects/") else [j * 7 % size]
        for at in spots:
            yield data + at, f"{name} data byte {at}"
        pad = -size % 512
        if pad:
            yield data + size + (0 if j % 2 else pad - 1), f"padding after {name}"
        pos = data + size + pad
    for at in [0, 511, 1023]:
        yield pos + at, f"end-of-archive byte {at}"


def disclosure_offsets(raw: bytes) -> Iterator[tuple[int, str]]:
    """Offsets in every field of a disclosure: its name, first and last value byte, and a stride."""
    for j, name in enumerate(DISCLOSURE_FIELDS):
        mark = (b"{" if j == 0 else b",") + json.dumps(name).encode() + b":"
        start = raw.index(mark)
        end = (
            raw.index(b',"' + DISCLOSURE_FIELDS[j + 1].encode() + b'":')
            if j + 1 < len(DISCLOSURE_FIELDS)
            else len(raw) - 1
        )
        yield start + 2, f"name of {name}"
        yield start + len(mark), f"first byte of {name}"
        yield end - 1, f"last byte of {name}"
    yield len(raw) - 1, "closing brace"
    for at in range(5, len(raw), 211):
        yield at, f"byte {at}"


def flip_all(
    node: str, tmp_path: Path, name: str, raw: bytes, offsets: list[tuple[int, str]]
) -> None:
    def one(item: tuple[int, tuple[int, str]]) -> None:
        j, (at, what) = item
        changed = bytearray(raw)
        changed[at] ^= 0x80 if j % 2 else 0x01
        path = tmp_path / f"{j}-{name}"
        path.write_bytes(bytes(changed))
        assert_refused(verify(node, path, "--trust", SIGNER), f"{name} with {what} changed")

    assert len(offsets) > 30
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(one, enumerate(offsets)))


@pytest.mark.parametrize("name", ["run.orchpack", "step.orchproof", "decision.orchproof"])
def test_golden_files_verify(node: str, name: str) -> None:
    for args in [["--trust", SIGNER], ["--trust", SIGNER, "--since", str(KEPT)]]:
        result = verify(node, GOLDEN / name, *args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip() == "verified: every check passed"


def test_bundle_encoding_in_the_document_is_exact() -> None:
    # The archive rebuilt from its members as section 3.1/3.2 says is the golden file itself:
    # the tamper cases below change one thing and nothing else.
    raw = (GOLDEN / "run.orchpack").read_bytes()
    assert write_bundle(read_bundle(raw)) == raw


def test_any_changed_byte_of_the_bundle_is_refused(node: str, tmp_path: Path) -> None:
    raw = (GOLDEN / "run.orchpack").read_bytes()
    flip_all(node, tmp_path, "run.orchpack", raw, list(bundle_offsets(raw)))
    for what, changed in [("an extra byte", raw + b"\0"), ("a cut", raw[:-512])]:
        path = tmp_path / "cut.orchpack"
        path.write_bytes(changed)
        assert_refused(verify(node, path, "--trust", SIGNER), f"bundle with {what}")


@pytest.mark.parametrize("name", ["step.orchproof", "decision.orchproof"])
def test_any_changed_byte_of_a_disclosure_is_refused(node: str, tmp_path: Path, name: str) -> None:
    raw = (GOLDEN / name).read_bytes()
    flip_all(node, tmp_path, name, raw, list(disclosure_offsets(raw)))


def rehash_event(members: dict[str, bytes], seq: int, old: bytes, new: bytes) -> None:
    lines = members["events.jsonl"].split(b"\n")
    body = lines[seq][: lines[seq].rindex(b',"hash":')].replace(old, new) + b"}"
    lines[seq] = body[:-1] + b',"hash":"' + key(body).encode() + b'"}'
    members["events.jsonl"] = b"\n".join(lines)


def seal_entry(members: dict[str, bytes]) -> str:
    return next(n for n, b in members.items() if n.endswith(".entry") and b'"type":"seal"' in b)


def _edit(name: str, old: bytes, new: bytes) -> Callable[[dict[str, bytes]], None]:
    def edit(members: dict[str, bytes]) -> None:
        assert old in members[name], f"{old!r} not in {name}"
        members[name] = members[name].replace(old, new, 1)

    return edit


def _drop(*names: str) -> Callable[[dict[str, bytes]], None]:
    def drop(members: dict[str, bytes]) -> None:
        for name in names:
            del members[name]

    return drop


def _golden_members() -> dict[str, bytes]:
    return read_bundle((GOLDEN / "run.orchpack").read_bytes())


def _latency(members: dict[str, bytes], seq: int) -> tuple[bytes, bytes]:
    """Event ``seq``'s ``latency_ms`` member, and the same with its last digit changed."""
    found = re.search(rb'"latency_ms":[0-9.]+', members["events.jsonl"].split(b"\n")[seq])
    assert found is not None, f"event {seq} has no latency_ms"
    old = found.group()
    return old, old[:-1] + (b"1" if old[-1:] != b"1" else b"2")


def _first_path_hash(name: str) -> Callable[[dict[str, bytes]], None]:
    """Change the first hex digit of the first hash of a proof's path."""

    def edit(members: dict[str, bytes]) -> None:
        at = members[name].index(b'["') + 2
        digit = b"0" if members[name][at : at + 1] != b"0" else b"1"
        members[name] = members[name][:at] + digit + members[name][at + 1 :]

    return edit


_MEMBERS = _golden_members()
SPEC = "objects/" + json.loads(_MEMBERS["head.json"])["spec_hash"].removeprefix("sha256:")
LEDGER_3 = "ledger/00000000000000000003"
LATENCY_6 = _latency(_MEMBERS, 6)
BUNDLE_TAMPERS: dict[str, tuple[Callable[[dict[str, bytes]], None], str]] = {
    "an event's field": (
        _edit("events.jsonl", *LATENCY_6),
        "event 6: its hash does not match",
    ),
    "an event re-hashed": (
        lambda m: rehash_event(m, 6, *LATENCY_6),
        "event 7: seq, run or prev breaks the chain",
    ),
    "the head": (_edit("head.json", b'"host":"vm"', b'"host":"vx"'), "member 'head.json'"),
    "the seal entry": (
        lambda m: _edit(seal_entry(m), b'"events":14', b'"events":15')(m),
        "inclusion proof does not lead",
    ),
    "an inclusion path": (_first_path_hash(f"{LEDGER_3}.proof"), "inclusion proof does not lead"),
    "the checkpoint's size": (
        _edit("checkpoint.note", b"\n5\n", b"\n4\n"),
        "does not verify",
    ),
    "an extra object": (
        lambda m: m.update({"objects/" + key(b"extra")[7:]: b"extra"}),
        "is not referenced by the run",
    ),
    "a missing object": (_drop(SPEC), "is missing from the bundle"),
    "a dropped seal": (
        lambda m: _drop(seal_entry(m), seal_entry(m)[:-5] + "proof")(m),
        "no seal or adopt entry",
    ),
    "a dropped start": (
        _drop(f"{LEDGER_3}.entry", f"{LEDGER_3}.proof"),
        "holds no start or adopt entry",
    ),
    "the consistency proof": (_first_path_hash("consistency.json"), "member 'consistency.json'"),
    "the head's resume link": (
        _edit("head.json", b'"resumed_by":[]', b'"resumed_by":["x"]'),
        "member 'head.json': its hash does not match",
    ),
    "a dropped consistency proof": (
        _drop("consistency.json"),
        "the bundle has no consistency.json",
    ),
}


@pytest.mark.parametrize("case", sorted(BUNDLE_TAMPERS))
def test_bundle_with_rehashed_manifest_is_refused(node: str, tmp_path: Path, case: str) -> None:
    # The manifest's hashes are unkeyed: after a change the tamperer recomputes them, and the
    # event chain, records, proofs and signature must still catch it.
    edit, expect = BUNDLE_TAMPERS[case]
    members = read_bundle((GOLDEN / "run.orchpack").read_bytes())
    edit(members)
    path = tmp_path / "tampered.orchpack"
    path.write_bytes(write_bundle(members))
    assert_refused(verify(node, path, "--trust", SIGNER, "--since", str(KEPT)), case, expect)


def reseal(document: dict[str, Any]) -> bytes:
    fields = [key(canon(document[f])) for f in DISCLOSURE_FIELDS if f != "digests"]
    document["digests"] = {"fields": fields, "hash": key(canon(fields))}
    return canon(document)


def _b64_edit(value: str, old: bytes, new: bytes) -> str:
    raw = base64.b64decode(value)
    assert old in raw
    return base64.b64encode(raw.replace(old, new, 1)).decode()


def _record_edit(d: dict[str, Any]) -> None:
    d["step"]["record"] = _b64_edit(d["step"]["record"], b'"logical_time":1', b'"logical_time":9')
    d["step"]["key"] = key(base64.b64decode(d["step"]["record"]))


DISCLOSURE_TAMPERS: dict[str, tuple[str, Callable[[dict[str, Any]], None], str]] = {
    "the step record": ("step.orchproof", _record_edit, "audit path does not lead"),
    "a dropped artifact": (
        "step.orchproof",
        lambda d: d["artifacts"].pop(sorted(d["artifacts"])[0]),
        "not exactly what the record references",
    ),
    "the seal entry": (
        "step.orchproof",
        lambda d: d["seal"].update(entry=_b64_edit(d["seal"]["entry"], b":14,", b":15,")),
        "inclusion proof does not lead",
    ),
    "the checkpoint": (
        "step.orchproof",
        lambda d: d.update(checkpoint=_b64_edit(d["checkpoint"], b"\n5\n", b"\n6\n")),
        "does not verify",
    ),
    "the decision index": (
        "decision.orchproof",
        lambda d: d["decision"].update(index=1),
        "decision.key is not decisions[1]",
    ),
    "the step index": (
        "step.orchproof",
        lambda d: d["step"].update(index=1),
        "audit path does not lead",
    ),
}


def test_disclosure_document_encoding_is_exact() -> None:
    for name in ["step.orchproof", "decision.orchproof"]:
        raw = (GOLDEN / name).read_bytes()
        assert reseal(json.loads(raw)) == raw


@pytest.mark.parametrize("case", sorted(DISCLOSURE_TAMPERS))
def test_disclosure_with_rehashed_digests_is_refused(node: str, tmp_path: Path, case: str) -> None:
    name, edit, expect = DISCLOSURE_TAMPERS[case]
    document = json.loads((GOLDEN / name).read_bytes())
    edit(document)
    path = tmp_path / name
    path.write_bytes(reseal(document))
    assert_refused(verify(node, path, "--trust", SIGNER), case, expect)


def test_disclosed_step_count_is_bound(node: str, tmp_path: Path) -> None:
    # The digests are unkeyed: what binds the count is the seal's `steps` (formats.md 4.2).
    from traces._disclose import verify_disclosure

    document = json.loads((GOLDEN / "step.orchproof").read_bytes())
    document["step"]["count"] = 4
    path = tmp_path / "count.orchproof"
    path.write_bytes(reseal(document))
    assert_refused(
        verify(node, path, "--trust", SIGNER),
        "a step count of 4 for 3 steps",
        "a tree of 4 steps, the seal states 3",
    )
    assert not verify_disclosure(path.read_bytes(), [Verifier.parse(SIGNER)]).ok


def verifier_key(name: str, public: bytes) -> str:
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]
    encoded = base64.b64encode(b"\x01" + public).decode()
    return f"{name}+{key_id.hex()}+{encoded}"


@pytest.mark.parametrize("name", ["run.orchpack", "step.orchproof", "decision.orchproof"])
def test_an_untrusted_key_never_counts(node: str, name: str) -> None:
    # Same key name, another key: its id differs, so the signature is not one of a trusted key
    # and, the user having named keys, the note is a problem (formats.md section 2).
    public = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    wrong = verifier_key("golden.example/orch-log", public)
    assert_refused(verify(node, GOLDEN / name, "--trust", wrong), name, "signed by no trusted key")
    # Naming no key: a warning naming the signer, never "verified by" anything.
    result = verify(node, GOLDEN / name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"did not trust ({SIGNER_ID})" in result.stderr


def test_a_corrupt_verifier_key_is_a_usage_error(node: str) -> None:
    name, key_id, rest = SIGNER.split("+", 2)
    wrong_id = f"{name}+{int(key_id, 16) ^ 1:08x}+{rest}"
    for bad in [wrong_id, "no-plus-signs", f"{name}+{key_id}+AAAA"]:
        result = verify(node, GOLDEN / "run.orchpack", "--trust", bad)
        assert result.returncode == 2, result.stdout + result.stderr


# ---- fresh exports: the node verifier agrees with `orch verify` ----


def orch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orch.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A scratch store with a failed run (seed 2**63-1), a kept checkpoint and an ok run."""
    from evidence_pipeline import record

    from traces import DirectoryStore

    root = tmp_path_factory.mktemp("fresh")
    env = {**os.environ, "ORCH_KEYS": str(root / "keys"), "ORCH_STORE": str(root / "store")}
    env.pop("ORCH_SIGNING_KEY", None)
    made = orch(env, "keys", "create", "test.example/log", "--json")
    assert made.returncode == 0, made.stderr
    shown = orch(env, "keys", "show", "test.example/log")
    vkey = next(w for w in shown.stdout.split() if w.startswith("test.example/log+"))
    pipeline = f"{FIXTURES / 'evidence_pipeline.py'}:PIPELINE"
    # state=x is no artifact key: the run fails at its first step, and is still evidence.
    orch(env, "run", pipeline, "-i", "q=hi", "-i", "state=x", "--seed", str(2**63 - 1))
    (failed,) = json.loads(orch(env, "runs", "--json").stdout)
    assert failed["status"] == "failed"
    failed_id = failed["run_id"]
    kept = root / "kept.note"
    assert orch(env, "checkpoint", "--key", "test.example/log", "-o", str(kept)).returncode == 0
    ok_id = record(DirectoryStore(root / "store"), q='say "hi"\n\u00e9\u2028\U0001f600').run_id
    files: list[Path] = []
    for run, extra, out in [
        (ok_id, ["--since", str(kept)], "ok.orchpack"),
        (failed_id, [], "failed.orchpack"),
    ]:
        done = orch(env, "export", run, "--key", "test.example/log", "-o", str(root / out), *extra)
        assert done.returncode == 0, done.stdout + done.stderr
        files.append(root / out)
    for run, what, out in [
        (ok_id, ["--step", "ask"], "ask.orchproof"),
        (ok_id, ["--step", "route"], "route.orchproof"),
        (ok_id, ["--decision", "route#1"], "d1.orchproof"),
        (failed_id, ["--step", "route"], "failed-route.orchproof"),
    ]:
        done = orch(env, "prove", run, *what, "-o", str(root / out))
        assert done.returncode == 0, done.stdout + done.stderr
        files.append(root / out)
    return {"env": env, "vkey": vkey, "kept": kept, "files": files}


def test_node_agrees_with_orch_verify_on_fresh_exports(
    node: str, fresh: dict[str, Any], tmp_path: Path
) -> None:
    for path in fresh["files"]:
        for since in [[], ["--since", str(fresh["kept"])]]:
            args = ["--trust", fresh["vkey"], *since]
            ours = verify(node, path, *args)
            theirs = orch(fresh["env"], "verify", str(path), *args)
            # formats.md 3.4.7: a bundle held against an older kept checkpoint must carry the
            # consistency proof from it; failed.orchpack was exported without --since.
            refused = path.name == "failed.orchpack" and bool(since)
            assert (ours.returncode, theirs.returncode) == (int(refused), int(refused)), (
                f"{path.name} {since}\nnode: {ours.stdout}{ours.stderr}\norch: {theirs.stdout}"
            )
            if refused:
                assert "has no consistency.json" in ours.stdout
                assert "carries no consistency proof" in theirs.stdout
        args = ["--trust", fresh["vkey"]]
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        copy = tmp_path / path.name
        copy.write_bytes(bytes(raw))
        assert_refused(verify(node, copy, *args), f"{path.name} with its middle byte changed")
        assert orch(fresh["env"], "verify", str(copy), *args).returncode != 0


# ---- floats: the canonical text the document specifies is orjson's ----


def _doubles() -> list[float]:
    import random

    rng = random.Random(20261206)
    found = [0.0, -0.0, 1.0, -1.0, 0.1, 1e15, 1e16, 1e-5, 1e-6, 5e-324, 1.7976931348623157e308]
    found += [12.921, 2.5e-5, 1234567890123456.8, 9990000000000000.0, 1.5e16, 0.30000000000000004]
    while len(found) < 3000:
        x = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if x == x and abs(x) != float("inf"):
            found.append(x)
        found.append(rng.uniform(-1, 1) * 10 ** rng.randint(-8, 18))
    return found


def test_floats_are_read_as_orjson_writes_them(node: str, tmp_path: Path) -> None:
    # Every double orjson writes parses as canonical, and each of Python's own spellings
    # (repr, json.dumps) that differs from orjson's is refused as non-canonical.
    doubles = _doubles()
    written = [orjson.dumps(x).decode() for x in doubles]
    others = sorted({repr(x) for x in doubles} - set(written) | {"1E5", "1.0e5", "1.50", "01.5"})
    assert "1e-05" in others and "1e+16" in written and "0.00001" in written
    cases = tmp_path / "floats.json"
    cases.write_text(json.dumps({"canonical": written, "other": others}))
    script = f"""
        import {{ parseJson, floatText, F }} from {json.dumps(VERIFIER.as_uri())};
        import fs from "node:fs";
        const cases = JSON.parse(fs.readFileSync({json.dumps(str(cases))}, "utf8"));
        const bad = [];
        for (const text of cases.canonical) {{
          let v;
          try {{ v = parseJson(Buffer.from(text)).value; }} catch {{ bad.push(text); continue; }}
          if (!(v instanceof F) || floatText(v.v) !== text) bad.push(text);
        }}
        for (const text of cases.other) {{
          try {{ parseJson(Buffer.from(text)); bad.push("accepted " + text); }} catch {{}}
        }}
        console.log(JSON.stringify(bad));
    """
    result = subprocess.run(
        [node, "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


# ---- runs in every lifecycle state (ok, failed, cancelled, superseded, resumed, killed) ----


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A bundle of each run of the tamper population, with the key that signed them."""
    from tamper_cases import populate

    from traces import DirectoryStore
    from traces._bundle import export_bundle

    root = tmp_path_factory.mktemp("lifecycle")
    store = DirectoryStore(root / "store")
    pop = populate(store)
    bundles = {}
    for role, run in pop.runs.items():
        path = root / f"{role}.orchpack"
        path.write_bytes(export_bundle(store, run, checkpoint=pop.note, orch_version="test"))
        bundles[role] = path
    return {
        "store": store,
        "runs": pop.runs,
        "bundles": bundles,
        "vkey": pop.signer.verifier_key,
        "verifiers": pop.verifiers,
    }


# What orch's exporter leaves out of a bundle of a run killed during a step (formats.md 3.3,
# item 6): the effect records (with requests and responses) and decisions of steps that never
# ended, which the run's verification reads.
UNENDED = ("died", "interrupted")


def _unended_artifacts(store: Any, run: str) -> dict[str, bytes]:
    events = [orjson.loads(line) for line in store.read_events(run)]
    ended = {e.get("step") for e in events if e["type"] == "step_end"}
    keys: list[str] = []
    for e in events:
        data = e.get("data", {})
        if e.get("step") in ended or "step" not in e:
            continue
        if e["type"] == "effect" and "served_from" not in data:
            record = json.loads(store.get(data["record"]))
            keys += [data["record"], record["request"]]
            keys += [record["response"]] if record["response"] else []
        elif e["type"] == "decision":
            keys.append(data["decision"])
    return {"objects/" + k.removeprefix("sha256:"): store.get(k) for k in keys}


def _completed(lifecycle: dict[str, Any], role: str) -> bytes:
    """The role's bundle with what formats.md 3.3 says it holds (orch's export, plus for a run
    killed mid-step the artifacts of its unended steps)."""
    raw = lifecycle["bundles"][role].read_bytes()
    if role not in UNENDED:
        return raw
    members = read_bundle(raw)
    members.update(_unended_artifacts(lifecycle["store"], lifecycle["runs"][role]))
    return write_bundle(members)


def test_node_verifies_runs_in_every_lifecycle_state(
    node: str, lifecycle: dict[str, Any], tmp_path: Path
) -> None:
    from traces._bundle import verify_bundle

    assert set(lifecycle["runs"]) >= {"superseded", "resume", "interrupted", "died", "cancelled"}
    linked = 0
    for role in lifecycle["runs"]:
        path = tmp_path / f"{role}.orchpack"
        path.write_bytes(_completed(lifecycle, role))
        ours = verify(node, path, "--trust", lifecycle["vkey"])
        assert ours.returncode == 0, f"{role}: {ours.stdout}{ours.stderr}"
        assert verify_bundle(path.read_bytes(), lifecycle["verifiers"]).ok, role
        # The head's seal covers its resume links when they are set (formats.md 0.2).
        head = json.loads(read_bundle(path.read_bytes())["head.json"])
        if head["resumed_by"] or head["resumed_from"]:
            members = read_bundle(path.read_bytes())
            field = "resumed_by" if head["resumed_by"] else "resumed_from"
            changed = dict(head, **{field: ["other"] if field == "resumed_by" else "other"})
            members["head.json"] = orjson.dumps(changed, option=orjson.OPT_SORT_KEYS)
            path.write_bytes(write_bundle(members))
            assert_refused(
                verify(node, path), f"{role} with {field} changed", "head.json': its hash"
            )
            linked += 1
    assert linked >= 2, "no run with resume links: the head seal's later fields went untested"
    # As orch exports them, bundles of runs killed mid-step hold what 3.3 item 6 says.
    for role in UNENDED:
        exported = lifecycle["bundles"][role]
        ours = verify(node, exported, "--trust", lifecycle["vkey"])
        assert ours.returncode == 0, f"{role} as exported: {ours.stdout}{ours.stderr}"
        assert exported.read_bytes() == _completed(lifecycle, role), role


def _drop_seal(members: dict[str, bytes]) -> None:
    name = seal_entry(members)
    del members[name], members[name[:-5] + "proof"]


# Cases where orch's Python verifier first disagreed with docs/formats.md (found by the node
# verifier, since fixed): (bundle, edit, whether the document accepts the result, the rule).
# Both verifiers must now do what the document says.
ORCH_GAPS: dict[str, tuple[str, Callable[[dict[str, bytes]], None] | None, bool, str]] = {
    "a bundle without its start entry": (
        "golden",
        _drop("ledger/00000000000000000003.entry", "ledger/00000000000000000003.proof"),
        False,
        "3.5 D: the bundle must hold the run's start entry (it binds lineage and resumed_from)",
    ),
    "a superseded run's bundle without its seal": (
        "superseded",
        _drop_seal,
        False,
        "3.5 D: a head with a root hash needs a seal (or adopt) entry stating it; orch only "
        "compares statuses, and 'superseded' outranks the seal's",
    ),
    "a bundle of an interrupted run": (
        "interrupted",
        None,
        True,
        "3.5 D: a status entry's `by` lineage cannot be checked in a bundle (the resume's start "
        "entry is not in it); orch reports it as a rewritten ledger",
    ),
    "a bundle of a run killed mid-step": (
        "died",
        None,
        True,
        "3.3 item 6: export leaves out the effect records and decisions of unended steps, which "
        "verify_run reads; the completed bundle is then refused as carrying extra objects",
    ),
}


@pytest.mark.parametrize("case", sorted(ORCH_GAPS))
def test_orch_verify_does_what_the_document_says(
    node: str, lifecycle: dict[str, Any], tmp_path: Path, case: str
) -> None:
    from traces._bundle import verify_bundle

    source, edit, accepted, reason = ORCH_GAPS[case]
    if source == "golden":
        members, vkey = read_bundle((GOLDEN / "run.orchpack").read_bytes()), SIGNER
    else:
        members, vkey = read_bundle(_completed(lifecycle, source)), lifecycle["vkey"]
    if edit is not None:
        edit(members)
    path = tmp_path / "case.orchpack"
    path.write_bytes(write_bundle(members))
    ours = verify(node, path, "--trust", vkey)
    theirs = verify_bundle(path.read_bytes(), [Verifier.parse(vkey)])
    if accepted:
        assert ours.returncode == 0, f"node: {ours.stdout}{ours.stderr}"
    else:
        assert_refused(ours, case)
    assert theirs.ok == accepted, f"orch verify disagrees with formats.md {reason}: " + "; ".join(
        f"{p.subject}: {p.detail}" for p in theirs.problems
    )


def test_node_verifies_runs_that_waited_for_an_answer_and_turns_of_a_thread(
    node: str, tmp_path: Path
) -> None:
    """A run that waits on a question, the resume its answer made (with the answer and the
    question in its bundle), and a turn of a thread (a head with thread and turn)."""
    import anyio
    from ask_pipelines import APPROVAL

    import orch
    from traces import DirectoryStore
    from traces._bundle import export_bundle, verify_bundle
    from traces._evidence import choose_checkpoint
    from traces._ledger import ledger_of
    from traces._note import Signer

    signer = Signer.generate("test.example/log")
    store = DirectoryStore(tmp_path / "store")

    async def make() -> list[str]:
        waiting = await orch.arun(APPROVAL, {"text": "hi"}, store=store)
        done = await orch.aanswer(
            APPROVAL, waiting.run_id, {"approve": True}, by="alice", store=store
        )
        alice = {"send#0": orch.Answer(question="send#0", value={"approve": True}, by="alice")}
        turn = await orch.arun(APPROVAL, {"text": "t"}, store=store, answers=alice, thread="t-1")
        return [waiting.run_id, done.run_id, turn.run_id]

    runs = anyio.run(make)
    ledger = ledger_of(store)
    for run in runs:
        last = ledger.run_entries(run)[-1][0]
        note, _ = choose_checkpoint(store, last, [signer])
        path = tmp_path / f"{run}.orchpack"
        path.write_bytes(export_bundle(store, run, checkpoint=note, orch_version="test"))
        assert verify_bundle(path.read_bytes(), [signer.verifier()]).ok, run
        ours = verify(node, path, "--trust", signer.verifier_key)
        assert ours.returncode == 0, f"{run}: {ours.stdout}{ours.stderr}"
    members = read_bundle((tmp_path / f"{runs[1]}.orchpack").read_bytes())
    start = json.loads(members["events.jsonl"].splitlines()[0])
    answer_key = start["data"]["answers"]["send#0"].removeprefix("sha256:")
    assert json.loads(members[f"objects/{answer_key}"])["by"] == "alice"
    threaded = json.loads(read_bundle((tmp_path / f"{runs[2]}.orchpack").read_bytes())["head.json"])
    assert (threaded["thread"], threaded["turn"]) == ("t-1", 1)


# ---- a step stopped part-way: its effects skip the slots of the calls it cut short ----


def test_node_verifies_a_step_timed_out_mid_gather(node: str, tmp_path: Path) -> None:
    # formats.md E.5: a step not ok lists its effects by increasing index, with gaps.
    from traces import DirectoryStore
    from traces._bundle import export_bundle, verify_bundle
    from traces._ledger import ledger_of
    from traces._note import Signer

    store = DirectoryStore(tmp_path / "store")
    result = anyio.run(lambda: arun(stalled_pipeline(), {"n": 3}, store=store))
    assert result.status == "failed"
    record = json.loads(store.get(dict(result.record.steps)["fan"]))
    assert [json.loads(store.get(k))["index"] for k in record["effects"]] == [1, 2]
    signer = Signer.generate("test")
    note = ledger_of(store).checkpoint([signer])
    path = tmp_path / "stalled.orchpack"
    path.write_bytes(export_bundle(store, result.run_id, checkpoint=note, orch_version="test"))
    assert verify_bundle(path.read_bytes(), [signer.verifier()]).ok
    ours = verify(node, path, "--trust", signer.verifier_key)
    assert ours.returncode == 0, ours.stdout + ours.stderr
