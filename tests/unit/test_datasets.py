"""``cinepulse-data`` and the data sets lookup, against a local HTTP server on loopback that
serves small fixture files built here: no network beyond 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cinepulse_common import datasets as data
from cinepulse_common import paths
from cinepulse_common.datasets import DATASETS, Dataset, DatasetError, fetch, main

FILES = {"a.tsv": b"one\t1\ntwo\t2\n", "labels.txt": b"x\ny\nz"}
ZIPPED = {"README.txt": b"terms\n", "ratings.csv": b"userId,movieId,rating\n1,2,4.0\n"}


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on loopback, and its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No proxy, no real mirror or cache: the repo is a fake one under tmp_path (so the
    mirror beside it is ``tmp_path/shared/datasets``) and the cache is under tmp_path too."""
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "*")
    monkeypatch.delenv(paths.DATASETS_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path / "repo")
    return tmp_path


def file_set(base_url: str, **pins: str) -> Dataset:
    return Dataset(
        name="tiny",
        title="tiny",
        licence="test",
        homepage=base_url,
        base_url=base_url + "files/",
        sha256=pins or {name: sha(body) for name, body in FILES.items()},
    )


def zip_set(base_url: str) -> Dataset:
    return Dataset(
        name="zipped",
        title="zipped",
        licence="test",
        homepage=base_url,
        archive_url=base_url + "tiny-set.zip",
        archive_prefix="tiny-set/",
        sha256={name: sha(body) for name, body in ZIPPED.items()},
    )


def write_files(root: Path, files: dict[str, bytes]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (root / name).write_bytes(body)


def write_zip(path: Path, files: dict[str, bytes], prefix: str = "tiny-set/") -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, body in files.items():
            zf.writestr(prefix + name, body)
    path.write_bytes(buf.getvalue())


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


# --- fetch --------------------------------------------------------------------------------


def test_fetch_downloads_and_verifies_each_file(served: tuple[Path, str], tmp_path: Path) -> None:
    www, url = served
    write_files(www / "files", FILES)
    out = io.StringIO()
    folder = fetch(file_set(url), out=out)
    assert folder == paths.datasets_cache() / "tiny"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == FILES
    assert leftovers(paths.datasets_cache()) == ["tiny"]  # no staging folder left
    assert "2 files verified" in out.getvalue()
    assert paths.dataset_dir("tiny") == folder
    # a second run finds it valid and downloads nothing
    (www / "files" / "a.tsv").unlink()
    again = io.StringIO()
    assert fetch(file_set(url), out=again) == folder
    assert "already in" in again.getvalue()


def test_fetch_unpacks_a_zip_and_verifies_the_extracted_files(
    served: tuple[Path, str],
) -> None:
    www, url = served
    write_zip(www / "tiny-set.zip", {**ZIPPED, "extra.csv": b"not pinned"})
    folder = fetch(zip_set(url), out=io.StringIO())
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == ZIPPED  # the zip is gone
    assert leftovers(paths.datasets_cache()) == ["zipped"]


def test_a_corrupted_download_fails_clearly_and_leaves_nothing(
    served: tuple[Path, str],
) -> None:
    www, url = served
    write_files(www / "files", {**FILES, "labels.txt": b"x\ny\nTAMPERED"})
    with pytest.raises(DatasetError) as err:
        fetch(file_set(url), out=io.StringIO())
    message = str(err.value)
    assert "tiny/labels.txt" in message
    assert "corrupted" in message
    assert sha(FILES["labels.txt"]) in message  # the pinned hash, to compare by eye
    assert "a.tsv" not in message  # only the bad file is named
    assert leftovers(paths.datasets_cache()) == []


def test_a_corrupted_zip_fails_clearly_and_leaves_nothing(served: tuple[Path, str]) -> None:
    www, url = served
    good = io.BytesIO()
    write_zip(www / "tiny-set.zip", ZIPPED)
    good.write((www / "tiny-set.zip").read_bytes())
    (www / "tiny-set.zip").write_bytes(good.getvalue()[:-40])  # truncated
    with pytest.raises(DatasetError, match=r"tiny-set\.zip.*corrupted"):
        fetch(zip_set(url), out=io.StringIO())
    assert leftovers(paths.datasets_cache()) == []
    write_zip(www / "tiny-set.zip", {**ZIPPED, "ratings.csv": b"changed"})
    with pytest.raises(DatasetError, match=r"zipped/ratings\.csv: SHA-256"):
        fetch(zip_set(url), out=io.StringIO())
    assert leftovers(paths.datasets_cache()) == []


def test_a_failed_refetch_keeps_the_good_copy(served: tuple[Path, str]) -> None:
    www, url = served
    write_files(www / "files", FILES)
    folder = fetch(file_set(url), out=io.StringIO())
    (www / "files" / "a.tsv").write_bytes(b"garbage")
    with pytest.raises(DatasetError):
        fetch(file_set(url), force=True, out=io.StringIO())
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == FILES
    assert leftovers(paths.datasets_cache()) == ["tiny"]


def test_a_damaged_copy_is_replaced(served: tuple[Path, str]) -> None:
    www, url = served
    write_files(www / "files", FILES)
    write_files(paths.datasets_cache() / "tiny", {"a.tsv": b"half"})
    folder = fetch(file_set(url), out=io.StringIO())
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == FILES
    assert leftovers(paths.datasets_cache()) == ["tiny"]


def test_a_failed_swap_puts_the_old_copy_back(
    served: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    www, url = served
    write_files(www / "files", FILES)
    old = {"a.tsv": b"half"}
    write_files(paths.datasets_cache() / "tiny", old)
    real_replace = data.os.replace
    calls: list[tuple[str, str]] = []

    def second_fails(src: str | Path, dst: str | Path) -> None:
        calls.append((str(src), str(dst)))
        if len(calls) == 2:  # the new copy into place
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(data.os, "replace", second_fails)
    with pytest.raises(OSError, match="disk full"):
        fetch(file_set(url), force=True, out=io.StringIO())
    target = paths.datasets_cache() / "tiny"
    assert {p.name: p.read_bytes() for p in target.iterdir()} == old  # the old copy is back
    assert leftovers(paths.datasets_cache()) == ["tiny"]
    assert len(calls) == 3


def test_a_missing_file_upstream_fails_with_the_url(served: tuple[Path, str]) -> None:
    _, url = served
    with pytest.raises(DatasetError, match=r"could not download http://127\.0\.0\.1:\d+/files/"):
        fetch(file_set(url), out=io.StringIO())
    assert leftovers(paths.datasets_cache()) == []


def test_a_mirror_only_set_cannot_be_fetched() -> None:
    with pytest.raises(DatasetError, match=r"no public download.*CINEPULSE_DATASETS/tmdb-5000"):
        fetch(DATASETS["tmdb-5000"], out=io.StringIO())


# --- the lookup order ---------------------------------------------------------------------


def test_the_mirror_then_the_cache_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, beside, cache = tmp_path / "env", tmp_path / "shared" / "datasets", paths.datasets_cache()
    for root, names in ((env, "a"), (beside, "ab"), (cache, "abc")):
        for n in names:
            (root / n).mkdir(parents=True)
    # the mirror beside the checkout, when it is there
    assert paths.dataset_roots() == [beside, cache]
    assert paths.datasets_root() == beside
    assert paths.dataset_dir("a") == beside / "a"
    assert paths.dataset_dir("b") == beside / "b"
    assert paths.dataset_dir("c") == cache / "c"
    assert paths.dataset_dir("d") == cache / "d"  # where fetch would put it
    # $CINEPULSE_DATASETS replaces it
    monkeypatch.setenv(paths.DATASETS_ENV, str(env))
    assert paths.dataset_roots() == [env, cache]
    assert paths.datasets_root() == env
    assert paths.dataset_dir("a") == env / "a"
    assert paths.dataset_dir("b") == cache / "b"
    # no mirror: the cache only
    monkeypatch.delenv(paths.DATASETS_ENV)
    for n in "ab":
        (beside / n).rmdir()
    beside.rmdir()
    assert paths.dataset_roots() == [cache]
    assert paths.datasets_root() == cache
    assert paths.dataset_dir("a") == cache / "a"


def test_no_tracked_file_names_a_folder_of_one_machine() -> None:
    repo = Path(__file__).resolve().parents[2]
    try:
        tracked = subprocess.run(
            ["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True
        ).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    pattern = re.compile(rb"/work/(shared|main)\b|/home/[a-z]+/")
    found = [
        name.decode()
        for name in tracked
        if name
        and name != b"uv.lock"
        and (repo / name.decode()).is_file()
        and pattern.search((repo / name.decode()).read_bytes())
    ]
    assert found == []


# --- the command --------------------------------------------------------------------------


def test_where_and_verify(
    served: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, url = served
    registry = {"tiny": file_set(url), "zipped": zip_set(url), "tmdb-5000": DATASETS["tmdb-5000"]}
    assert main(["where"], registry) == 0
    out = capsys.readouterr().out
    assert "tiny             missing: run `cinepulse-data fetch tiny`" in out
    assert "tmdb-5000        missing: no public download" in out
    # nothing present: verify reports it, and fails only for a set asked for by name
    assert main(["verify"], registry) == 0
    assert main(["verify", "tiny"], registry) == 1
    capsys.readouterr()

    mirror = tmp_path / "mirror"
    write_files(mirror / "tiny", FILES)
    monkeypatch.setenv(paths.DATASETS_ENV, str(mirror))
    assert main(["where", "tiny"], registry) == 0
    assert f"{mirror / 'tiny'} ($CINEPULSE_DATASETS)" in capsys.readouterr().out
    assert main(["verify", "tiny"], registry) == 0
    assert "ok: 2 files match" in capsys.readouterr().out

    (mirror / "tiny" / "a.tsv").write_bytes(b"one\t1\n")
    assert main(["verify"], registry) == 1
    out = capsys.readouterr().out
    assert f"{mirror / 'tiny' / 'a.tsv'}: SHA-256" in out
    assert "labels.txt" not in out
    (mirror / "tiny" / "labels.txt").unlink()
    assert main(["verify", "tiny"], registry) == 1
    assert f"{mirror / 'tiny' / 'labels.txt'}: missing" in capsys.readouterr().out


def test_fetch_command(served: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    www, url = served
    write_files(www / "files", FILES)
    registry = {"tiny": file_set(url), "tmdb-5000": DATASETS["tmdb-5000"]}
    assert main(["fetch", "tiny"], registry) == 0
    assert (paths.datasets_cache() / "tiny" / "a.tsv").is_file()
    assert main(["fetch"], registry) == 0  # the mirror-only set is only reported
    assert "tmdb-5000: skipped, no public download" in capsys.readouterr().out
    assert main(["fetch", "tmdb-5000"], registry) == 1  # asked for by name
    assert main(["fetch", "nope"], registry) == 2
    assert "unknown data set nope" in capsys.readouterr().err
    (www / "files" / "a.tsv").write_bytes(b"x")
    assert main(["fetch", "--force", "tiny"], registry) == 1
    assert "tiny/a.tsv: SHA-256" in capsys.readouterr().out


def test_the_pins() -> None:
    assert set(DATASETS) == {"goemotions", "movielens-small", "tmdb-5000", "tmdb-api"}
    for ds in DATASETS.values():
        assert ds.sha256, ds.name
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in ds.sha256.values()), ds.name
        for u in (ds.base_url, ds.archive_url):
            assert u is None or u.startswith("https://"), ds.name
    assert DATASETS["goemotions"].downloadable and DATASETS["movielens-small"].downloadable
    assert not DATASETS["tmdb-5000"].downloadable and not DATASETS["tmdb-api"].downloadable
    # the files the emotion model reads are the files fetched
    assert set(DATASETS["goemotions"].sha256) == {
        "train.tsv", "dev.tsv", "test.tsv", "emotions.txt", "ekman_mapping.json",
    }  # fmt: skip
    assert set(DATASETS["movielens-small"].sha256) >= {"links.csv", "ratings.csv", "tags.csv"}
    assert data.CHUNK > 0


# --- how a test asks for a data set (tests/datasets.py) -----------------------------------


def test_a_data_test_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.datasets import require

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("CINEPULSE_STRICT_SKIPS", raising=False)  # make test sets it
    with pytest.raises(pytest.skip.Exception, match=r"run `cinepulse-data fetch goemotions`"):
        require("goemotions")
    monkeypatch.setenv("CI", "false")  # only 1, true or yes mean CI
    with pytest.raises(pytest.skip.Exception, match=r"run `cinepulse-data fetch goemotions`"):
        require("goemotions")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"run `cinepulse-data fetch goemotions`"):
        require("goemotions")
    with pytest.raises(pytest.fail.Exception, match=r"no public download.*tmdb-5000/"):
        require("tmdb-5000")
    monkeypatch.setenv("CI", "false")
    monkeypatch.setenv("CINEPULSE_STRICT_SKIPS", "1")  # make test: as strict as CI
    with pytest.raises(pytest.fail.Exception, match=r"run `cinepulse-data fetch goemotions`"):
        require("goemotions")
    monkeypatch.setenv("CI", "true")
    write_files(paths.datasets_cache() / "goemotions", {"train.tsv": b""})
    with pytest.raises(pytest.fail.Exception, match=r"dev\.tsv, test\.tsv"):
        require("goemotions")  # every pinned file, unless the test names the ones it reads
    assert require("goemotions", "train.tsv") == paths.datasets_cache() / "goemotions"
