import json
from pathlib import Path

import pytest

from rewardscope import artifacts


def _writer(calls, payload=b"weights"):
    def build(out: Path):
        calls.append(out)
        (out / "model.bin").write_bytes(payload)
        (out / "sub").mkdir()
        (out / "sub" / "config.json").write_text("{}")

    return build


def test_builds_once_and_records_a_manifest(fresh_cache):
    calls = []
    first = artifacts.cached("toy", {"n": 1}, 1, _writer(calls))
    second = artifacts.cached("toy", {"n": 1}, 1, _writer(calls))
    assert len(calls) == 1 and first.path == second.path
    manifest = first.manifest
    assert manifest["params"] == {"n": 1} and manifest["version"] == 1
    assert set(manifest["files"]) == {"model.bin", "sub/config.json"}
    assert manifest["files"]["model.bin"]["size"] == len(b"weights")


def test_key_depends_on_builder_params_and_version():
    base = artifacts.cache_key("toy", {"n": 1}, 1)
    assert base == artifacts.cache_key("toy", {"n": 1}, 1)
    assert base != artifacts.cache_key("toy", {"n": 2}, 1)
    assert base != artifacts.cache_key("toy", {"n": 1}, 2)
    assert base != artifacts.cache_key("other", {"n": 1}, 1)


def test_failed_build_leaves_no_entry_and_no_temp_dirs(fresh_cache):
    def broken(out: Path):
        (out / "half.bin").write_bytes(b"x")
        raise RuntimeError("killed mid-build")

    with pytest.raises(RuntimeError, match="killed"):
        artifacts.cached("toy", {}, 1, broken)
    builder_dir = fresh_cache / "toy"
    assert list(builder_dir.iterdir()) == []
    calls = []
    entry = artifacts.cached("toy", {}, 1, _writer(calls))
    assert len(calls) == 1 and (entry.path / "model.bin").is_file()


@pytest.mark.parametrize("damage", ["truncate", "flip_same_size", "drop_manifest", "extra_file", "delete_file"])
def test_corrupt_entry_is_detected_and_rebuilt(fresh_cache, damage):
    calls = []
    entry = artifacts.cached("toy", {}, 1, _writer(calls, payload=b"0123456789"))
    target = entry.path / "model.bin"
    if damage == "truncate":
        target.write_bytes(b"0123")
    elif damage == "flip_same_size":
        target.write_bytes(b"0123456780")
    elif damage == "drop_manifest":
        (entry.path / artifacts.MANIFEST).unlink()
    elif damage == "extra_file":
        (entry.path / "stray.tmp").write_text("x")
    else:
        target.unlink()
    artifacts._VERIFIED.clear()  # a new process: hashes are checked again
    assert not artifacts.is_complete(entry.path)
    again = artifacts.cached("toy", {}, 1, _writer(calls, payload=b"0123456789"))
    assert len(calls) == 2 and (again.path / "model.bin").read_bytes() == b"0123456789"
    assert artifacts.is_complete(again.path)


def test_unserialisable_params_fail_with_one_line():
    with pytest.raises(TypeError, match="JSON-serialisable"):
        artifacts.cache_key("toy", {"f": object()}, 1)


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "deep" / "report.json"
    artifacts.atomic_write_text(path, json.dumps({"a": 1}))
    artifacts.atomic_write_text(path, json.dumps({"a": 2}))
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]


def test_cache_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("REWARDSCOPE_CACHE", str(tmp_path / "elsewhere"))
    assert artifacts.cache_root() == tmp_path / "elsewhere"


def test_temp_dirs_of_killed_builders_are_cleaned(fresh_cache):
    key = artifacts.cache_key("toy", {}, 1)
    parent = fresh_cache / "toy"
    parent.mkdir(parents=True)
    dead = parent / f".{key}.999999999.abc.tmp"  # no such PID
    dead.mkdir()
    (dead / "half.bin").write_bytes(b"x")
    artifacts.cached("toy", {}, 1, _writer([]))
    assert not dead.exists()
    assert [p.name for p in parent.iterdir()] == [key]
