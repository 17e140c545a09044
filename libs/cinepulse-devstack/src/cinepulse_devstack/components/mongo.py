"""A MongoDB-protocol server: mongod when on PATH, else FerretDB v1 on SQLite."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from cinepulse_devstack.components.base import Component
from cinepulse_devstack.procs import (
    require_tool,
    run,
    spawn,
)

log = logging.getLogger("cinepulse.stack")


class Mongo(Component):
    """A MongoDB-protocol server: ``mongod`` when on PATH, else FerretDB v1 on SQLite,
    built from the Go module proxy."""

    name = "mongo"

    @property
    def ports(self) -> list[int]:
        return [self.cfg.mongo_port] + ([] if self.mongod else [self.cfg.ferretdb_debug_port])

    @property
    def mongod(self) -> str | None:
        return shutil.which("mongod")

    @property
    def binary(self) -> Path:
        return self.cfg.cache / f"ferretdb-{self.cfg.ferretdb_version}" / "ferretdb"

    @property
    def version(self) -> str:
        if self.mongod:
            return run([self.mongod, "--version"], what="mongod --version").splitlines()[0]
        return f"FerretDB {self.cfg.ferretdb_version} (SQLite backend)"

    def install(self) -> None:
        if self.mongod or self.binary.exists():
            return
        go = require_tool("go", "install Go 1.22+ (the Go toolchain builds FerretDB)")
        module = f"github.com/FerretDB/FerretDB@{self.cfg.ferretdb_version}"
        env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
        log.info("mongo: building FerretDB %s from the Go module proxy", self.cfg.ferretdb_version)
        with tempfile.TemporaryDirectory() as tmp:
            info = json.loads(
                run(
                    [go, "mod", "download", "-json", module],
                    what="go mod download",
                    env=env,
                    cwd=tmp,
                )
            )
            src = Path(tmp) / "src"
            shutil.copytree(info["Dir"], src)
            for p in src.rglob("*"):
                p.chmod(p.stat().st_mode | 0o200)
            src.chmod(0o755)
            # the module zip lacks build/version/version.txt, which FerretDB embeds and checks
            # at start (upstream issues #2982, #4889)
            (src / "build" / "version" / "version.txt").write_text(self.cfg.ferretdb_version)
            self.binary.parent.mkdir(parents=True, exist_ok=True)
            run(
                [go, "build", "-o", str(self.binary), "./cmd/ferretdb"],
                what="go build FerretDB",
                env=env,
                cwd=src,
            )

    def start(self) -> None:
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        if self.mongod:
            cmd = [
                self.mongod,
                "--dbpath",
                str(data),
                "--bind_ip",
                self.cfg.host,
                "--port",
                str(self.cfg.mongo_port),
            ]
        else:
            cmd = [
                str(self.binary),
                f"--listen-addr={self.cfg.host}:{self.cfg.mongo_port}",
                "--handler=sqlite",
                f"--sqlite-url=file:{data}/",
                f"--state-dir={self.dir}",
                f"--debug-addr={self.cfg.host}:{self.cfg.ferretdb_debug_port}",
                "--telemetry=disable",
                "--log-level=warn",
            ]
        spawn(cmd, log=self.log_path, pidfile=self.pidfile, cwd=self.dir)

    @property
    def url(self) -> str:
        return f"mongodb://{self.cfg.host}:{self.cfg.mongo_port}/"

    def probe(self) -> None:
        from pymongo import MongoClient

        client: MongoClient[dict[str, object]]
        with MongoClient(self.url, serverSelectionTimeoutMS=2000) as client:
            client.admin.command("ping")

    def env(self) -> dict[str, str]:
        return {"CINEPULSE_MONGO__URL": self.url}
