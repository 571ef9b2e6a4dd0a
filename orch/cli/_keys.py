"""``orch keys`` and ``orch checkpoint``: signing keys, and signed checkpoints of a ledger.

``orch keys create NAME`` makes an Ed25519 key in the keyring (``$ORCH_KEYS``, else
``~/.config/orch/keys``); ``orch keys list`` lists them with their key ids; ``orch keys show
NAME`` prints the verifier key to hand to auditors. ``orch checkpoint`` signs the store's
ledger as it stands (C2SP tlog-checkpoint in a signed note), stores it with the ledger and
prints it, for an auditor to keep: ``orch verify --all --since FILE`` later proves the store
only grew. With ``--since OLD``, it also checks (and with ``--proof`` writes) the consistency
proof from the checkpoint kept earlier to the new one.

This module must never print a private key.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table
from rich.text import Text

from orch.cli.common import (
    CliError,
    JsonOpt,
    SinceOpt,
    StoreOpt,
    emit_json,
    open_cli_store,
    out,
    read_checkpoint_file,
    user_errors,
)
from orch.render._terminal import inert
from traces import ArtifactStore, Checkpoint, KeyRing, Ledger, ledger_of, open_checkpoint

__all__ = ["checkpoint_command", "keys_app"]

keys_app = typer.Typer(
    name="keys",
    help="Signing keys for ledger checkpoints and evidence bundles.",
    no_args_is_help=True,
)


@keys_app.command("create")
@user_errors
def create(
    name: Annotated[str, typer.Argument(help="The key's name, e.g. acme.example/audit.")],
    as_json: JsonOpt = False,
) -> None:
    """Create an Ed25519 signing key in the keyring (the private key never leaves it)."""

    info = KeyRing().create(name)
    if as_json:
        emit_json(_info_json(info))
        return
    out.print(Text(inert(f"created key {info.name} (key id {info.key_id})")))
    out.print(Text(inert(f"  private key  {info.path} (mode 0600: keep it there)")))
    out.print(Text(inert(f"  verifier key {info.verifier_key}")), soft_wrap=True)
    out.print("  give the verifier key to whoever checks your checkpoints and bundles")


@keys_app.command("list")
@user_errors
def list_keys(as_json: JsonOpt = False) -> None:
    """List the keys of the keyring with their key ids."""

    ring = KeyRing()
    infos = ring.list()
    if as_json:
        emit_json([_info_json(i) for i in infos])
        return
    if not infos:
        out.print(Text(inert(f"no keys in {ring.path}; create one with 'orch keys create NAME'")))
        return
    table = Table(title=Text(inert(f"keys in {ring.path}")))
    for col in ("name", "key id", "signs", "verifier key"):
        table.add_column(col, overflow="fold")
    for i in infos:
        signs = "yes" if i.can_sign else "no (verifier only)"
        if i.insecure_permissions:
            signs += "; private key readable by others"
        table.add_row(
            Text(inert(i.name)), i.key_id, Text(inert(signs)), Text(inert(i.verifier_key))
        )
    out.print(table)


@keys_app.command("show")
@user_errors
def show(name: Annotated[str, typer.Argument(help="A key of the keyring.")]) -> None:
    """Print a key's verifier key (public: what auditors pass to --trust)."""

    out.print(Text(inert(KeyRing().info(name).verifier_key)), soft_wrap=True)


def _info_json(info: Any) -> dict[str, Any]:
    return {
        "name": info.name,
        "key_id": info.key_id,
        "verifier_key": info.verifier_key,
        "path": str(info.path),
        "can_sign": info.can_sign,
        "insecure_permissions": info.insecure_permissions,
    }


def _ledger_to_sign(st: ArtifactStore) -> Ledger:
    if not st.supports_ledger:
        raise CliError(f"store {inert(st.location)} keeps no ledger", "use a built-in store")
    if st.ledger_size() == 0:
        raise CliError(
            f"store {inert(st.location)} has no ledger yet",
            "it is created by the first run recorded in the store",
        )
    return ledger_of(st)


@user_errors
def checkpoint_command(
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="The signing key: a name in the keyring or a PEM file (default: "
            "$ORCH_SIGNING_KEY).",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Also write the note to this file.")
    ] = None,
    since: SinceOpt = None,
    proof: Annotated[
        Path | None,
        typer.Option("--proof", help="With --since: write the consistency proof here (JSON)."),
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign a checkpoint of the store's ledger (its size and Merkle root), store it with the
    ledger and print it: keep it, and 'orch verify --all --since FILE' later proves that
    the store only grew since."""
    spec = key or os.environ.get("ORCH_SIGNING_KEY")
    if not spec:
        raise CliError(
            "no signing key: pass --key NAME or set $ORCH_SIGNING_KEY",
            "create one with 'orch keys create NAME'",
        )
    if proof is not None and since is None:
        raise CliError(
            "--proof writes the proof from --since", "orch checkpoint --since OLD --proof P"
        )
    signer = KeyRing().load_signer(spec)
    old = open_checkpoint(read_checkpoint_file(since), [])[0] if since is not None else None
    with open_cli_store(store, writable=True) as st:
        ledger = _ledger_to_sign(st)
        if old is not None:  # refused before anything is signed or stored
            ledger.consistency_since(old, ledger.tree().size)
        note = ledger.checkpoint([signer])
        current = Checkpoint.parse(note.split(b"\n\n", 1)[0] + b"\n")
        consistency = None if old is None else ledger.consistency_since(old, current.size)
    if output is not None:
        output.write_bytes(note)
    if proof is not None:
        proof.write_bytes(orjson.dumps(consistency, option=orjson.OPT_INDENT_2) + b"\n")
    if as_json:
        emit_json(
            {
                "size": current.size,
                "root": base64.b64encode(current.root).decode(),
                "origin": current.origin,
                "note": note.decode(),
                "consistency": consistency,
            }
        )
        return
    out.print(Text(inert(note.decode(), multiline=True)), end="", soft_wrap=True)
    if old is not None:
        out.print(
            Text(
                inert(
                    f"consistent with {since}: the ledger grew from {old.size} to "
                    f"{current.size} entries and changed none of the first {old.size}"
                )
            ),
            soft_wrap=True,
        )
