"""``cinepulse-data``: find, verify and download the data sets the tests, benchmarks, demo
and emotion model read (like scikit-learn's ``fetch_*``).

``where`` prints where each set is found (see :mod:`cinepulse_common.paths` for the order);
``verify`` checks every file against the SHA-256 pinned below; ``fetch`` downloads the sets
that have a public download into the cache, checks every file, and only then moves the set
into place: a failed or corrupted download leaves nothing behind. The TMDB sets have no
public download without an account: they come from a local mirror only.

Licences and sources: docs/datasets.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from cinepulse_common.paths import DATASETS_ENV, dataset_mirrors, datasets_cache

CHUNK = 1 << 16
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Dataset:
    """One data set: its folder name, the SHA-256 of each file in it, and where it comes from.

    ``base_url`` set: each file is downloaded from ``base_url + name``. ``archive_url`` set:
    one zip is downloaded and the files are read from ``archive_prefix`` inside it. Neither:
    mirror-only."""

    name: str
    title: str
    licence: str
    homepage: str
    sha256: Mapping[str, str]
    base_url: str | None = None
    archive_url: str | None = None
    archive_prefix: str = ""
    #: shown when a mirror-only set is missing
    note: str = ""

    @property
    def downloadable(self) -> bool:
        return bool(self.base_url or self.archive_url)

    def fetch_hint(self) -> str:
        if self.downloadable:
            return f"run `cinepulse-data fetch {self.name}`"
        return (
            f"no public download ({self.note or 'mirror-only'}): put it in "
            f"${DATASETS_ENV}/{self.name}/"
        )


GOEMOTIONS_RAW = (
    "https://raw.githubusercontent.com/google-research/google-research/master/goemotions/data/"
)

#: the sets and their pinned SHA-256, computed from the public files (for MovieLens, from the
#: files inside ``ml-latest-small.zip``)
DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            name="goemotions",
            title="GoEmotions (Demszky et al., ACL 2020): train/dev/test splits, 28 labels",
            licence="Apache-2.0 (Google Research); comment text by Reddit users; cite the paper",
            homepage="https://github.com/google-research/google-research/tree/master/goemotions",
            base_url=GOEMOTIONS_RAW,
            sha256={
                "train.tsv": "1c254a142be5c00e80d819b9ae1bbd36d94b2eeb8f4b1271846508d57e57d9c5",
                "dev.tsv": "575489c079c9de1097062a01738f998590d6b7ead66dd1c9fd1d2ba01fd8bc62",
                "test.tsv": "0587b2dd8b27b97352adbfc3fb083d46005c8946657fdc2b1ca8b1cc7f1f8be4",
                "emotions.txt": "45c3ef86782d2a4d7fedcd6d8c111aa0d0e94720689bd164fac94fefb4495a89",
                "ekman_mapping.json": (
                    "d6b1fea382917c1685c42e1324a0344106be9390f52a3850ce032656d103a328"
                ),
            },
        ),
        Dataset(
            name="movielens-small",
            title="MovieLens ml-latest-small: 100,836 ratings and 3,683 tags, 9,742 movies",
            licence="GroupLens usage licence (README.txt): research use, no commercial use; "
            "never commit it",
            homepage="https://grouplens.org/datasets/movielens/",
            archive_url="https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
            archive_prefix="ml-latest-small/",
            sha256={
                "README.txt": "63d22ac138e80fae37021797ed8e1b9424b5239dc576a137422adf783ae3f404",
                "links.csv": "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31",
                "movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
                "ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
                "tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
            },
        ),
        Dataset(
            name="tmdb-5000",
            title="TMDB movie metadata: 3,000 movies (tmdb_5000_movies.csv)",
            licence="TMDB terms of use (attribution required)",
            homepage="https://www.themoviedb.org/",
            note="TMDB data needs an account",
            sha256={
                "tmdb_5000_movies.csv": (
                    "64bbdb6b20cacc8eba23f37b45b40072afc94da8f5c8dc37a74c1efa81a15f33"
                ),
            },
        ),
        Dataset(
            name="tmdb-api",
            title="TMDB API v3 OpenAPI description with recorded example responses",
            licence="TMDB API terms of use",
            homepage="https://developer.themoviedb.org/",
            note="recorded with a TMDB account",
            sha256={
                "tmdb-api-openapi.json": (
                    "de2c31c80744191cca3c6136689c4566f3cabf29fd32ba5139f8aa94a654ad6a"
                ),
            },
        ),
    )
}


class DatasetError(Exception):
    """A data set is missing, does not match its pinned SHA-256, or could not be fetched."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def mismatches(ds: Dataset, folder: Path) -> list[str]:
    """One message per pinned file of ``ds`` that is missing from ``folder`` or differs."""
    problems: list[str] = []
    for name, want in ds.sha256.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        got = file_sha256(path)
        if got != want:
            problems.append(f"{path}: SHA-256 {got} does not match the pinned {want}")
    return problems


def where(ds: Dataset) -> tuple[Path | None, str]:
    """The folder ``ds`` is read from and which location that is, or ``(None, hint)``."""
    for root, how in dataset_mirrors():
        if (root / ds.name).is_dir():
            return root / ds.name, how
    cached = datasets_cache() / ds.name
    if cached.is_dir():
        return cached, "cache"
    return None, ds.fetch_hint()


def require(name: str, registry: Mapping[str, Dataset] | None = None) -> Path:
    """The folder of set ``name``, or :class:`DatasetError` saying how to get it."""
    ds = (registry or DATASETS)[name]
    folder, hint = where(ds)
    if folder is None:
        raise DatasetError(f"data set {name!r} not found: {hint}")
    return folder


# --- downloading -------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal, a line per file otherwise."""

    def __init__(self, label: str, total: int | None, out: IO[str]) -> None:
        self.label, self.total, self.out = label, total, out
        self.done = 0
        self.tty = out.isatty()
        self.last = 0.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.tty and now - self.last > 0.1:
            self.last = now
            self.draw()

    def draw(self) -> None:
        mb = self.done / 1e6
        if self.total:
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(frac * 30)
            line = f"  {self.label:<24} [{bar:<30}] {frac:4.0%} {mb:6.1f}/{self.total / 1e6:.1f} MB"
        else:
            line = f"  {self.label:<24} {mb:6.1f} MB"
        self.out.write("\r" + line)
        self.out.flush()

    def close(self) -> None:
        if self.tty:
            self.draw()
            self.out.write("\n")
        else:
            self.out.write(f"  {self.label}: {self.done / 1e6:.1f} MB\n")
        self.out.flush()


def download(url: str, dest: Path, label: str, out: IO[str]) -> str:
    """Stream ``url`` into ``dest`` with a progress bar; the SHA-256 of what was written."""
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "cinepulse-data"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp, dest.open("wb") as f:  # noqa: S310
            length = resp.headers.get("Content-Length")
            bar = Progress(label, int(length) if length and length.isdigit() else None, out)
            while chunk := resp.read(CHUNK):
                f.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
            bar.close()
    except OSError as exc:  # URLError and HTTPError are OSErrors
        raise DatasetError(f"could not download {url}: {exc}") from exc
    return digest.hexdigest()


def _unzip(archive: Path, prefix: str, into: Path, wanted: Sequence[str]) -> None:
    """Extract the members ``prefix + name`` for each wanted name into ``into``."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = set(zf.namelist())
            for name in wanted:
                member = f"{prefix}{name}"
                if member not in members:
                    raise DatasetError(f"{archive.name}: {member} is not in the archive")
                if PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
                    raise DatasetError(f"{archive.name}: unsafe member name {member!r}")
                with zf.open(member) as src, (into / name).open("wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
    except zipfile.BadZipFile as exc:
        raise DatasetError(
            f"{archive.name}: not a valid zip ({exc}); the download is corrupted"
        ) from exc


def fetch(
    ds: Dataset,
    cache: Path | None = None,
    *,
    force: bool = False,
    out: IO[str] | None = None,
) -> Path:
    """Download ``ds`` into ``cache/<name>`` (default the data sets cache), checking every
    file against its pinned SHA-256 before anything is moved into place. Returns the folder.

    Everything is written to a temporary folder beside the target and renamed at the end, so
    a failure (a corrupted download, a network error, Ctrl-C) leaves nothing behind."""
    out = out or sys.stderr
    if not ds.downloadable:
        raise DatasetError(f"data set {ds.name!r}: {ds.fetch_hint()}")
    cache = cache or datasets_cache()
    target = cache / ds.name
    if target.is_dir() and not force and not mismatches(ds, target):
        out.write(f"{ds.name}: already in {target}, every file matches its SHA-256\n")
        return target
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{ds.name}.", suffix=".partial", dir=cache))
    try:
        files = staging / ds.name
        files.mkdir()
        if ds.archive_url:
            out.write(f"{ds.name}: downloading {ds.archive_url}\n")
            archive = staging / PurePosixPath(ds.archive_url).name
            download(ds.archive_url, archive, archive.name, out)
            _unzip(archive, ds.archive_prefix, files, list(ds.sha256))
        else:
            assert ds.base_url is not None
            out.write(f"{ds.name}: downloading {len(ds.sha256)} files from {ds.base_url}\n")
            for name in ds.sha256:
                download(ds.base_url + name, files / name, name, out)
        problems = mismatches(ds, files)
        if problems:
            raise DatasetError(
                f"{ds.name}: the download is corrupted or changed upstream, nothing was kept:\n  "
                + "\n  ".join(p.replace(str(files), ds.name) for p in problems)
            )
        old: Path | None = None
        if target.exists():  # an older or damaged copy: swap it out only now
            old = staging / "old"
            os.replace(target, old)
        try:
            os.replace(files, target)
        except BaseException:
            if old is not None:  # put the old copy back before the staging folder goes
                os.replace(old, target)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    out.write(f"{ds.name}: {len(ds.sha256)} files verified, in {target}\n")
    return target


# --- the command --------------------------------------------------------------------------


def _select(names: Sequence[str], registry: Mapping[str, Dataset]) -> list[Dataset]:
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise DatasetError(f"unknown data set {', '.join(unknown)}; known: {', '.join(registry)}")
    return [registry[n] for n in names] if names else list(registry.values())


def cmd_where(sets: list[Dataset], explicit: bool, out: IO[str]) -> int:
    for ds in sets:
        folder, how = where(ds)
        if folder is None:
            out.write(f"{ds.name:<16} missing: {how}\n")
        else:
            out.write(f"{ds.name:<16} {folder} ({how})\n")
    return 0


def cmd_verify(sets: list[Dataset], explicit: bool, out: IO[str]) -> int:
    failed = False
    for ds in sets:
        folder, how = where(ds)
        if folder is None:
            out.write(f"{ds.name:<16} missing: {how}\n")
            failed = failed or explicit
            continue
        problems = mismatches(ds, folder)
        if problems:
            failed = True
            out.write(f"{ds.name:<16} FAILED in {folder} ({how}):\n")
            for p in problems:
                out.write(f"  {p}\n")
        else:
            out.write(f"{ds.name:<16} ok: {len(ds.sha256)} files match in {folder} ({how})\n")
    return 1 if failed else 0


def cmd_fetch(sets: list[Dataset], explicit: bool, out: IO[str], force: bool = False) -> int:
    failed = False
    for ds in sets:
        if not ds.downloadable:
            folder, how = where(ds)
            if folder is not None:
                out.write(f"{ds.name}: mirror-only, found in {folder} ({how})\n")
            else:
                out.write(f"{ds.name}: skipped, {ds.fetch_hint()}\n")
                failed = failed or explicit
            continue
        try:
            fetch(ds, force=force, out=out)
        except DatasetError as exc:
            out.write(f"error: {exc}\n")
            failed = True
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None, registry: Mapping[str, Dataset] | None = None) -> int:
    registry = registry or DATASETS
    parser = argparse.ArgumentParser(
        prog="cinepulse-data",
        description="Find, verify and download the Cinepulse data sets (docs/datasets.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("where", "print where each data set is found, or how to get it"),
        ("verify", "check every file against its pinned SHA-256 (exit 1 on a mismatch)"),
        ("fetch", "download the sets that have a public download into the cache"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("names", nargs="*", metavar="NAME", help=f"of: {', '.join(registry)}")
        if name == "fetch":
            p.add_argument("--force", action="store_true", help="download again even if valid")
    args = parser.parse_args(argv)
    out = sys.stdout
    try:
        sets = _select(args.names, registry)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    explicit = bool(args.names)
    if args.command == "fetch":
        return cmd_fetch(sets, explicit, out, force=args.force)
    if args.command == "verify":
        return cmd_verify(sets, explicit, out)
    return cmd_where(sets, explicit, out)


if __name__ == "__main__":
    raise SystemExit(main())
