"""The content-addressed artifact cache.

Every model, data set or table that the library builds is stored under
``$REWARDSCOPE_CACHE/<builder>/<key>/`` where ``key`` hashes the builder name, its parameters and
the builder's version. An entry is written into a temporary sibling directory, its manifest last,
then renamed into place, so a reader sees either a whole entry or none. The manifest records the
size and SHA-256 of every file; an entry whose files do not match it (a killed copy, a truncated or
edited file) is treated as absent and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
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
    return Artifact(builder, key, final)


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
