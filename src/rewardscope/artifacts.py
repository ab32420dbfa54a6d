"""The content-addressed artifact cache.

Every model, data set or table that the library builds is stored under
``$REWARDSCOPE_CACHE/<builder>/<key>/`` where ``key`` hashes the builder name, its parameters and
the builder's version. An entry is written into a temporary sibling directory, its manifest last,
then renamed into place, so a reader sees either a whole entry or none. The manifest records the
size and SHA-256 of every file; an entry whose files do not match it (a killed copy, a truncated or
edited file) is treated as absent and rebuilt.

Builds cooperate across processes. Each entry has a lock file (``.locks/<builder>/<key>.lock``, an ``flock`` that the
kernel drops when its holder dies, so a killed build never blocks the next one): a second process that
asks for an entry being built waits for it instead of building it again. And at most
``build_slots()`` builds run at once on the machine (``$REWARDSCOPE_BUILD_SLOTS``, default the CPU
count): a build takes a slot, keeps it for the builds nested inside it, and gives it up while it waits
for another process's entry, so waiting never holds a core and a dependency graph cannot deadlock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_VERIFIED: set[Path] = set()  # entries whose hashes were checked in this process


def cache_root() -> Path:
    """The cache directory: ``$REWARDSCOPE_CACHE`` or ``~/.cache/rewardscope``."""
    return Path(os.environ.get("REWARDSCOPE_CACHE", Path.home() / ".cache" / "rewardscope")).expanduser()


def cache_key(builder: str, params: dict[str, Any], version: int | str) -> str:
    """A short stable hash of (builder, params, version); params must be JSON-serialisable."""
    try:
        blob = json.dumps({"builder": builder, "params": params, "version": version}, sort_keys=True)
    except TypeError as err:
        raise TypeError(f"artifact params for {builder!r} must be JSON-serialisable: {err}") from None
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_table(directory: Path) -> dict[str, dict[str, Any]]:
    return {
        str(p.relative_to(directory)): {"size": p.stat().st_size, "sha256": _sha256(p)}
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def _package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in ("rewardscope", "torch", "transformers", "numpy"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


@dataclass(frozen=True)
class Artifact:
    """One cache entry: where it lives and what its manifest says."""

    builder: str
    key: str
    path: Path

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.path / MANIFEST).read_text())


def entry_path(builder: str, params: dict[str, Any], version: int | str) -> Path:
    return cache_root() / builder / cache_key(builder, params, version)


def is_complete(path: Path, verify_hashes: bool = True) -> bool:
    """Whether ``path`` holds an entry whose files match its manifest.

    Sizes are compared on every call; SHA-256 hashes once per entry and process.
    """
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        return False
    try:
        files = json.loads(manifest_file.read_text())["files"]
    except (json.JSONDecodeError, KeyError, OSError):
        return False
    on_disk = {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file() and p.name != MANIFEST}
    if on_disk != set(files):
        return False
    for name, meta in files.items():
        if (path / name).stat().st_size != meta["size"]:
            return False
    if verify_hashes and path not in _VERIFIED:
        if any(_sha256(path / name) != meta["sha256"] for name, meta in files.items()):
            return False
        _VERIFIED.add(path)
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_abandoned(parent: Path, key: str) -> None:
    """Delete temp dirs of this key left by builders that were killed (their PID is gone)."""
    for tmp in parent.glob(f".{key}.*.tmp"):
        try:
            pid = int(tmp.name.split(".")[2])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)


SLOTS_ENV = "REWARDSCOPE_BUILD_SLOTS"
BUILD_LOG_ENV = "REWARDSCOPE_BUILD_LOG"  # a JSON-lines file where every finished build appends its time
_slot = {"fd": None, "depth": 0}  # this process's build slot and how many builds are using it


def build_slots() -> int:
    """How many builds may run at once on this machine: ``$REWARDSCOPE_BUILD_SLOTS`` or the CPU count."""
    value = os.environ.get(SLOTS_ENV)
    if value is None:
        return os.cpu_count() or 1
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{SLOTS_ENV} must be a positive int, got {value!r}")
    return int(value)


def _open_lock(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_CREAT | os.O_RDWR, 0o644)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _acquire_slot() -> None:
    slots = [cache_root() / ".build-slots" / f"{i}.lock" for i in range(build_slots())]
    waited = False
    while True:
        for path in slots:
            fd = _open_lock(path)
            if _try_lock(fd):
                _slot["fd"] = fd
                return
            os.close(fd)
        if not waited:
            logger.info("all %d build slots are busy; waiting for one", len(slots))
            waited = True
        time.sleep(0.5)


def _release_slot() -> None:
    fd, _slot["fd"] = _slot["fd"], None
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def _building() -> Iterator[None]:
    """Hold a build slot for this process while a build (and the builds nested in it) runs."""
    if _slot["depth"] == 0:
        _acquire_slot()
    _slot["depth"] += 1
    try:
        yield
    finally:
        _slot["depth"] -= 1
        if _slot["depth"] == 0:
            _release_slot()


@contextlib.contextmanager
def _entry_lock(final: Path) -> Iterator[None]:
    """Exclusive right to build ``final``; while another process holds it, wait without a build slot."""
    fd = _open_lock(cache_root() / ".locks" / final.parent.name / f"{final.name}.lock")
    try:
        if not _try_lock(fd):
            logger.info("waiting for another process to finish %s", final)
            holding = _slot["fd"] is not None
            if holding:
                _release_slot()
            fcntl.flock(fd, fcntl.LOCK_EX)
            if holding:
                _acquire_slot()
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def cached(
    builder: str,
    params: dict[str, Any],
    version: int | str,
    build: Callable[[Path], None],
) -> Artifact:
    """Return the cache entry for (builder, params, version), building it if absent or corrupt.

    ``build(tmp_dir)`` writes the entry's files into ``tmp_dir``; it runs only when needed. The
    manifest (params, version, package versions, file sizes and hashes) is written after it, then
    the directory is renamed into place atomically. If another process finished the same entry
    first, its copy is kept and this one discarded.
    """
    key = cache_key(builder, params, version)
    final = cache_root() / builder / key
    if is_complete(final):
        return Artifact(builder, key, final)
    with _building(), _entry_lock(final):
        if is_complete(final):  # another process built it while this one waited
            return Artifact(builder, key, final)
        _build_entry(builder, params, version, build, key, final)
    _log_build(builder, key, final)
    return Artifact(builder, key, final)


def _log_build(builder: str, key: str, final: Path) -> None:
    """Append this build's time to ``$REWARDSCOPE_BUILD_LOG`` (one short line: an atomic append)."""
    log = os.environ.get(BUILD_LOG_ENV)
    if not log:
        return
    line = {"builder": builder, "key": key, "seconds": json.loads((final / MANIFEST).read_text())["build_seconds"],
            "notebook": os.environ.get("REWARDSCOPE_NOTEBOOK"), "pid": os.getpid()}
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


def build_log(path: Path) -> list[dict[str, Any]]:
    """The builds recorded in a build log (see ``BUILD_LOG_ENV``), in the order they finished."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _build_entry(builder: str, params: dict[str, Any], version: int | str, build: Callable[[Path], None],
                 key: str, final: Path) -> None:
    if final.exists():
        logger.warning("cache entry %s is incomplete or corrupt; rebuilding it", final)
        _VERIFIED.discard(final)
        shutil.rmtree(final, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(final.parent, key)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.{os.getpid()}.", suffix=".tmp", dir=final.parent))
    try:
        started = time.perf_counter()
        build(tmp)
        manifest = {
            "build_seconds": round(time.perf_counter() - started, 1),
            "builder": builder,
            "key": key,
            "params": params,
            "version": version,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "packages": _package_versions(),
            "files": _file_table(tmp),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        try:
            os.rename(tmp, final)
        except OSError:
            if not is_complete(final):  # lost a race to a broken entry: a real failure
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _VERIFIED.add(final)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write one file atomically (temp file in the same directory, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
