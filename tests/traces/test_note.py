"""C2SP signed notes and tlog checkpoints: the vectors of the spec and of Go's sumdb/note.

Vectors: c2sp.org/signed-note (the example.com/foo key and note), c2sp.org/tlog-checkpoint
(the example checkpoint), golang.org/x/mod/sumdb/note (the PeterNeumann signer key, its
signature, the EnochRoot cosignature, and the malformed notes of TestOpen) and
golang.org/x/mod/sumdb/tlog (TestFormatTree).
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from traces._note import (
    MAX_SIGNATURES,
    Checkpoint,
    NoteSignature,
    Signer,
    Verifier,
    add_signatures,
    check_key_name,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
)
from traces._tlog import leaf_hash
from traces.errors import NoteError

# golang.org/x/mod/sumdb/note: "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALV..." holds 0x01 || seed.
PETER_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngot"
    "pRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWL"
    "ox33WWd1RvMc+QQ=\n"
)
# c2sp.org/signed-note, "Verifier keys", Example.
FOO_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
FOO_NOTE = (
    "This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi"
    "2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
# c2sp.org/tlog-checkpoint, the example at the top.
SOFA = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/"
    "Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)


def peter() -> Signer:
    return Signer("PeterNeumann", Ed25519PrivateKey.from_private_bytes(PETER_SEED))


def _note(text: str) -> bytes:
    return text.encode()


# --- keys and signatures: Go's vectors --------------------------------------------------------


def test_peter_neumann_key_id_vkey_and_signature() -> None:
    signer = peter()
    assert signer.key_id == 0xC74F20A3
    expected = hashlib.sha256(b"PeterNeumann\n\x01" + signer.public_key).digest()[:4]
    assert signer.key_id.to_bytes(4, "big") == expected
    assert signer.verifier_key == PETER_VKEY
    assert sign_note(TEXT, [signer]) == _note(TEXT + "\n" + PETER_SIG)
    assert sign_note(TEXT.encode(), [signer, signer]) == _note(TEXT + "\n" + PETER_SIG)
    verifier = Verifier.parse(PETER_VKEY)
    assert (verifier.name, verifier.key_id, verifier.vkey) == (
        "PeterNeumann",
        0xC74F20A3,
        PETER_VKEY,
    )
    assert verifier == signer.verifier()
    assert "PRIVATE" not in repr(signer)


def test_the_spec_example_note_verifies() -> None:
    opened = open_note(_note(FOO_NOTE), [Verifier.parse(FOO_VKEY)])
    assert opened.text == "This is an example message.\n"
    assert [s.key for s in opened.verified] == ["example.com/foo+530d903a"]
    assert opened.unknown == ()
    assert opened.require_verified() is opened


def test_signer_and_verifier_agree_and_reject_changes() -> None:
    signer = Signer.generate("EnochRoot")
    verifier = Verifier.parse(signer.verifier_key)
    signature = signer.sign(b"hi")
    assert verifier.verify(b"hi", signature)
    assert not verifier.verify(b"hi", bytes([signature[0] ^ 1]) + signature[1:])
    assert not verifier.verify(b"hj", signature)
    assert not verifier.verify(b"hi", signature[:-1])


def test_verifier_key_manglings_are_rejected() -> None:
    Verifier.parse(PETER_VKEY)
    raw = PETER_VKEY.encode()
    bad: list[str] = []
    for i in range(len(raw) + 1):
        for j in range(i + 1, len(raw) + 1):
            if (i, j) != (0, len(raw)):
                bad.append(raw[i:j].decode())
    for i in range(len(raw)):
        bad.append((raw[:i] + bytes([raw[i] + 1]) + raw[i + 1 :]).decode())
    # Go's: a key of the wrong length, and an unknown algorithm, each with a matching key id.
    bad.append("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    bad.append("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    bad.append(PETER_VKEY.replace("c74f20a3", "C74F20A3"))  # the spec says lowercase hex
    accepted = []
    for vkey in bad:
        try:
            Verifier.parse(vkey)
        except NoteError:
            continue
        accepted.append(vkey)
    assert accepted == []


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("PeterNeumann", "is not <name>+<key id>+<key>"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "contains ' '"),
        (PETER_VKEY.replace("c74f20a3", "c74f20a4"), "claims key id c74f20a4 but"),
        (PETER_VKEY.replace("+c74f20a3+", "+c74f20a+"), "not 8 lowercase hex"),
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "type 0x65"),
        (PETER_VKEY[:-2], "not standard base64"),
    ],
)
def test_verifier_key_errors_say_what_is_wrong(vkey: str, message: str) -> None:
    with pytest.raises(NoteError, match=message.replace("+", r"\+")):
        Verifier.parse(vkey)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb", "a\u00a0b", "a\u2003b", "a\x01b"])
def test_bad_key_names(name: str) -> None:
    with pytest.raises(NoteError, match="key name"):
        check_key_name(name)
    with pytest.raises(NoteError):
        Signer.generate(name)


# --- opening notes ----------------------------------------------------------------------------


def test_open_with_one_known_and_one_unknown_key() -> None:
    note = _note(TEXT + "\n" + PETER_SIG + ENOCH_SIG)
    opened = open_note(note, [Verifier.parse(PETER_VKEY)])
    assert opened.text == TEXT
    assert opened.verified == (
        NoteSignature("PeterNeumann", 0xC74F20A3, PETER_SIG.split(" ")[2].strip()),
    )
    assert [s.key for s in opened.unknown] == ["EnochRoot+af0cfe78"]
    both = open_note(note, [Verifier.parse(PETER_VKEY), Verifier.parse(ENOCH_VKEY)])
    assert [s.key for s in both.verified] == ["PeterNeumann+c74f20a3", "EnochRoot+af0cfe78"]
    assert both.unknown == ()


def test_a_note_no_given_key_signed_is_returned_unverified() -> None:
    opened = open_note(_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG), [])
    assert opened.verified == ()
    assert [s.key for s in opened.unknown] == ["PeterNeumann+c74f20a3", "EnochRoot+af0cfe78"]
    with pytest.raises(NoteError, match=r"signed by PeterNeumann\+c74f20a3, EnochRoot\+af0cfe78"):
        opened.require_verified()


def test_same_name_or_same_id_but_not_both_is_an_unknown_key() -> None:
    other = Signer.generate("PeterNeumann")  # same name, another key id
    opened = open_note(_note(TEXT + "\n" + PETER_SIG), [other.verifier()])
    assert opened.verified == ()
    assert len(opened.unknown) == 1
    renamed = PETER_SIG.replace("PeterNeumann", "CarmenSandiego")  # same key id, another name
    opened = open_note(_note(TEXT + "\n" + renamed), [Verifier.parse(PETER_VKEY)])
    assert opened.verified == ()
    assert [s.name for s in opened.unknown] == ["CarmenSandiego"]


def test_a_bad_signature_by_a_known_key_rejects_the_note() -> None:
    corrupt = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(NoteError, match=r"signature by PeterNeumann\+c74f20a3 does not verify"):
        open_note(_note(TEXT + "\n" + corrupt), [Verifier.parse(PETER_VKEY)])
    # Not even behind a good signature by the same key.
    with pytest.raises(NoteError, match="does not verify"):
        open_note(_note(TEXT + "\n" + PETER_SIG + corrupt), [Verifier.parse(PETER_VKEY)])
    # The same bad line by a key that is not given is only listed.
    opened = open_note(_note(TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG), [])
    assert len(opened.unknown) == 2
    with pytest.raises(NoteError, match="does not verify"):
        open_note(
            _note(TEXT.replace("problem,", "problem;") + "\n" + PETER_SIG), [peter().verifier()]
        )


def test_two_different_keys_with_one_name_and_id_are_refused() -> None:
    mallory = Verifier("PeterNeumann", Signer.generate("x").public_key)
    mallory.key_id = 0xC74F20A3  # a key id that collides with Peter's, as an attacker's would
    with pytest.raises(NoteError, match="two different verifier keys"):
        open_note(_note(TEXT + "\n" + PETER_SIG), [Verifier.parse(PETER_VKEY), mallory])
    peter_twice = [Verifier.parse(PETER_VKEY), Verifier.parse(PETER_VKEY)]
    assert open_note(_note(TEXT + "\n" + PETER_SIG), peter_twice).verified


MALFORMED = [
    (TEXT, "no blank line"),
    (TEXT + "\n", "no signature lines after its last blank line"),
    (TEXT + "\n" + PETER_SIG[:-1], "last signature line does not end in a newline"),
    ("\x01" + TEXT + "\n" + PETER_SIG, "control character"),
    (TEXT.replace("\n", "\r\n", 1) + "\n" + PETER_SIG, "control character"),
    (TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"), "is not standard base64"),
    (TEXT + "\n" + PETER_SIG + "Unexpected line.\n", "does not start with an em dash"),
    (TEXT + "\n" + PETER_SIG.replace("\u2014", "-"), "does not start with an em dash"),
    (TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Peter+Neumann"), "contains '\\+'"),
    (TEXT + "\n" + PETER_SIG.replace("PeterNeumann ", " "), "is empty"),
    (TEXT + "\n" + PETER_SIG.replace("AM=", "AN="), "not the canonical base64"),
    (TEXT + "\n" + PETER_SIG.replace("x08go", "x08g?"), "not standard base64"),
    (TEXT + "\n\u2014 PeterNeumann AAAAAA==\n", "has 4 bytes"),
    (TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1), "more than 100"),
    (TEXT + "\n" + PETER_SIG + "\n", "no signature lines after its last blank line"),
]


@pytest.mark.parametrize(("note", "message"), MALFORMED)
def test_malformed_notes_are_rejected(note: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        open_note(_note(note), [Verifier.parse(PETER_VKEY)])


def test_malformed_bytes_are_rejected() -> None:
    with pytest.raises(NoteError, match="not valid UTF-8"):
        open_note(b"\xff" + _note(TEXT + "\n" + PETER_SIG), [])
    with pytest.raises(NoteError, match="more than the"):
        open_note(b"a" * (1 << 20) + _note("\n\n" + PETER_SIG), [])
    with pytest.raises(NoteError, match="a note is bytes"):
        open_note(TEXT + "\n" + PETER_SIG, [])  # type: ignore[arg-type]


def test_signing_refuses_bad_text() -> None:
    with pytest.raises(NoteError, match="does not end in a newline"):
        sign_note("abc", [peter()])
    with pytest.raises(NoteError, match="control character"):
        sign_note("a\tb\n", [peter()])
    with pytest.raises(NoteError, match="not valid UTF-8"):
        sign_note(b"\xc3\n", [peter()])
    with pytest.raises(NoteError, match="at least one signature"):
        sign_note(TEXT, [])


printable = st.text(st.characters(min_codepoint=0x20, codec="utf-8"), max_size=40).filter(
    lambda s: "\n" not in s
)


@given(st.lists(printable, min_size=1, max_size=5))
def test_sign_open_round_trip(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"  # blank lines inside the text are allowed
    a, b = peter(), Signer.generate("example.com/witness")
    note = sign_note(text, [a, b])
    opened = open_note(note, [a.verifier(), b.verifier()])
    assert opened.text == text
    assert [s.name for s in opened.verified] == ["PeterNeumann", "example.com/witness"]


def test_add_signatures_keeps_lines_and_replaces_the_same_key() -> None:
    note = _note(TEXT + "\n" + PETER_SIG + ENOCH_SIG)
    witness = Signer.generate("example.com/witness")
    cosigned = add_signatures(note, [witness])
    assert cosigned.startswith(note)  # existing lines kept byte for byte, in order
    opened = open_note(cosigned, [Verifier.parse(PETER_VKEY), witness.verifier()])
    assert [s.name for s in opened.verified] == ["PeterNeumann", "example.com/witness"]
    # Re-signing by a key already on the note replaces its line instead of repeating it.
    resigned = add_signatures(_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG), [peter()])
    assert resigned == _note(TEXT + "\n" + ENOCH_SIG + PETER_SIG)
    with pytest.raises(NoteError, match="no signer"):
        add_signatures(note, [])
    with pytest.raises(NoteError, match="no blank line"):
        add_signatures(_note(TEXT), [witness])


# --- checkpoints ------------------------------------------------------------------------------


def test_go_sumdb_tree_vector() -> None:
    # sumdb/tlog TestFormatTree: RecordHash("hello world") is the RFC 6962 leaf hash.
    golden = "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n"
    checkpoint = Checkpoint("go.sum database tree", 123456789012, leaf_hash(b"hello world"))
    assert checkpoint.text() == golden
    assert Checkpoint.parse(golden) == checkpoint
    assert Checkpoint.parse(golden.encode()) == checkpoint


def test_the_spec_example_checkpoint() -> None:
    checkpoint, opened = open_checkpoint(_note(SOFA), [])
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.extensions == ()
    assert [s.name for s in opened.unknown] == ["example.com/behind-the-sofa"]
    with pytest.raises(NoteError, match="which you did not give as trusted"):
        opened.require_verified()


def test_checkpoint_sign_and_open() -> None:
    log = Signer.generate("example.com/log")
    checkpoint = Checkpoint("example.com/log", 7, leaf_hash(b"x"), ("ext one", "ext-2"))
    note = sign_checkpoint(checkpoint, [log])
    root = base64.b64encode(checkpoint.root).decode()
    assert note.decode().startswith(f"example.com/log\n7\n{root}\next one\next-2\n\n\u2014 ")
    got, opened = open_checkpoint(note, [log.verifier()])
    assert got == checkpoint
    assert [s.key for s in opened.verified] == [f"example.com/log+{log.key_id:08x}"]


@given(
    st.text(st.characters(min_codepoint=0x20, codec="utf-8"), min_size=1).filter(
        lambda s: "\n" not in s
    ),
    st.integers(min_value=0, max_value=(1 << 63) - 1),
    st.binary(min_size=32, max_size=32),
    st.lists(printable.filter(bool), max_size=3),
)
def test_checkpoint_text_round_trip(origin: str, size: int, root: bytes, ext: list[str]) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(ext))
    assert Checkpoint.parse(checkpoint.text()) == checkpoint


ROOT_B64 = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"log\n1\n{ROOT_B64}", "does not end in a newline"),
        ("log\n1\n", "has 2 lines"),
        (f"\n1\n{ROOT_B64}\n", "line 1 is empty"),
        (f"log\n1\n{ROOT_B64}\n\n", "line 4 is empty"),
        (f"log\n\n{ROOT_B64}\n", "line 2 is empty"),
        (f"log\n0xabcdef\n{ROOT_B64}\n", "line 2 \\(tree size\\) '0xabcdef'"),
        (f"log\n+5\n{ROOT_B64}\n", "line 2"),
        (f"log\n-1\n{ROOT_B64}\n", "line 2"),
        (f"log\n05\n{ROOT_B64}\n", "without sign or leading zeros"),
        (f"log\n 5\n{ROOT_B64}\n", "line 2"),
        (f"log\n1_000\n{ROOT_B64}\n", "line 2"),
        (f"log\n\u0663\n{ROOT_B64}\n", "line 2"),  # an Arabic-Indic digit, which int() takes
        (f"log\n{1 << 63}\n{ROOT_B64}\n", "larger than 2\\*\\*63-1"),
        ("log\n1\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBTOOBIG=\n", "line 3 \\(root hash\\)"),
        (f"log\n1\n{base64.b64encode(bytes(31)).decode()}\n", "decodes to 31 bytes"),
        (f"log\n1\n{ROOT_B64[:-2]}B=\n", "not the canonical base64"),
        (f"log\n1\n{ROOT_B64} \n", "line 3"),
        (f"log\t1\n1\n{ROOT_B64}\n", "control character"),
    ],
)
def test_malformed_checkpoints_name_the_line(text: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        Checkpoint.parse(text)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", 1, bytes(32)), "origin '' must be one non-empty line"),
        (("a\nb", 1, bytes(32)), "origin 'a\\\\nb' must be one non-empty line"),
        (("log", -1, bytes(32)), "out of range"),
        (("log", True, bytes(32)), "not an int"),
        (("log", 1, bytes(31)), "32 raw bytes"),
        (("log", 1, bytes(32).hex()), "32 raw bytes"),
        (("log", 1, bytes(32), ("",)), "extension '' must be one non-empty line"),
        (("log", 1, bytes(32), ("a\x00b",)), "control character"),
    ],
)
def test_checkpoint_fields_are_checked(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(NoteError, match=message):
        Checkpoint(*args)  # type: ignore[arg-type]


def test_a_flipped_bit_anywhere_fails_or_changes_what_verifies() -> None:
    log, witness = Signer.generate("example.com/log"), Signer.generate("example.com/witness")
    verifiers = [log.verifier(), witness.verifier()]
    checkpoint = Checkpoint("example.com/log", 123, leaf_hash(b"entry"), ("extension",))
    note = sign_checkpoint(checkpoint, [log, witness])
    got, opened = open_checkpoint(note, verifiers)
    assert got == checkpoint
    assert len(opened.verified) == 2
    undetected = []
    for position in range(len(note)):
        for bit in range(8):
            changed = bytearray(note)
            changed[position] ^= 1 << bit
            try:
                got, opened = open_checkpoint(bytes(changed), verifiers)
            except NoteError:
                continue
            if len(opened.verified) == 2 or (opened.verified and got != checkpoint):
                undetected.append((position, bit))
    assert undetected == []
