"""C2SP signed notes and tlog checkpoints with Ed25519 signatures, byte for byte.

A signed note (c2sp.org/signed-note) is UTF-8 text ending in a newline, a blank line, then one
or more lines ``— <key name> <base64(4-byte key id || signature)>``. The signature covers the
text including its final newline. A checkpoint (c2sp.org/tlog-checkpoint) is a note whose text
is the log's origin line, its tree size in decimal and its root hash in base64, then optional
extension lines. These are the formats Go's ``sumdb/note``, Sigstore and the witness network
read, so a third party can verify and cosign our checkpoints with their own tools.

Trust is the caller's: :func:`open_note` verifies every signature by a key it is given, rejects
the note if any of those fails, ignores signatures by other keys (listing them), and returns the
note even when no given key signed it; :meth:`OpenedNote.require_verified` is the spec's "MUST
reject a note no known key signed". This module must never treat unverified text as trusted,
never read a clock or a random source except to generate a key, and never print a private key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import NoteError

__all__ = [
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "Checkpoint",
    "NoteSignature",
    "OpenedNote",
    "Signer",
    "Verifier",
    "add_signatures",
    "check_key_name",
    "open_checkpoint",
    "open_note",
    "sign_checkpoint",
    "sign_note",
]

ALG_ED25519 = 0x01
"""Signature type byte of Ed25519 in key ids and verifier keys (c2sp.org/signed-note)."""

MAX_SIGNATURES = 100
"""Signature lines accepted in one note (the spec asks for at least 16; Go allows 100)."""

MAX_NOTE_BYTES = 1 << 20
"""Largest note accepted, so that a hostile note cannot make verification expensive."""

_SIG_PREFIX = "\u2014 "  # em dash, space
_HASH_SIZE = 32
_ED25519_KEY_SIZE = 32
_SIZE_RE = re.compile(r"0|[1-9][0-9]*")
# ASCII controls other than newline, and lone surrogates: never in a note.
_FORBIDDEN = re.compile("[\x00-\x09\x0b-\x1f\ud800-\udfff]")
_MAX_TREE_SIZE = (1 << 63) - 1  # Go's sumdb parses sizes as int64


def check_key_name(name: str) -> str:
    """Return ``name`` if it is a valid note key name, else raise :class:`NoteError`.

    Non-empty, no Unicode space, no ``+``, no ASCII control character (c2sp.org/signed-note).
    """
    if not isinstance(name, str) or not name:
        raise NoteError(f"key name {name!r} is empty; fix: use a name such as example.com/log")
    bad = next((c for c in name if c.isspace() or c == "+" or ord(c) < 0x20), None)
    if bad is not None:
        raise NoteError(
            f"key name {name!r} contains {bad!r}; fix: use a name without spaces, '+' or "
            "control characters (a schema-less URL such as example.com/log is recommended)"
        )
    return name


def _key_id(name: str, public_key: bytes) -> int:
    material = name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key
    return int.from_bytes(hashlib.sha256(material).digest()[:4], "big")


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64: the alphabet, padding and the one canonical encoding."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise NoteError(f"{what} {text!r} is not standard base64 (RFC 4648 §4)") from None
    if base64.b64encode(raw).decode() != text:
        raise NoteError(f"{what} {text!r} is not the canonical base64 encoding of its bytes")
    return raw


class Signer:
    """Signs note texts with an Ed25519 private key under a key name.

    ``key_id`` is the 32-bit key id: the first four bytes, big-endian, of
    SHA-256(name || 0x0A || 0x01 || 32-byte public key).
    """

    __slots__ = ("_key", "_public", "key_id", "name")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise NoteError(
                f"signer {name!r} needs an Ed25519 private key, not {type(private_key).__name__}"
            )
        self.name = check_key_name(name)
        self._key = private_key
        self._public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = _key_id(name, self._public)

    @classmethod
    def generate(cls, name: str) -> Signer:
        """Return a signer with a new random Ed25519 key."""
        return cls(name, Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return self._public

    @property
    def private_key(self) -> Ed25519PrivateKey:
        """The private key (for storing it; never log it)."""
        return self._key

    @property
    def verifier_key(self) -> str:
        """The verifier key string ``<name>+<hex key id>+<base64(0x01 || public key)>``."""
        return _vkey(self.name, self.key_id, self._public)

    def verifier(self) -> Verifier:
        """The :class:`Verifier` of this signer's public key."""
        return Verifier(self.name, self._public)

    def sign(self, text: bytes) -> bytes:
        """Return the raw 64-byte Ed25519 signature of ``text``."""
        return self._key.sign(bytes(text))

    def __repr__(self) -> str:
        return f"Signer({self.name!r}, key_id={self.key_id:08x})"


def _vkey(name: str, key_id: int, public_key: bytes) -> str:
    encoded = base64.b64encode(bytes([ALG_ED25519]) + public_key).decode()
    return f"{name}+{key_id:08x}+{encoded}"


class Verifier:
    """Verifies signatures by one Ed25519 public key under a key name."""

    __slots__ = ("_key", "key_id", "name", "public_key")

    def __init__(self, name: str, public_key: bytes) -> None:
        self.name = check_key_name(name)
        if len(public_key) != _ED25519_KEY_SIZE:
            raise NoteError(
                f"Ed25519 public key of {name!r} has {len(public_key)} bytes, it must have 32"
            )
        self.public_key = bytes(public_key)
        self.key_id = _key_id(name, self.public_key)
        self._key = Ed25519PublicKey.from_public_bytes(self.public_key)

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Parse a verifier key ``<name>+<8 lowercase hex>+<base64(0x01 || 32-byte key)>``."""
        fix = "; fix: copy the whole key line, as printed by the signer (name+id+key)"
        parts = vkey.split("+", 2) if isinstance(vkey, str) else []
        if len(parts) != 3:
            raise NoteError(f"verifier key {vkey!r} is not <name>+<key id>+<key>{fix}")
        name, hex_id, encoded = parts
        try:
            check_key_name(name)
        except NoteError as exc:
            raise NoteError(f"verifier key {vkey!r}: {exc}") from None
        if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
            raise NoteError(
                f"verifier key {vkey!r} has key id {hex_id!r}, not 8 lowercase hex digits{fix}"
            )
        raw = _b64decode(encoded, f"verifier key {vkey!r}: key")
        if not raw or raw[0] != ALG_ED25519:
            alg = f"0x{raw[0]:02x}" if raw else "none"
            raise NoteError(
                f"verifier key {vkey!r} has signature type {alg}; only Ed25519 (0x01) is supported"
            )
        verifier = cls(name, raw[1:])
        if verifier.key_id != int(hex_id, 16):
            raise NoteError(
                f"verifier key {vkey!r} claims key id {hex_id} but its name and key give "
                f"{verifier.key_id:08x}; the key line is corrupt{fix}"
            )
        return verifier

    @property
    def vkey(self) -> str:
        """This verifier's key string (the form :meth:`parse` reads)."""
        return _vkey(self.name, self.key_id, self.public_key)

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Report whether ``signature`` is this key's Ed25519 signature of ``text``."""
        if len(signature) != 64:
            return False
        try:
            self._key.verify(bytes(signature), bytes(text))
        except InvalidSignature:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Verifier) and other.vkey == self.vkey

    def __hash__(self) -> int:
        return hash(self.vkey)

    def __repr__(self) -> str:
        return f"Verifier({self.vkey!r})"


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note, as found (verified or not)."""

    name: str
    """Key name on the line."""
    key_id: int
    """The 32-bit key id its base64 starts with."""
    encoded: str
    """The base64 text of the line (key id and signature), kept byte for byte."""

    @property
    def key(self) -> str:
        """``name+hexid``: how messages name the key."""
        return f"{self.name}+{self.key_id:08x}"

    @property
    def line(self) -> str:
        """The signature line, with its newline."""
        return f"{_SIG_PREFIX}{self.name} {self.encoded}\n"


@dataclass(frozen=True)
class OpenedNote:
    """A parsed note: its text, the signatures that verified, and those by unknown keys."""

    text: str
    """The signed text, ending in a newline (the separating blank line excluded)."""
    verified: tuple[NoteSignature, ...]
    """Signatures by given keys that verified (one per key), in note order."""
    unknown: tuple[NoteSignature, ...]
    """Signatures by keys not given, unchecked (identical lines once), in note order."""

    def require_verified(self) -> OpenedNote:
        """Return self if a given key signed the note, else raise :class:`NoteError`."""
        if self.verified:
            return self
        found = ", ".join(sig.key for sig in self.unknown)
        raise NoteError(
            f"note is not signed by any trusted key; it is signed by {found}, which you did "
            "not give as trusted; fix: pass the verifier key of the log that signed it (and "
            "check that you mean to trust it)"
        )


def _check_text(text: str | bytes, what: str) -> str:
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError(f"{what} is not valid UTF-8 (byte {exc.start})") from None
    bad = _FORBIDDEN.search(text)  # one scan in C: signing and opening a note check each text
    if bad is not None:
        char, pos = bad.group(0), bad.start()
        if ord(char) < 0x20:
            raise NoteError(
                f"{what} contains control character {char!r} at offset {pos}; fix: notes may "
                "only hold printable text and newlines"
            )
        raise NoteError(f"{what} contains a lone surrogate at offset {pos}")
    return text


def _signature_line(signer: Signer, text: bytes) -> str:
    raw = signer.key_id.to_bytes(4, "big") + signer.sign(text)
    return f"{_SIG_PREFIX}{signer.name} {base64.b64encode(raw).decode()}\n"


def sign_note(text: str | bytes, signers: Sequence[Signer]) -> bytes:
    """Return the signed note of ``text`` (ending in a newline) signed by each signer."""
    checked = _check_text(text, "note text")
    if not checked.endswith("\n"):
        raise NoteError("note text does not end in a newline; fix: append '\\n'")
    if not signers:
        raise NoteError("a note needs at least one signature; fix: pass a signer")
    raw = checked.encode()
    lines: dict[tuple[str, int], str] = {}
    for signer in signers:
        lines.setdefault((signer.name, signer.key_id), _signature_line(signer, raw))
    return (checked + "\n" + "".join(lines.values())).encode()


def _split_note(note: bytes) -> tuple[str, list[NoteSignature]]:
    """Parse a note's structure (no signature checked)."""
    if not isinstance(note, bytes | bytearray):
        raise NoteError(f"a note is bytes, not {type(note).__name__}; fix: pass the raw note")
    if len(note) > MAX_NOTE_BYTES:
        raise NoteError(f"note has {len(note)} bytes, more than the {MAX_NOTE_BYTES} accepted")
    message = _check_text(note, "note")
    split = message.rfind("\n\n")
    if split < 0:
        raise NoteError(
            "note has no blank line before its signatures; fix: a note is text, a blank line, "
            "then signature lines"
        )
    text, block = message[: split + 1], message[split + 2 :]
    if not block:
        raise NoteError(
            "note has no signature lines after its last blank line; fix: a note ends with its "
            "signature lines, each ending in a newline"
        )
    if not block.endswith("\n"):
        raise NoteError("note's last signature line does not end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    signatures: list[NoteSignature] = []
    for number, line in enumerate(lines, start=1):
        where = f"signature line {number} ({line[:60]!r})"
        if not line.startswith(_SIG_PREFIX):
            raise NoteError(f"{where} does not start with an em dash and a space")
        name, _, encoded = line[len(_SIG_PREFIX) :].partition(" ")
        try:
            check_key_name(name)
        except NoteError as exc:
            raise NoteError(f"{where}: {exc}") from None
        raw = _b64decode(encoded, f"{where}: signature")
        if len(raw) < 5:
            raise NoteError(f"{where} has {len(raw)} bytes; it needs a key id and a signature")
        signatures.append(NoteSignature(name, int.from_bytes(raw[:4], "big"), encoded))
    return text, signatures


def open_note(note: bytes, verifiers: Sequence[Verifier]) -> OpenedNote:
    """Parse ``note`` and verify the signatures of the given keys.

    Raises :class:`NoteError` if the note is malformed or a signature by a given key (same name
    and key id) does not verify. Signatures by other keys are listed in ``unknown``, unchecked.
    A note that no given key signed is returned with ``verified`` empty: call
    :meth:`OpenedNote.require_verified` unless you mean to look at untrusted text.
    """
    known: dict[tuple[str, int], Verifier] = {}
    for verifier in verifiers:
        slot = (verifier.name, verifier.key_id)
        if known.setdefault(slot, verifier) != verifier:
            raise NoteError(
                f"two different verifier keys share name and key id {verifier.name}+"
                f"{verifier.key_id:08x}; fix: remove the one you did not mean to trust"
            )
    text, signatures = _split_note(note)
    raw_text = text.encode()
    verified: dict[tuple[str, int], NoteSignature] = {}
    unknown: dict[str, NoteSignature] = {}
    for sig in signatures:
        found = known.get((sig.name, sig.key_id))
        if found is None:
            unknown.setdefault(sig.line, sig)
            continue
        # Every signature by a known key is checked, repeats included, so that a bad one
        # cannot hide behind a good one.
        if not found.verify(raw_text, _b64decode(sig.encoded, "signature")[4:]):
            raise NoteError(
                f"signature by {sig.key} does not verify: the note was changed after it was "
                "signed, or the signature was forged; do not trust this note"
            )
        verified.setdefault((sig.name, sig.key_id), sig)
    return OpenedNote(text, tuple(verified.values()), tuple(unknown.values()))


def add_signatures(note: bytes, signers: Sequence[Signer]) -> bytes:
    """Return ``note`` with a signature line by each signer added (a cosignature).

    The existing lines are kept byte for byte, except one by the same key (name and key id)
    as a new signer, which the new line replaces. No existing signature is checked here:
    open the note with the keys you trust before you cosign it.
    """
    text, existing = _split_note(note)
    if not signers:
        raise NoteError("no signer given to add a signature; fix: pass a signer")
    raw = text.encode()
    new: dict[tuple[str, int], str] = {}
    for signer in signers:
        new.setdefault((signer.name, signer.key_id), _signature_line(signer, raw))
    kept = [sig.line for sig in existing if (sig.name, sig.key_id) not in new]
    return (text + "\n" + "".join(kept) + "".join(new.values())).encode()


@dataclass(frozen=True)
class Checkpoint:
    """A transparency log checkpoint (c2sp.org/tlog-checkpoint): a signed tree head."""

    origin: str
    """The log's identity, e.g. ``example.com/log42``; its key name should match it."""
    size: int
    """Number of leaves in the tree."""
    root: bytes
    """The 32-byte RFC 6962 root hash of the tree of ``size`` leaves."""
    extensions: tuple[str, ...] = ()
    """Opaque extra lines (not recommended: monitors cannot audit them)."""

    def __post_init__(self) -> None:
        for what, line in [("origin", self.origin), *(("extension", e) for e in self.extensions)]:
            if not isinstance(line, str) or not line or "\n" in line:
                raise NoteError(
                    f"checkpoint {what} {line!r} must be one non-empty line of text; fix: "
                    "remove newlines and pass a non-empty string"
                )
            _check_text(line, f"checkpoint {what} {line[:60]!r}")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise NoteError(f"checkpoint size {self.size!r} is not an int")
        if not 0 <= self.size <= _MAX_TREE_SIZE:
            raise NoteError(f"checkpoint size {self.size} is out of range [0, 2**63)")
        if not isinstance(self.root, bytes) or len(self.root) != _HASH_SIZE:
            raise NoteError(
                f"checkpoint root must be the 32 raw bytes of a SHA-256 root, not {self.root!r}"
            )

    def text(self) -> str:
        """The note text: origin, size, base64 root, extensions, each ending in a newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "".join(line + "\n" for line in [*lines, *self.extensions])

    @classmethod
    def parse(cls, text: str | bytes) -> Checkpoint:
        """Parse checkpoint text strictly; :class:`NoteError` names the line at fault."""
        text = _check_text(text, "checkpoint")
        if not text.endswith("\n"):
            raise NoteError("checkpoint text does not end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError(
                f"checkpoint has {len(lines)} lines; it needs an origin, a size and a root hash"
            )
        for number, line in enumerate(lines, start=1):
            if not line:
                raise NoteError(f"checkpoint line {number} is empty; no line may be empty")
        origin, size_line, root_line, *extensions = lines
        if not _SIZE_RE.fullmatch(size_line):
            raise NoteError(
                f"checkpoint line 2 (tree size) {size_line[:40]!r} is not a decimal number "
                "without sign or leading zeros"
            )
        size = int(size_line)
        if size > _MAX_TREE_SIZE:
            raise NoteError(f"checkpoint line 2 (tree size) {size_line} is larger than 2**63-1")
        root = _b64decode(root_line, "checkpoint line 3 (root hash)")
        if len(root) != _HASH_SIZE:
            raise NoteError(f"checkpoint line 3 (root hash) decodes to {len(root)} bytes, not 32")
        return cls(origin, size, root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[Signer]) -> bytes:
    """Return the signed note of a checkpoint."""
    return sign_note(checkpoint.text(), signers)


def open_checkpoint(note: bytes, verifiers: Sequence[Verifier]) -> tuple[Checkpoint, OpenedNote]:
    """Open a signed checkpoint: :func:`open_note`, then :meth:`Checkpoint.parse`.

    As with :func:`open_note`, check ``opened.verified`` (or call ``require_verified``)
    before you trust the checkpoint.
    """
    opened = open_note(note, verifiers)
    return Checkpoint.parse(opened.text), opened
