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


def _slow_build(builder, name, log, seconds=1.5, inner=None):
    """Build ``name`` in a child process: record start/end in ``log``, optionally needing ``inner`` first."""
    import time

    def build(out: Path):
        with open(log, "a") as fh:
            fh.write(f"start {name} {time.time()}\n")
        if inner:
            artifacts.cached(builder, {"name": inner}, 1, lambda o: (o / "x").write_text(inner))
        time.sleep(seconds)
        (out / "x").write_text(name)
        with open(log, "a") as fh:
            fh.write(f"end {name} {time.time()}\n")

    return str(artifacts.cached(builder, {"name": name}, 1, build).path)


def _in_processes(calls, cache, slots="4"):
    """Run ``_slow_build(*args)`` for each call in its own process with one cache; return their paths."""
    import multiprocessing
    import os

    os.environ["REWARDSCOPE_CACHE"], os.environ[artifacts.SLOTS_ENV] = str(cache), slots
    try:
        with multiprocessing.get_context("fork").Pool(len(calls)) as pool:
            return pool.starmap(_slow_build, calls)
    finally:
        del os.environ[artifacts.SLOTS_ENV]


def _events(log):
    return [line.split() for line in Path(log).read_text().splitlines()]


def test_two_processes_asking_for_one_entry_build_it_once(fresh_cache, tmp_path):
    log = tmp_path / "log"
    paths = _in_processes([("toy", "a", str(log)), ("toy", "a", str(log))], fresh_cache)
    assert paths[0] == paths[1]
    assert [e[:2] for e in _events(log)] == [["start", "a"], ["end", "a"]]


def test_build_slots_bound_concurrent_builds_and_nested_builds_do_not_deadlock(fresh_cache, tmp_path):
    log = tmp_path / "log"
    calls = [("toy", "a", str(log), 1.0, "inner"), ("toy", "b", str(log), 1.0), ("toy", "c", str(log), 1.0, "inner")]
    _in_processes(calls, fresh_cache, slots="1")
    running, most = 0, 0
    for kind, *_ in _events(log):  # with one slot, builds never overlap, nested ones included
        running += 1 if kind == "start" else -1
        most = max(most, running)
    assert most == 1 and sorted(n for k, n, _ in _events(log) if k == "start") == ["a", "b", "c"]


def test_a_killed_builder_leaves_no_lock_behind(fresh_cache, tmp_path):
    import multiprocessing
    import os
    import signal
    import time

    log = tmp_path / "log"
    child = multiprocessing.get_context("fork").Process(target=_slow_build, args=("toy", "a", str(log), 60))
    child.start()
    while not log.exists():
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    started = time.time()
    entry = artifacts.cached("toy", {"name": "a"}, 1, lambda out: (out / "x").write_text("rebuilt"))
    assert (entry.path / "x").read_text() == "rebuilt" and time.time() - started < 10


def test_build_log_records_each_build(fresh_cache, tmp_path, monkeypatch):
    monkeypatch.setenv(artifacts.BUILD_LOG_ENV, str(tmp_path / "builds.jsonl"))
    monkeypatch.setenv("REWARDSCOPE_NOTEBOOK", "01_x")
    artifacts.cached("toy", {}, 1, _writer([]))
    artifacts.cached("toy", {}, 1, _writer([]))  # cached: not a build
    rows = artifacts.build_log(tmp_path / "builds.jsonl")
    assert [(r["builder"], r["notebook"]) for r in rows] == [("toy", "01_x")] and rows[0]["seconds"] >= 0


def test_bad_build_slots_fail_with_one_line(fresh_cache, monkeypatch):
    monkeypatch.setenv(artifacts.SLOTS_ENV, "0")
    with pytest.raises(ValueError, match="REWARDSCOPE_BUILD_SLOTS must be a positive int"):
        artifacts.cached("toy", {}, 1, _writer([]))
