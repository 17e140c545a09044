"""PostgreSQL 15, as a cluster in a project-owned data directory."""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from cinepulse_devstack.components.base import Component
from cinepulse_devstack.procs import (
    StackError,
    read_pid,
    require_tool,
    run,
    stack_secret,
    terminate,
)


class Postgres(Component):
    """PostgreSQL 15 from Debian's package, as a cluster in a project-owned data directory."""

    name = "postgres"

    @property
    def ports(self) -> list[int]:
        return [self.cfg.postgres_port]

    @property
    def bindir(self) -> Path:
        candidates = sorted(glob.glob("/usr/lib/postgresql/15/bin")) + sorted(
            glob.glob("/usr/lib/postgresql/*/bin"), reverse=True
        )
        for c in candidates:
            if (Path(c) / "initdb").exists():
                return Path(c)
        pg_ctl = shutil.which("pg_ctl")
        if pg_ctl:
            return Path(pg_ctl).resolve().parent
        raise StackError("PostgreSQL server not found: apt-get install postgresql-15 (make setup)")

    @property
    def version(self) -> str:
        return run([str(self.bindir / "postgres"), "--version"], what="postgres --version").strip()

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def password_file(self) -> Path:
        return self.cfg.root / "secrets" / "postgres-password"

    def _as_owner(self) -> list[str]:
        """initdb/postgres refuse to run as root: run them as the 'postgres' system user."""
        if os.geteuid() != 0:
            return []
        return ["runuser", "-u", "postgres", "--"]

    def _prepare_dir(self) -> None:
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise StackError(
                    "running as root needs the 'postgres' system user: apt-get install postgresql-15"
                ) from None
            probe = subprocess.run(
                ["runuser", "-u", "postgres", "--", "test", "-x", str(self.cfg.root)],
                check=False,
            )
            if probe.returncode != 0 and not self.dir.is_symlink():
                # the checkout is not traversable by 'postgres' (e.g. under /root): keep the
                # cluster outside and link it into .stack/
                digest = hashlib.sha256(str(self.cfg.root).encode()).hexdigest()[:12]
                outside = Path(tempfile.gettempdir()) / f"cinepulse-pg-{digest}"
                outside.mkdir(parents=True, exist_ok=True)
                if self.dir.exists():
                    shutil.rmtree(self.dir)
                self.dir.symlink_to(outside)
            self.dir.mkdir(parents=True, exist_ok=True)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        else:
            self.dir.mkdir(parents=True, exist_ok=True)

    def password(self) -> str:
        if not self.password_file.exists():
            self.password_file.parent.mkdir(parents=True, exist_ok=True)
            self.password_file.write_text(secrets.token_urlsafe(18))
            self.password_file.chmod(0o600)
        return self.password_file.read_text().strip()

    def install(self) -> None:
        _ = self.bindir
        if os.geteuid() == 0:
            require_tool("runuser", "apt-get install util-linux")

    def _initdb(self) -> None:
        self._prepare_dir()
        pwfile = self.dir / ".pwfile"
        pwfile.write_text(self.password())
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        pwfile.chmod(0o600)
        try:
            run(
                [
                    *self._as_owner(),
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    self.cfg.postgres_user,
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                ],
                what="initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def pid(self) -> int | None:
        return read_pid(self.data / "postmaster.pid")

    def start(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        sock = self.dir / "run"
        sock.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(sock, pw.pw_uid, pw.pw_gid)
        opts = " ".join(
            [
                f"-c listen_addresses={self.cfg.host}",
                f"-p {self.cfg.postgres_port}",
                f"-c unix_socket_directories={sock}",
                "-c max_connections=200",
                "-c shared_buffers=256MB",
                # commit times per row: the freshness benchmark reads them
                "-c track_commit_timestamp=on",
                "-c log_min_messages=warning",
            ]
        )
        run(
            [
                *self._as_owner(),
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log_path),
                "-o",
                opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
            what="pg_ctl start",
            hint=f"see {self.log_path}",
        )

    def probe(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_dsn("postgres"), connect_timeout=2) as conn:
            conn.execute("SELECT 1")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m <mode>``: ``fast`` (the default) rolls back the sessions and
        writes a checkpoint; ``immediate`` is a crash (every process quits at once, no
        checkpoint): the next start runs crash recovery and empties the UNLOGGED tables."""
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"unknown pg_ctl stop mode {mode!r}")
        # the postmaster removes postmaster.pid a moment before it exits, and pg_ctl -w
        # returns once the file is gone: wait for the process itself (a drill asserts it is
        # gone right after; the rehearsal found it still exiting once)
        postmaster = self.pid()
        if self.alive():
            subprocess.run(
                [
                    *self._as_owner(),
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    mode,
                    "-w",
                    "-t",
                    "60",
                    "stop",
                ],
                capture_output=True,
                check=False,
            )
        terminate(postmaster or self.pid())

    def cluster_state(self) -> str:
        """``Database cluster state`` of ``pg_controldata`` ("shut down" after a clean stop,
        "in production" while running or after a crash)."""
        out = run(
            [*self._as_owner(), str(self.bindir / "pg_controldata"), "-D", str(self.data)],
            what="pg_controldata",
            env={**os.environ, "LC_ALL": "C"},  # the English labels parsed below
        )
        for line in out.splitlines():
            if line.startswith("Database cluster state:"):
                return line.split(":", 1)[1].strip()
        raise StackError(f"pg_controldata printed no cluster state for {self.data}")

    def admin_dsn(self, database: str | None = None) -> str:
        db = database or self.cfg.postgres_db
        return (
            f"postgresql://{self.cfg.postgres_user}:{self.password()}"
            f"@{self.cfg.host}:{self.cfg.postgres_port}/{db}"
        )

    def login_role(
        self, role: str, member_of: str | None, *, read_only: bool = True, database: str = ""
    ) -> str:
        """A LOGIN role that is a member of ``member_of`` and of nothing else (of no role at
        all with None), its sessions read-only by default unless ``read_only`` is False
        (made, or its password reset, from a secret kept under the stack's folder, by the
        code the chart's metabase-setup hook runs:
        :func:`cinepulse_common.postgres.ensure_login_role`); returns its DSN to
        ``database`` (default: the stack's). The services' roles of migration 0012 get one
        each this way (``cinepulse_<service>_login``)."""
        import psycopg

        from cinepulse_common.postgres import MissingRole, RoleError, ensure_login_role

        password = stack_secret(self.cfg.root / "secrets" / f"{role}.password")
        with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
            try:
                ensure_login_role(conn, role, password, member_of=member_of, read_only=read_only)
            except MissingRole as exc:
                raise StackError(f"{exc}: run `make migrate` first") from None
            except RoleError as exc:
                raise StackError(str(exc)) from None
        return (
            f"postgresql://{role}:{password}@{self.cfg.host}:{self.cfg.postgres_port}/"
            f"{database or self.cfg.postgres_db}"
        )

    def ensure_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_dsn("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
        if not exists:
            self.create_database(name)

    def create_database(
        self, name: str, *, template: str | None = None, replace: bool = False
    ) -> str:
        """Create ``name`` (a copy of ``template`` if given; dropped first if ``replace``);
        return its DSN."""
        import psycopg
        from psycopg import sql

        if replace:
            self.drop_database(name)
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with psycopg.connect(self.admin_dsn("postgres"), autocommit=True) as conn:
            conn.execute(query)
        return self.admin_dsn(name)

    def drop_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_dsn("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def env(self) -> dict[str, str]:
        return {"CINEPULSE_POSTGRES__DSN": self.admin_dsn()}
