"""A real, throwaway PostgreSQL server for tests and benchmarks.

:func:`start_postgres` runs Debian's ``postgresql`` binaries (``/usr/lib/postgresql/*/bin``, or
``$ORCH_PG_BIN``): ``initdb`` into a new temporary directory, ``pg_ctl start`` listening on
127.0.0.1 on a free port (its unix socket in the same directory), a database ``orch`` owned by
a password-protected superuser ``orch``, and returns the DSN and a function that stops the
server and deletes the directory. PostgreSQL refuses to run as root, so as root the binaries
run as the ``postgres`` OS user (``runuser``) and the directory belongs to that user; it lives
under the system temp directory, which that user can reach (pytest's ``tmp_path`` is private
to root).

When the binaries are absent, :func:`require_postgres` skips the test, unless
``ORCH_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), when it fails: CI must never pass by
skipping the integration tests. This module never touches a server it did not start.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["postgres_bin_dir", "require_postgres", "start_postgres"]

REQUIRE_ENV = "ORCH_REQUIRE_POSTGRES"
_INSTALL_HINT = "apt-get install postgresql"


def postgres_bin_dir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres (newest version), or None."""
    override = os.environ.get("ORCH_PG_BIN")
    candidates = [Path(override)] if override else []
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def _missing_reason() -> str | None:
    if postgres_bin_dir() is None:
        return f"PostgreSQL server binaries are not installed ({_INSTALL_HINT})"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' OS user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root and runuser (util-linux) is missing"
    return None


def require_postgres() -> Path:
    """The binaries' directory; skip the test (or fail, under ORCH_REQUIRE_POSTGRES=1)."""
    import pytest

    reason = _missing_reason()
    if reason is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}; {REQUIRE_ENV}=1: CI must run every PostgreSQL test")
        pytest.skip(f"{reason}; {REQUIRE_ENV}=1 makes this a failure")
    bindir = postgres_bin_dir()
    assert bindir is not None
    return bindir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_postgres(
    workdir: Path | None = None, *, fsync: bool = False
) -> tuple[str, Callable[[], None]]:
    """Start a server; return ``(dsn, stop)``. ``stop`` is idempotent and also runs at exit.

    ``fsync=False`` (tests) turns off fsync and synchronous commit: fast, and nothing of a
    throwaway server needs to survive power loss. ``fsync=True`` keeps PostgreSQL's durable
    defaults, as a real deployment would (benchmarks).
    """
    bindir = postgres_bin_dir()
    reason = _missing_reason()
    if bindir is None or reason is not None:
        raise RuntimeError(f"cannot start PostgreSQL: {reason}")
    root = Path(tempfile.mkdtemp(prefix="orch-pg-", dir=workdir))
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    password = secrets.token_hex(12)
    (root / "pw").write_text(password + "\n")
    if as_root:
        user = pwd.getpwnam("postgres")
        os.chmod(root, 0o700)
        for path in (root, root / "pw"):
            os.chown(path, user.pw_uid, user.pw_gid)

    def run(*argv: str) -> None:
        done = subprocess.run(
            [*prefix, *argv], cwd=root, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            log = root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{Path(argv[0]).name} failed ({done.returncode}): {done.stderr.strip()}\n{tail}"
            )

    data = root / "data"
    run(
        str(bindir / "initdb"),
        "-D", str(data),
        "-U", "orch",
        f"--pwfile={root / 'pw'}",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "-E", "UTF8",
        "--locale=C",
        "--no-sync",
    )  # fmt: skip
    settings = ["-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={root}"]
    settings.append("-c max_connections=200")
    if not fsync:
        settings += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    started = False
    port = 0
    for _ in range(5):  # another process may take the free port between probe and bind
        port = _free_port()
        try:
            run(
                str(bindir / "pg_ctl"),
                "-D", str(data),
                "-l", str(root / "server.log"),
                "-w", "-t", "60",
                "-o", " ".join([*settings, f"-p {port}"]),
                "start",
            )  # fmt: skip
        except RuntimeError:
            if "already in use" not in (root / "server.log").read_text(errors="replace"):
                shutil.rmtree(root, ignore_errors=True)
                raise
            continue
        started = True
        break
    if not started:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError("cannot start PostgreSQL: no free port after 5 tries")

    stopped = False

    def stop() -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True
        with contextlib.suppress(Exception):
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)
    base = f"postgresql://orch:{password}@127.0.0.1:{port}"
    try:
        import psycopg

        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE orch")
    except BaseException:
        stop()
        raise
    return f"{base}/orch", stop
