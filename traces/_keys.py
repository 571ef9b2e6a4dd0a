"""A keyring directory of named Ed25519 signing keys for ledger checkpoints.

The ring is a directory: ``$ORCH_KEYS``, else ``$XDG_CONFIG_HOME/orch/keys``, else
``~/.config/orch/keys``. A key named ``NAME`` is ``NAME.key`` (the private key, unencrypted
PKCS#8 PEM, mode 0600) and ``NAME.pub`` (its verifier key line, c2sp.org/signed-note). A name
may hold ``/`` (``example.com/log`` is ``example.com/log.key``), so that a key name can match a
log's origin; every path segment is a safe file name. A ``.pub`` without a ``.key`` is a key
trusted for verifying only.

This module must never write a private key with permissions wider than 0600 (not even for an
instant), never overwrite a key, never print or log private key material, and never load a
key format that can run code (only PEM, and only Ed25519).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from ._note import Signer, Verifier, check_key_name
from .errors import NoteError, SigningKeyError

__all__ = ["KeyInfo", "KeyRing", "default_keyring_path", "parse_trusted"]

_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
_NAME_RE = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")
_MAX_NAME = 200
_RESERVED_SUFFIXES = (".key", ".pub", ".pem")
_MAX_KEY_FILE = 64 * 1024


def default_keyring_path(environ: Mapping[str, str] | None = None) -> Path:
    """The keyring directory: ``$ORCH_KEYS``, ``$XDG_CONFIG_HOME/orch/keys`` or ``~/.config``."""
    env = os.environ if environ is None else environ
    if env.get("ORCH_KEYS"):
        return Path(env["ORCH_KEYS"]).expanduser()
    xdg = env.get("XDG_CONFIG_HOME", "")
    # The XDG spec says a relative XDG_CONFIG_HOME is invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "orch" / "keys"
    return Path.home() / ".config" / "orch" / "keys"


def _check_ring_name(name: str) -> str:
    fix = (
        "fix: use letters, digits, '.', '_' and '-' (each '/'-separated part starting with a "
        "letter or digit), such as example.com/ledger"
    )
    try:
        check_key_name(name)
    except NoteError as exc:
        raise SigningKeyError(f"{exc}") from None
    if len(name) > _MAX_NAME or not _NAME_RE.fullmatch(name):
        raise SigningKeyError(f"key name {name!r} is not a safe keyring name; {fix}")
    if name.lower().endswith(_RESERVED_SUFFIXES):
        raise SigningKeyError(
            f"key name {name!r} ends in a key file suffix; fix: drop the '.key'/'.pub'/'.pem'"
        )
    return name


def _is_ring_name(name: str) -> bool:
    try:
        _check_ring_name(name)
    except SigningKeyError:
        return False
    return True


@dataclass(frozen=True)
class KeyInfo:
    """What the ring knows of one key (never the private key itself)."""

    name: str
    """The key name (also its signature lines' name)."""
    key_id: str
    """The key id as 8 lowercase hex digits."""
    verifier_key: str
    """The verifier key line to give to those who check our notes."""
    path: Path | None
    """The private key file, or None for a key trusted only for verifying."""
    public_path: Path | None
    """The ``.pub`` file, if there is one."""
    insecure_permissions: bool = False
    """True when the private key file can be read or written by group or others: warn."""

    @property
    def can_sign(self) -> bool:
        """True when the ring holds the private key."""
        return self.path is not None


def _load_pem_signer(path: Path, name: str) -> Signer:
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_KEY_FILE + 1)
    except OSError as exc:
        raise SigningKeyError(
            f"cannot read signing key file {path}: {exc.strerror}; fix: check the path and "
            "that you may read it"
        ) from None
    if len(data) > _MAX_KEY_FILE:
        raise SigningKeyError(f"signing key file {path} is too large to be a PEM key")
    try:
        key = load_pem_private_key(data, password=None)
    except TypeError:
        raise SigningKeyError(
            f"signing key file {path} is encrypted; fix: store it unencrypted with mode 0600 "
            "(the ring does not ask for passwords)"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(
            f"signing key file {path} is not a PEM private key ({type(exc).__name__}); fix: "
            "create one with KeyRing.create or 'openssl genpkey -algorithm ed25519'"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(
            f"signing key file {path} holds {_key_kind(key)}, not an Ed25519 key; fix: "
            "checkpoints are signed with Ed25519 only ('openssl genpkey -algorithm ed25519')"
        )
    try:
        return Signer(name, key)
    except NoteError as exc:
        raise SigningKeyError(f"signing key file {path}: {exc}") from None


def _key_kind(key: object) -> str:
    kinds: list[tuple[type, str]] = [
        (rsa.RSAPrivateKey, "an RSA key"),
        (ec.EllipticCurvePrivateKey, "an ECDSA key"),
        (ed448.Ed448PrivateKey, "an Ed448 key"),
        (x25519.X25519PrivateKey, "an X25519 key"),
        (x448.X448PrivateKey, "an X448 key"),
    ]
    return next((kind for cls, kind in kinds if isinstance(key, cls)), type(key).__name__)


def _insecure(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return False


def _is_path(name_or_path: str | os.PathLike[str]) -> bool:
    if not isinstance(name_or_path, str):
        return True
    return name_or_path.lower().endswith((".key", ".pem")) or name_or_path.startswith(
        ("/", "./", "../", "~")
    )


class KeyRing:
    """A directory of named Ed25519 signing keys (see the module docstring for the layout)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_keyring_path()

    def __repr__(self) -> str:
        return f"KeyRing({str(self.path)!r})"

    def _files(self, name: str) -> tuple[Path, Path]:
        base = self.path / name
        return base.with_name(base.name + ".key"), base.with_name(base.name + ".pub")

    def create(self, name: str) -> KeyInfo:
        """Create a new Ed25519 key ``name``; refuse a name that is already in the ring."""
        _check_ring_name(name)
        key_path, pub_path = self._files(name)
        for existing in (key_path, pub_path):
            if existing.exists():
                raise SigningKeyError(
                    f"key {name!r} already exists in the keyring ({existing}); fix: choose "
                    "another name, or delete the old files if you mean to replace the key "
                    "(everyone who trusts it must then be given the new verifier key)"
                )
        key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        signer = Signer(name, Ed25519PrivateKey.generate())
        pem = signer.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        self._write_new(key_path, pem, 0o600, name)
        try:
            self._write_new(pub_path, (signer.verifier_key + "\n").encode(), 0o644, name)
        except SigningKeyError:
            key_path.unlink()
            raise
        return KeyInfo(name, f"{signer.key_id:08x}", signer.verifier_key, key_path, pub_path)

    @staticmethod
    def _write_new(path: Path, data: bytes, mode: int, name: str) -> None:
        # O_EXCL: never follow or replace an existing file; the mode is set at creation, so
        # the private key never exists with wider permissions (umask can only narrow it).
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        except FileExistsError:
            raise SigningKeyError(
                f"key {name!r} already exists in the keyring ({path}); fix: choose another name"
            ) from None
        except OSError as exc:
            raise SigningKeyError(
                f"cannot create key file {path}: {exc.strerror}; fix: check that the keyring "
                "directory is writable"
            ) from None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise SigningKeyError(f"cannot write key file {path}: {exc.strerror}") from None

    def list(self) -> list[KeyInfo]:
        """Every key in the ring (signing keys and keys trusted for verifying), by name."""
        if not self.path.is_dir():
            return []
        names: set[str] = set()
        for suffix in (".key", ".pub"):
            for file in self.path.rglob(f"*{suffix}"):
                name = file.relative_to(self.path).as_posix()[: -len(suffix)]
                if file.is_file() and _is_ring_name(name):
                    names.add(name)
        return [self.info(name) for name in sorted(names)]

    def info(self, name_or_path: str | os.PathLike[str], *, name: str | None = None) -> KeyInfo:
        """Describe a ring key or a PEM key file (as :meth:`load_signer` would load it)."""
        if _is_path(name_or_path):
            path = Path(name_or_path).expanduser()
            signer = _load_pem_signer(path, name or path.stem)
            return KeyInfo(
                signer.name,
                f"{signer.key_id:08x}",
                signer.verifier_key,
                path,
                None,
                _insecure(path),
            )
        ring_name = _check_ring_name(str(name_or_path))
        key_path, pub_path = self._files(ring_name)
        has_pub = pub_path.is_file()
        if key_path.is_file():
            verifier = self.signer(ring_name).verifier()
        elif has_pub:
            verifier = self.verifier(ring_name)
        else:
            raise self._missing(ring_name, key_path)
        return KeyInfo(
            ring_name,
            f"{verifier.key_id:08x}",
            verifier.vkey,
            key_path if key_path.is_file() else None,
            pub_path if has_pub else None,
            _insecure(key_path) if key_path.is_file() else False,
        )

    def _missing(self, name: str, path: Path) -> SigningKeyError:
        return SigningKeyError(
            f"no key {name!r} in the keyring {self.path} (looked for {path}); fix: create it "
            "with KeyRing.create, or point $ORCH_KEYS at the keyring that holds it"
        )

    def signer(self, name: str) -> Signer:
        """The signer of ring key ``name``; its ``.pub``, if any, must match the private key."""
        _check_ring_name(name)
        key_path, pub_path = self._files(name)
        if not key_path.is_file():
            raise self._missing(name, key_path)
        signer = _load_pem_signer(key_path, name)
        if pub_path.is_file() and self._read_vkey(pub_path) != signer.verifier_key:
            raise SigningKeyError(
                f"{pub_path} does not hold the verifier key of {key_path}; one of them was "
                "replaced; fix: find out which, and restore or delete the wrong one"
            )
        return signer

    def verifier(self, name: str) -> Verifier:
        """The verifier of ring key ``name``: from its ``.pub``, else from its private key."""
        _check_ring_name(name)
        key_path, pub_path = self._files(name)
        if not pub_path.is_file():
            if key_path.is_file():
                return _load_pem_signer(key_path, name).verifier()
            raise self._missing(name, pub_path)
        verifier = _parse_vkey_file(pub_path)
        if verifier.name != name:
            raise SigningKeyError(
                f"{pub_path} holds a key named {verifier.name!r}, not {name!r}; fix: rename "
                "the file to match the key name in it"
            )
        return verifier

    @staticmethod
    def _read_vkey(path: Path) -> str:
        try:
            data = path.read_bytes()[: _MAX_KEY_FILE + 1]
        except OSError as exc:
            raise SigningKeyError(f"cannot read verifier key file {path}: {exc.strerror}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SigningKeyError(f"verifier key file {path} is not UTF-8 text") from None
        return text.strip()

    def load_signer(
        self, name_or_path: str | os.PathLike[str], *, name: str | None = None
    ) -> Signer:
        """A signer from a ring key name, or from a PEM file path.

        A path is anything ending in ``.key`` or ``.pem`` or starting with ``/``, ``./``,
        ``../`` or ``~`` (ring names cannot); its key name is ``name``, else the file stem.
        """
        if _is_path(name_or_path):
            path = Path(name_or_path).expanduser()
            return _load_pem_signer(path, name or path.stem)
        signer = self.signer(str(name_or_path))
        if name is not None and name != signer.name:
            raise SigningKeyError(
                f"ring key {signer.name!r} is named by its file; fix: drop name={name!r} or "
                "load the PEM file by path"
            )
        return signer


def _parse_vkey_file(path: Path) -> Verifier:
    try:
        return Verifier.parse(KeyRing._read_vkey(path))
    except NoteError as exc:
        raise SigningKeyError(f"verifier key file {path}: {exc}") from None


def parse_trusted(spec: str, ring: KeyRing | None = None) -> Verifier:
    """A verifier from a vkey string, a path to a ``.pub`` file, or a key name in ``ring``."""
    if spec.count("+") >= 2 and not spec.endswith(".pub"):
        try:
            return Verifier.parse(spec)
        except NoteError as exc:
            raise SigningKeyError(f"trusted key {spec[:80]!r}: {exc}") from None
    if spec.endswith(".pub") or spec.startswith(("/", "./", "../", "~")):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise SigningKeyError(
                f"trusted key file {path} does not exist; fix: give a verifier key string "
                "(name+id+key), a .pub file, or a key name in the keyring"
            )
        return _parse_vkey_file(path)
    return (ring if ring is not None else KeyRing()).verifier(spec)
