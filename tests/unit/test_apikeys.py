"""The shared API key store (``cinepulse_common.apikeys``; the gateway's write keys, the api's
read keys): sources (env mapping, directory, JSON file), reload, constant-time lookup."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from cinepulse_common.apikeys import ApiKeyError, ApiKeys, ApiKeySettings, read_keys_path


def _secrets(**keys: str) -> dict[str, SecretStr]:
    return {client: SecretStr(key) for client, key in keys.items()}


def _bump(path: Path, seconds: float = 10.0) -> None:
    """Move ``path``'s mtime forward so a change is seen despite coarse mtime granularity."""
    st = path.stat()
    os.utime(path, (st.st_atime + seconds, st.st_mtime + seconds))


# --- sources ----------------------------------------------------------------------------------
def test_keys_from_the_environment_mapping() -> None:
    keys = ApiKeys(_secrets(web="k1", ios="k2"))
    assert sorted(keys.clients) == ["ios", "web"]
    assert keys.client_for("k1") == "web"
    assert keys.client_for("k2") == "ios"


def test_keys_are_not_kept_in_the_clear() -> None:
    keys = ApiKeys(_secrets(web="super-secret-key"))
    assert "super-secret-key" not in repr(vars(keys))


def test_keys_from_a_directory_one_file_per_client(tmp_path: Path) -> None:
    (tmp_path / "web").write_text("k1\n", encoding="utf-8")  # trailing newline stripped
    (tmp_path / "ios").write_text("k2", encoding="utf-8")
    (tmp_path / ".hidden").write_text("k3", encoding="utf-8")
    assert read_keys_path(tmp_path) == {"ios": "k2", "web": "k1"}
    keys = ApiKeys(path=tmp_path)
    assert sorted(keys.clients) == ["ios", "web"]
    assert keys.client_for("k1") == "web"
    assert keys.client_for("k1\n") is None
    assert keys.client_for("k3") is None


def test_a_kubernetes_secret_volume_layout_is_read(tmp_path: Path) -> None:
    # kubelet: ..<timestamp>/ holds the files, ..data -> ..<timestamp>, <name> -> ..data/<name>
    stamped = tmp_path / "..2026_01_01_00_00_00.000000001"
    stamped.mkdir()
    (stamped / "web").write_text("k1", encoding="utf-8")
    (stamped / "android").write_text("k2", encoding="utf-8")
    (tmp_path / "..data").symlink_to(stamped.name)
    (tmp_path / "web").symlink_to("..data/web")
    (tmp_path / "android").symlink_to("..data/android")
    # a stray sub-directory is not a key either
    (tmp_path / "nested").mkdir()
    assert read_keys_path(tmp_path) == {"android": "k2", "web": "k1"}
    keys = ApiKeys(path=tmp_path)
    assert keys.client_for("k2") == "android"


def test_keys_from_a_json_file(tmp_path: Path) -> None:
    f = tmp_path / "keys.json"
    f.write_text(json.dumps({"web": "k1", "ios": "k2"}), encoding="utf-8")
    assert read_keys_path(f) == {"web": "k1", "ios": "k2"}
    assert ApiKeys(path=f).client_for("k2") == "ios"


def test_path_keys_are_merged_with_the_environment_and_win(tmp_path: Path) -> None:
    f = tmp_path / "keys.json"
    f.write_text(json.dumps({"web": "from-file"}), encoding="utf-8")
    keys = ApiKeys(_secrets(web="from-env", ios="k2"), f)
    assert keys.client_for("from-file") == "web"
    assert keys.client_for("from-env") is None
    assert keys.client_for("k2") == "ios"


def test_a_malformed_json_file_names_the_path(tmp_path: Path) -> None:
    f = tmp_path / "keys.json"
    f.write_text('{"web": "k1",', encoding="utf-8")
    with pytest.raises(ApiKeyError) as info:
        read_keys_path(f)
    assert str(f) in str(info.value)
    assert "not valid JSON" in str(info.value)
    with pytest.raises(ApiKeyError, match=str(f)):
        ApiKeys(path=f)


@pytest.mark.parametrize("content", ['["k1"]', '{"web": 1}', '{"web": null}', '"k1"'])
def test_a_json_file_that_is_not_an_object_of_strings_is_refused(
    tmp_path: Path, content: str
) -> None:
    f = tmp_path / "keys.json"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(ApiKeyError, match="expected a JSON object"):
        ApiKeys(path=f)


def test_a_missing_path_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ApiKeyError, match="no such file or directory"):
        ApiKeys(path=missing)


def test_an_empty_key_is_refused_from_the_environment() -> None:
    with pytest.raises(ApiKeyError, match="empty API key for client"):
        ApiKeys(_secrets(web="k1", ios=""))
    # a service names its keys (the gateway: write keys)
    with pytest.raises(ApiKeyError, match="empty write key for client"):
        ApiKeys(_secrets(web="k1", ios=""), kind="write key")


def test_keys_from_settings(tmp_path: Path) -> None:
    f = tmp_path / "keys.json"
    f.write_text(json.dumps({"web": "k1"}), encoding="utf-8")
    s = ApiKeySettings.model_validate(
        {"keys": {"ios": "k2"}, "keys_path": str(f), "reload_interval_s": 0}
    )
    keys = ApiKeys.from_settings(s)
    assert (keys.client_for("k1"), keys.client_for("k2")) == ("web", "ios")


def test_an_empty_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "web").write_text("k1", encoding="utf-8")
    (tmp_path / "ios").write_text("  \n", encoding="utf-8")  # blank after strip
    with pytest.raises(ApiKeyError, match="ios"):
        ApiKeys(path=tmp_path)


def test_an_empty_key_in_a_json_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "keys.json"
    f.write_text(json.dumps({"web": ""}), encoding="utf-8")
    with pytest.raises(ApiKeyError, match="web"):
        ApiKeys(path=f)


def test_no_keys_at_all_is_an_empty_set() -> None:
    keys = ApiKeys()
    assert keys.clients == []
    assert keys.client_for("anything") is None


# --- client_for -------------------------------------------------------------------------------
@pytest.mark.parametrize("presented", [None, "", "k", "k1 ", "K1", "k1k1", "k2\x00"])
def test_client_for_returns_none_for_missing_empty_or_wrong_keys(presented: str | None) -> None:
    keys = ApiKeys(_secrets(web="k1", ios="k2"))
    assert keys.client_for(presented) is None


def test_client_for_handles_non_ascii_keys() -> None:
    keys = ApiKeys(_secrets(web="clé-🔑"))
    assert keys.client_for("clé-🔑") == "web"
    assert keys.client_for("cle-🔑") is None


# --- reload -----------------------------------------------------------------------------------
def test_a_new_file_in_the_directory_is_picked_up(tmp_path: Path) -> None:
    (tmp_path / "web").write_text("k1", encoding="utf-8")
    keys = ApiKeys(path=tmp_path, reload_interval_s=0)
    assert keys.client_for("k2") is None

    (tmp_path / "ios").write_text("k2", encoding="utf-8")
    _bump(tmp_path / "ios")
    assert keys.client_for("k2") == "ios"
    assert keys.client_for("k1") == "web"
    assert sorted(keys.clients) == ["ios", "web"]


def test_a_rotated_key_replaces_the_old_one(tmp_path: Path) -> None:
    (tmp_path / "web").write_text("old", encoding="utf-8")
    keys = ApiKeys(path=tmp_path, reload_interval_s=0)
    assert keys.client_for("old") == "web"
    (tmp_path / "web").write_text("new", encoding="utf-8")
    _bump(tmp_path / "web")
    assert keys.client_for("new") == "web"
    assert keys.client_for("old") is None


def test_a_removed_file_revokes_the_client(tmp_path: Path) -> None:
    (tmp_path / "web").write_text("k1", encoding="utf-8")
    (tmp_path / "ios").write_text("k2", encoding="utf-8")
    keys = ApiKeys(path=tmp_path, reload_interval_s=0)
    (tmp_path / "ios").unlink()
    _bump(tmp_path)
    assert keys.client_for("k2") is None
    assert keys.clients == ["web"]


def test_a_json_file_is_reloaded(tmp_path: Path) -> None:
    f = tmp_path / "keys.json"
    f.write_text(json.dumps({"web": "k1"}), encoding="utf-8")
    keys = ApiKeys(path=f, reload_interval_s=0)
    f.write_text(json.dumps({"web": "k1", "ios": "k2"}), encoding="utf-8")
    _bump(f)
    assert keys.client_for("k2") == "ios"


def test_no_reload_before_the_interval(tmp_path: Path) -> None:
    (tmp_path / "web").write_text("k1", encoding="utf-8")
    keys = ApiKeys(path=tmp_path, reload_interval_s=3600)
    assert keys.client_for("k1") == "web"  # the first check happens (and records the time)
    (tmp_path / "ios").write_text("k2", encoding="utf-8")
    _bump(tmp_path / "ios")
    assert keys.client_for("k2") is None


def test_a_broken_reload_keeps_the_previous_keys(tmp_path: Path) -> None:
    (tmp_path / "web").write_text("k1", encoding="utf-8")
    keys = ApiKeys(path=tmp_path, reload_interval_s=0)

    (tmp_path / "ios").write_text("", encoding="utf-8")  # an empty key: refused
    _bump(tmp_path / "ios")
    assert keys.client_for("k1") == "web"
    assert keys.clients == ["web"]

    # once fixed, the next check loads it
    (tmp_path / "ios").write_text("k2", encoding="utf-8")
    _bump(tmp_path / "ios", 20)
    assert keys.client_for("k2") == "ios"
    assert keys.client_for("k1") == "web"


def test_a_malformed_json_reload_keeps_the_previous_keys(tmp_path: Path) -> None:
    f = tmp_path / "keys.json"
    f.write_text(json.dumps({"web": "k1"}), encoding="utf-8")
    keys = ApiKeys(path=f, reload_interval_s=0)
    f.write_text("{not json", encoding="utf-8")
    _bump(f)
    assert keys.client_for("k1") == "web"


def test_a_vanished_path_keeps_the_previous_keys(tmp_path: Path) -> None:
    f = tmp_path / "keys.json"
    f.write_text(json.dumps({"web": "k1"}), encoding="utf-8")
    keys = ApiKeys(path=f, reload_interval_s=0)
    f.unlink()
    assert keys.client_for("k1") == "web"
