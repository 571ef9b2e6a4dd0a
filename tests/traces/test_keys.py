"""The keyring of Ed25519 signing keys: files, permissions, names, PEM loading, trust specs."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from traces._keys import KeyRing, default_keyring_path, parse_trusted
from traces._note import Checkpoint, Signer, open_checkpoint, sign_checkpoint
from traces._tlog import EMPTY_ROOT
from traces.errors import SigningKeyError


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    return KeyRing(tmp_path / "keys")


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)  # so that only the mode the code asks for decides the permissions
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_list_sign_verify_round_trip(ring: KeyRing) -> None:
    info = ring.create("example.com/ledger")
    assert info.name == "example.com/ledger"
    assert info.path == ring.path / "example.com" / "ledger.key"
    assert info.public_path == ring.path / "example.com" / "ledger.pub"
    assert info.public_path.read_text() == info.verifier_key + "\n"
    assert info.verifier_key.startswith(f"example.com/ledger+{info.key_id}+")
    assert info.can_sign
    assert not info.insecure_permissions
    other = ring.create("witness")
    assert [k.name for k in ring.list()] == ["example.com/ledger", "witness"]
    assert ring.list()[0] == info

    signer, verifier = ring.signer("example.com/ledger"), ring.verifier("example.com/ledger")
    assert signer.verifier_key == info.verifier_key == verifier.vkey
    assert f"{signer.key_id:08x}" == info.key_id
    checkpoint = Checkpoint("example.com/ledger", 0, EMPTY_ROOT)
    note = sign_checkpoint(checkpoint, [signer, ring.load_signer("witness")])
    got, opened = open_checkpoint(note, [verifier, parse_trusted(other.verifier_key, ring)])
    assert got == checkpoint
    assert [s.name for s in opened.verified] == ["example.com/ledger", "witness"]


def test_private_key_is_created_0600_and_pem(ring: KeyRing, open_umask: None) -> None:
    info = ring.create("ledger")
    assert info.path is not None
    assert _mode(info.path) == 0o600
    assert info.path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert b"PRIVATE" not in info.public_path.read_bytes()  # type: ignore[union-attr]
    assert "PRIVATE" not in repr(info)


def test_an_existing_name_is_refused(ring: KeyRing) -> None:
    first = ring.create("ledger")
    with pytest.raises(SigningKeyError, match=r"already exists .*ledger\.key.*fix: choose"):
        ring.create("ledger")
    assert ring.signer("ledger").verifier_key == first.verifier_key  # nothing overwritten
    # A stale .pub alone also blocks the name, rather than being silently replaced.
    (ring.path / "lone.pub").write_text(first.verifier_key.replace("ledger", "lone") + "\n")
    with pytest.raises(SigningKeyError, match=r"lone\.pub"):
        ring.create("lone")
    assert not (ring.path / "lone.key").exists()


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a b",
        "a+b",
        "../escape",
        "/abs",
        ".hidden",
        "a//b",
        "a/",
        "a/../b",
        "x.key",
        "x.pub",
        "caf\u00e9",
        "a\\b",
        "a" * 201,
        "-dash",
    ],
)
def test_bad_names_are_refused(ring: KeyRing, name: str) -> None:
    with pytest.raises(SigningKeyError, match="key name"):
        ring.create(name)
    assert not ring.path.exists() or not any(ring.path.rglob("*.key"))


def test_non_ed25519_and_broken_pem_files_are_refused(ring: KeyRing, tmp_path: Path) -> None:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    (tmp_path / "p256.pem").write_bytes(ec_pem)
    with pytest.raises(SigningKeyError, match="holds an ECDSA key, not an Ed25519 key"):
        ring.load_signer(tmp_path / "p256.pem")
    x_pem = x25519.X25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    (tmp_path / "x.pem").write_bytes(x_pem)
    with pytest.raises(SigningKeyError, match="holds an X25519 key, not an Ed25519 key"):
        ring.load_signer(str(tmp_path / "x.pem"))
    encrypted = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"secret")
    )
    (tmp_path / "enc.pem").write_bytes(encrypted)
    with pytest.raises(SigningKeyError, match="is encrypted"):
        ring.load_signer(tmp_path / "enc.pem")
    (tmp_path / "junk.key").write_bytes(b"not a key")
    with pytest.raises(SigningKeyError, match="is not a PEM private key"):
        ring.load_signer(tmp_path / "junk.key")
    with pytest.raises(SigningKeyError, match="cannot read signing key file"):
        ring.load_signer(tmp_path / "missing.key")
    # A non-Ed25519 key put into the ring under a key name is refused the same way.
    ring.path.mkdir()
    (ring.path / "ecdsa.key").write_bytes(ec_pem)
    with pytest.raises(SigningKeyError, match="not an Ed25519 key"):
        ring.signer("ecdsa")


def test_load_signer_from_a_pem_path(ring: KeyRing, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "example-log.pem"
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    path.chmod(0o600)
    from_stem = ring.load_signer(path)
    assert from_stem.name == "example-log"
    named = ring.load_signer(str(path), name="example.com/log")
    assert named.name == "example.com/log"
    assert named.public_key == Signer("x", key).public_key
    info = ring.info(path, name="example.com/log")
    assert info.verifier_key == named.verifier_key
    assert not info.insecure_permissions
    with pytest.raises(SigningKeyError, match="key name 'bad name' contains ' '"):
        ring.load_signer(path, name="bad name")
    ring.create("ledger")
    with pytest.raises(SigningKeyError, match="named by its file"):
        ring.load_signer("ledger", name="other")


def test_loose_permissions_are_flagged_not_refused(ring: KeyRing) -> None:
    info = ring.create("ledger")
    assert info.path is not None
    info.path.chmod(0o644)
    listed = ring.list()[0]
    assert listed.insecure_permissions
    assert ring.info("ledger").insecure_permissions
    assert ring.info(info.path).insecure_permissions
    assert ring.signer("ledger").verifier_key == info.verifier_key


def test_a_replaced_public_key_is_detected(ring: KeyRing) -> None:
    ring.create("ledger")
    other = ring.create("other")
    assert other.public_path is not None
    (ring.path / "ledger.pub").write_text(
        other.public_path.read_text().replace("other+", "ledger+")
    )
    with pytest.raises(SigningKeyError, match=r"ledger\.pub does not hold the verifier key"):
        ring.signer("ledger")
    (ring.path / "ledger.pub").write_text(other.verifier_key + "\n")
    with pytest.raises(SigningKeyError, match="holds a key named 'other', not 'ledger'"):
        ring.verifier("ledger")


def test_a_public_only_entry_verifies_but_cannot_sign(ring: KeyRing) -> None:
    witness = Signer.generate("witness.example/w1")
    (ring.path / "witness.example").mkdir(parents=True)
    (ring.path / "witness.example" / "w1.pub").write_text(witness.verifier_key + "\n")
    (info,) = ring.list()
    assert (info.name, info.can_sign, info.path) == ("witness.example/w1", False, None)
    assert ring.verifier("witness.example/w1") == witness.verifier()
    with pytest.raises(SigningKeyError, match=r"no key 'witness.example/w1' .*fix: create it"):
        ring.signer("witness.example/w1")
    with pytest.raises(SigningKeyError, match="no key 'nobody'"):
        ring.info("nobody")


def test_a_verifier_comes_from_the_private_key_without_a_pub_file(ring: KeyRing) -> None:
    info = ring.create("ledger")
    assert info.public_path is not None
    info.public_path.unlink()
    assert ring.verifier("ledger").vkey == info.verifier_key
    assert ring.list()[0].public_path is None


def test_parse_trusted_forms(ring: KeyRing, tmp_path: Path) -> None:
    info = ring.create("ledger")
    by_vkey = parse_trusted(info.verifier_key, ring)
    by_name = parse_trusted("ledger", ring)
    by_path = parse_trusted(str(info.public_path), ring)
    assert by_vkey == by_name == by_path
    with pytest.raises(SigningKeyError, match="claims key id"):
        parse_trusted(info.verifier_key.replace(info.key_id, "00000000"), ring)
    with pytest.raises(SigningKeyError, match="does not exist"):
        parse_trusted(str(tmp_path / "nope.pub"), ring)
    (tmp_path / "garbage.pub").write_text("hello\n")
    with pytest.raises(SigningKeyError, match=r"garbage\.pub: verifier key 'hello'"):
        parse_trusted(str(tmp_path / "garbage.pub"), ring)
    with pytest.raises(SigningKeyError, match="no key 'unknown'"):
        parse_trusted("unknown", ring)


def test_keyring_location_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ORCH_KEYS", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert default_keyring_path() == tmp_path / "explicit"
    assert KeyRing().path == tmp_path / "explicit"
    monkeypatch.delenv("ORCH_KEYS")
    assert KeyRing().path == tmp_path / "xdg" / "orch" / "keys"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")  # invalid per XDG: ignored
    assert KeyRing().path == tmp_path / "home" / ".config" / "orch" / "keys"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert KeyRing().path == tmp_path / "home" / ".config" / "orch" / "keys"
    monkeypatch.setenv("ORCH_KEYS", "")  # empty means unset
    assert default_keyring_path() == tmp_path / "home" / ".config" / "orch" / "keys"
    assert default_keyring_path({"ORCH_KEYS": "~/k"}) == tmp_path / "home" / "k"
    # The default ring works end to end and lists nothing before the first key.
    assert KeyRing().list() == []
    KeyRing().create("ledger")
    assert (tmp_path / "home" / ".config" / "orch" / "keys" / "ledger.key").is_file()
    assert parse_trusted("ledger").name == "ledger"
