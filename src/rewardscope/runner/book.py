"""The book runner: papermill executes each notebook with a profile, then Jupyter Book builds the site.

``build_book(profile)``:

1. checks the profile and every notebook's parameters (bad input fails before any compute);
2. executes each notebook in its own process into ``_build/<profile>/src/notebooks/`` unless its
   output is already there with the same key (notebook code, parameters, library source and
   requirements), so an interrupted build resumes; a failing notebook does not stop the others;
3. audits the reward models the profile names (``book_rms`` in its ``audit:`` section) with the audit notebook,
   cached like the chapters, and stages the Audits part: the cards, their comparison table and the explorer;
4. writes the execution report page (status, time, peak memory, parameters, versions);
5. builds the site with execution off and warnings as errors (``-W -n --keep-going``);
6. returns the records; the CLI exits non-zero naming every failed notebook.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import nbformat

from .. import progress as progress_bars
from ..artifacts import BUILD_LOG_ENV, atomic_write_text, build_log
from ..zoo import PROVIDERS
from .params import AUDIT, ParameterError, check_parameters, load_profile, profile_label

logger = logging.getLogger(__name__)

REPORT_PACKAGES = ("rewardscope", "torch", "transformers", "trl", "peft", "numpy", "pandas", "scikit-learn",
                   "statsmodels", "papermill", "jupyter-book")


@dataclass
class RunRecord:
    """What happened to one notebook in one build."""

    notebook: str
    status: str  # "ok", "failed", "cached", "stale" (an out-of-date earlier run, kept), "not run"
    duration: float = 0.0
    peak_rss_mb: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def project_root(start: Path | None = None) -> Path:
    """The book root: the nearest directory above ``start`` (or cwd) holding _toc.yml and notebooks/."""
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "_toc.yml").is_file() and (candidate / "notebooks").is_dir():
            return candidate
    raise ParameterError(f"no rewardscope book (a directory with _toc.yml and notebooks/) at or above {here}")


def notebook_names(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "notebooks").glob("*.ipynb"))


def resolve_notebook(root: Path, name: str, *, allow_path: bool = False) -> Path:
    """A notebook by stem ("00_model_zoo"), or by path to a ``.ipynb`` file with ``allow_path`` (``rewardscope
    run`` executes the file it is given, a modified copy included: never the project's namesake)."""
    if name.endswith(".ipynb") and (allow_path or os.sep in name):
        path = Path(name).expanduser().resolve()
        if allow_path:
            if not path.is_file():
                raise ParameterError(f"notebook file {name!r} does not exist")
            return path
        if path.parent != (root / "notebooks").resolve():
            raise ParameterError(f"the book builds only its own notebooks (in {root / 'notebooks'}), got {name!r}; "
                                 "run another file with `rewardscope run PATH`")
    stem = Path(name).stem if name.endswith(".ipynb") else name
    path = root / "notebooks" / f"{stem}.ipynb"
    if not path.is_file():
        raise ParameterError(f"unknown notebook {name!r}; notebooks: {', '.join(notebook_names(root))}")
    return path


def build_dir(root: Path, profile: str | Path) -> Path:
    return root / "_build" / profile_label(profile)


def site_dir(root: Path, profile: str | Path) -> Path:
    """Where the HTML lands: _build/html for the default profile, _build/<profile>/_build/html otherwise."""
    return root / "_build" / "html" if str(profile) == "default" else build_dir(root, profile) / "_build" / "html"


def _tree_hash(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts) if path.is_dir() else [path]
        for f in files:
            if f.exists():
                digest.update(str(f.relative_to(path.parent)).encode())
                digest.update(f.read_bytes())
    return digest.hexdigest()


PACKAGE = Path(__file__).parents[1]
# The runner (this folder): it executes notebooks, checks parameters and renders the report; notebooks never call
# it, so editing it must not cost an hour of reruns.
RUNNER = "runner"


def _in_runner(path: Path) -> bool:
    return path.relative_to(PACKAGE).parts[0] == RUNNER


def _module_file(dotted: str) -> Path | None:
    """The file of a ``rewardscope`` module (``rewardscope.studies.sweep.sweep`` -> .../sweep.py), or None outside it."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE.name:
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _parse(source: str) -> ast.Module:
    """Python source, or a notebook cell whose IPython lines (%magic, !shell) are blanked out."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return ast.Module(body=[], type_ignores=[])


def _imports(tree: ast.Module, package: str) -> set[str]:
    """Dotted names a module imports anywhere (function bodies too: a lazy import still runs when called).

    ``from a import b`` yields ``a`` and ``a.b`` (b may be a submodule); ``package`` resolves relative imports.
    """
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def library_modules(sources: list[str]) -> list[Path]:
    """The library files that code importing as ``sources`` runs: its ``rewardscope`` imports, transitively.

    Importing ``rewardscope.a.b`` runs the package's ``__init__`` and ``a``'s, so those count too. The runner
    (the ``runner`` folder) is left out: notebooks never call it.
    """
    todo = set().union(*(_imports(_parse(source), "") for source in sources))
    seen: set[Path] = set()
    while todo:
        dotted = todo.pop()
        parts = dotted.split(".")
        for depth in range(1, len(parts) + 1):
            path = _module_file(".".join(parts[:depth]))
            if path is None or path in seen or _in_runner(path):
                continue
            seen.add(path)
            module = ".".join(parts[:depth])
            package = module if path.name == "__init__.py" else module.rpartition(".")[0]
            todo |= _imports(_parse(path.read_text(encoding="utf-8")), package)
            if module == f"{PACKAGE.name}.zoo":  # the zoo imports its providers by name when first looked up
                todo |= set(PROVIDERS)
    return sorted(seen)


def dependency_hashes(root: Path, sources: list[str] | None = None) -> dict[str, str]:
    """Hashes of what code cells ``sources`` depend on: the library modules they import (transitively) and the pins.

    Without ``sources``: the whole library (not its runner), for callers that key outside the book.
    """
    if sources is None:
        library = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts and not _in_runner(p))
    else:
        library = library_modules(sources)
    pins = sorted((root / "requirements").glob("*.txt")) if (root / "requirements").is_dir() else []
    return {"lib": _tree_hash(library), "pins": _tree_hash(pins)}


def run_key(notebook: Path, parameters: dict[str, Any], root: Path, dependencies: dict[str, str] | None = None) -> str:
    """What a notebook's output depends on: its code cells, parameters, the library modules it imports
    (transitively, not the runner) and the pins.

    ``dependencies`` overrides :func:`dependency_hashes` of the notebook (for tests).
    """
    nb = nbformat.read(notebook, as_version=4)
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    blob = json.dumps({"code": "\n".join(sources), "params": parameters,
                       **(dependencies or dependency_hashes(root, sources))}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _metadata(output: Path) -> dict[str, Any]:
    """An executed output's notebook metadata; empty when it is missing or unreadable (it is simply rerun)."""
    try:
        return nbformat.read(output, as_version=4).metadata
    except Exception:  # noqa: BLE001
        return {}


def _cached_output(output: Path, key: str) -> bool:
    meta = _metadata(output)
    return meta.get("rewardscope", {}).get("key") == key and not meta.get("papermill", {}).get("exception")


def refresh_prose(notebook: Path, output: Path) -> bool:
    """Carry the source's markdown into a cached output whose code is unchanged; False if they do not line up.

    The run key covers code, parameters and library, not prose, so editing a chapter's text must not
    cost a rerun, and must not leave the old text on the site either.
    """
    source, cached = nbformat.read(notebook, as_version=4), nbformat.read(output, as_version=4)
    injected = [c for c in cached.cells if "injected-parameters" in c.metadata.get("tags", [])]
    executed = [c for c in cached.cells if c.cell_type == "code" and c not in injected]
    code = [c for c in source.cells if c.cell_type == "code"]
    if len(executed) != len(code) or any(a.source != b.source for a, b in zip(executed, code)):
        return False
    cells, outputs = [], iter(executed)
    for cell in source.cells:
        if cell.cell_type != "code":
            cells.append(cell)
            continue
        cells.append(next(outputs))
        if "parameters" in cell.metadata.get("tags", []):
            cells.extend(injected)
    if [c.source for c in cells] != [c.source for c in cached.cells]:
        cached.cells = cells
        atomic_write_text(output, nbformat.writes(cached))
    return True


def _follow(path: Path, stop: threading.Event, label: str, stream=None, every: float | None = None) -> None:
    """Copy the latest progress-bar text written to ``path`` to ``stream`` as one status line.

    The kernel's bars (cells done, and the library's long steps with their ETA) all write to one file;
    a terminal sees one line rewritten in place each second, a log one new line every 30 seconds.
    """
    stream = stream or sys.stderr
    tty = stream.isatty()
    every = every or (1.0 if tty else 30.0)
    started, shown, offset, latest = time.time(), "", 0, ""
    while True:
        finished = stop.wait(every)
        with open(path, encoding="utf-8", errors="replace") as f:
            f.seek(offset)
            chunk = f.read()
            offset = f.tell()
        parts = [p.strip() for p in chunk.replace("\r", "\n").split("\n") if p.strip()]
        latest = parts[-1] if parts else latest
        if latest and latest != shown:
            line = f"[{label} {(time.time() - started) / 60:.1f} min] {latest}"
            stream.write(f"\r\033[K{line[:160]}" if tty else line + "\n")
            stream.flush()
            shown = latest
        if finished:
            if tty and shown:
                stream.write("\n")
            return


def execute_notebook(notebook: Path, output: Path, parameters: dict[str, Any], *, cwd: Path,
                     timeout: int | None = 3600, progress: bool = False, log_output: bool = False,
                     threads: int | None = None, build_log: Path | None = None) -> RunRecord:
    """Execute one notebook with papermill in a fresh process; never raises for a failing notebook.

    ``progress`` shows the kernel's progress (cells, and the library's long steps with an ETA) on this
    process's stderr; ``threads`` caps the kernel's CPU threads (for notebooks run side by side);
    ``build_log`` is where the kernel's cache builds append their times; ``timeout`` is per cell (None: none).
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
           "REWARDSCOPE_CWD": os.environ.get("REWARDSCOPE_CWD") or os.getcwd()}  # relative specs: the caller's folder
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if build_log is not None:
        env.update({BUILD_LOG_ENV: str(build_log), "REWARDSCOPE_NOTEBOOK": notebook.stem})
    with tempfile.TemporaryDirectory(prefix="rewardscope-progress-") as tmp:
        sink = Path(tmp) / "progress.log"
        sink.touch()
        follower = None
        if progress:
            env[progress_bars.ENV] = str(sink)
            stop = threading.Event()
            follower = threading.Thread(target=_follow, args=(sink, stop, notebook.stem), daemon=True)
            follower.start()
        spec = {"input": str(notebook), "output": str(output), "parameters": parameters, "cwd": str(cwd),
                "timeout": timeout, "progress": str(sink) if progress else None, "log_output": log_output}
        # The runner and its kernel die with this process, even on kill -9 (see execute.die_with_parent)
        proc = subprocess.run([sys.executable, "-m", "rewardscope.runner.execute", json.dumps(spec), str(os.getpid())],
                              env=env, stdout=subprocess.PIPE, stderr=None if log_output else subprocess.PIPE, text=True)
        if follower is not None:
            stop.set()
            follower.join()
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("REWARDSCOPE_RESULT ")), None)
    if line is None:
        tail = (proc.stderr or proc.stdout or "")[-2000:]
        return RunRecord(notebook.stem, "failed", parameters=parameters, error=f"runner died (exit {proc.returncode}): {tail}")
    result = json.loads(line.removeprefix("REWARDSCOPE_RESULT "))
    status = "failed" if result["error"] else "ok"
    return RunRecord(notebook.stem, status, result["duration"], result["peak_rss_mb"], parameters, result["error"])


def _stamp(output: Path, record: RunRecord, key: str, profile: str) -> None:
    nb = nbformat.read(output, as_version=4)
    nb.metadata["rewardscope"] = {"key": key, "profile": profile, "record": asdict(record)}
    atomic_write_text(output, nbformat.writes(nb))


def _record_from_output(output: Path) -> RunRecord | None:
    data = _metadata(output).get("rewardscope", {}).get("record")
    return RunRecord(**data) if data else None


def _versions() -> dict[str, str]:
    found = {}
    for name in REPORT_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _git_sha(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def execution_report(records: list[RunRecord], profile: str, root: Path, builds: list[dict] | None = None) -> str:
    """The execution-report page as MyST markdown; ``builds`` (from the build log) lists the cache entries built."""
    icons = {"ok": "ran", "cached": "cached", "failed": "**failed**", "not run": "not run",  # no emoji: fonts vary
             "stale": "earlier run (out of date)"}
    lines = [
        "# Execution report",
        "",
        f"This build ran the **{profile}** profile on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"git commit `{_git_sha(root)}`, {platform.machine()} with {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}. Each notebook runs in its own process; *cached* means its output "
        "was reused because its code, parameters, the library and the pinned requirements were unchanged.",
        "",
        "| notebook | status | time (s) | peak memory (MB) | parameters |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        params = ", ".join(f"`{k}={v!r}`" for k, v in r.parameters.items()) or "defaults"
        peak = f"{r.peak_rss_mb:.0f}" if r.peak_rss_mb else ""
        lines.append(f"| {r.notebook} | {icons.get(r.status, r.status)} | {r.duration:.1f} | {peak} | {_cell(params)} |")
    if builds:
        lines += ["", "## Models and data built in this run", "",
                  f"{len(builds)} cache entries, {sum(b['seconds'] for b in builds) / 60:.1f} min of build time in all "
                  "(longest first; a later build finds them in the cache).", "",
                  "| entry | built by | time (s) |", "|---|---|---|"]
        lines += [f"| {_cell(b['builder'])} `{b['key']}` | {b['notebook'] or ''} | {b['seconds']:.1f} |"
                  for b in sorted(builds, key=lambda b: -b["seconds"])]
    failed = [r for r in records if r.status == "failed"]
    if failed:
        lines += ["", "## Failures", ""]
        lines += [f"- **{r.notebook}**: {_cell(r.error)[:500]}" for r in failed]
    lines += ["", "## Package versions", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in _versions().items()]
    return "\n".join(lines) + "\n"


REPOSITORY_ENV = "REWARDSCOPE_REPOSITORY"


def _with_launch_buttons(config_text: str, repository: str | None) -> str:
    """The book config with Colab and Binder buttons on every notebook when the repository's URL is known.

    The buttons open ``<repository>/blob/<branch>/notebooks/NAME.ipynb``, so they need a public URL,
    given as ``REWARDSCOPE_REPOSITORY=https://github.com/OWNER/NAME[@BRANCH]``; without one the site keeps
    its download buttons only (a button to a made-up address would be a broken link).
    """
    import yaml

    if not repository:
        return config_text
    url, _, branch = repository.partition("@")
    if not url.startswith("https://github.com/") or len(url.rstrip("/").split("/")) != 5:
        raise ParameterError(f"{REPOSITORY_ENV} must be https://github.com/OWNER/NAME[@BRANCH], got {repository!r}")
    config = yaml.safe_load(config_text)
    config["repository"] = {"url": url.rstrip("/"), "branch": branch or "main", "path_to_book": ""}
    config.setdefault("html", {}).update(use_repository_button=True)
    config["launch_buttons"] = {"notebook_interface": "classic", "binderhub_url": "https://mybinder.org",
                                "colab_url": "https://colab.research.google.com"}
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def _stage_static(root: Path, stage: Path) -> None:
    shutil.copy2(root / "_toc.yml", stage / "_toc.yml")
    config = _with_launch_buttons((root / "_config.yml").read_text(), os.environ.get(REPOSITORY_ENV))
    atomic_write_text(stage / "_config.yml", config)
    if (stage / "book").exists():
        shutil.rmtree(stage / "book")
    shutil.copytree(root / "book", stage / "book")


STALE_TAG = "rewardscope-stale"


def _mark_stale(output: Path) -> None:
    """Put a warning at the top of an executed output that is out of date and was left out of this build."""
    nb = nbformat.read(output, as_version=4)
    if not any(STALE_TAG in c.metadata.get("tags", []) for c in nb.cells):
        _write_with_warning(nb, output, "These are the outputs of an earlier run: the notebook, its parameters or the "
                            "library have changed since, and this build left it out with `--only`. Rebuild it to "
                            "bring the page up to date.", tags=[STALE_TAG])


def _write_with_warning(nb, output: Path, text: str, tags: list[str] | None = None) -> None:
    """Write ``nb`` to ``output`` with a warning box under its title."""
    note = nbformat.v4.new_markdown_cell(f"```{{warning}}\n{text}\n```", metadata={"tags": tags} if tags else {})
    nb.cells.insert(1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0, note)
    atomic_write_text(output, nbformat.writes(nb))


_GLUE_ROLE = re.compile(r"\{glue(?::\w*)?\}`([^`:]+)(?::[^`]*)?`")
_GLUE_FIGURE = re.compile(r"(`{3,}|:{3,})\{glue:figure\}[ \t]*(\S+)[^\n]*\n.*?\1[ \t]*(?=\n|$)", re.S)
MISSING_VALUE = "*(not computed in this build)*"


def glued_values(nb) -> dict[str, str]:
    """Each glued name's plain-text value (figures by their name only), for comparing two builds."""
    values = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                data = out.get("data", {})
                text = next((v for k, v in data.items() if k.endswith("text/plain")), None)
                values[name] = "<figure>" if any("image/" in k for k in data) else str(text)
    return values


def glued_names(nb) -> set[str]:
    """The names a notebook's outputs glued (myst-nb records each as output metadata ``scrapbook.name``)."""
    return set(glued_values(nb))


def without_missing_glue(nb) -> int:
    """Replace references to values the notebook never glued (a page left out, or one that failed part-way) with a
    visible placeholder, so the site still builds under warnings-as-errors; returns how many were replaced."""
    present, replaced = glued_names(nb), 0

    def role(match):
        nonlocal replaced
        if match.group(1) in present:
            return match.group(0)
        replaced += 1
        return MISSING_VALUE

    def figure(match):
        nonlocal replaced
        if match.group(2) in present:
            return match.group(0)
        replaced += 1
        return f"```{{note}}\nThe figure `{match.group(2)}` was not computed in this build.\n```"

    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = _GLUE_ROLE.sub(role, _GLUE_FIGURE.sub(figure, cell.source))
    return replaced


def _unexecuted_copy(notebook: Path, output: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    without_missing_glue(nb)
    _write_with_warning(nb, output, "This notebook was not executed in this build (it was left out with `--only`), "
                        "so it shows no outputs.")


def _mark_failed(output: Path) -> None:
    """A failed run's page keeps its traceback; the values it never computed show as placeholders."""
    nb = nbformat.read(output, as_version=4)
    if without_missing_glue(nb):
        _write_with_warning(nb, output, "This notebook failed in this build: the cell with the error shows its "
                            "traceback, and values it did not reach read *(not computed in this build)*.")


def run_sphinx(stage: Path, path_output: Path) -> tuple[int, str]:
    """``jupyter-book build`` with execution off and warnings as errors; returns (exit code, log tail)."""
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(stage), "--path-output", str(path_output),
           "-W", "-n", "--keep-going", "--all"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return proc.returncode, (proc.stdout + proc.stderr)[-6000:]


def previous_duration(root: Path, profile: str, name: str) -> float | None:
    """Seconds the last successful run of a notebook took with this profile (book or ``run``), if recorded."""
    for output in (build_dir(root, profile) / "src" / "notebooks" / f"{name}.ipynb",
                   root / "_build" / "runs" / f"{name}.ipynb"):
        meta = _metadata(output).get("rewardscope", {})
        record = meta.get("record") or {}
        if meta.get("profile") == profile_label(profile) and record.get("status") == "ok" and record.get("duration", 0) > 0:
            return float(record["duration"])
    return None


CELL_TIMEOUT = 3600  # seconds a cell may run once the cache is warm (the least any limit is)


def cell_timeout(root: Path, profile: str, name: str) -> int | None:
    """The per-cell time limit of a notebook's next run: none on a first run, since a cold cache makes any cell
    build models for as long as the machine needs; after a run, three times that run's length (at least an hour),
    so only a hung cell is stopped."""
    seconds = previous_duration(root, profile, name)
    return None if seconds is None else max(CELL_TIMEOUT, int(3 * seconds))


LAB_NOTEBOOK = "00_embedded_lab"


def _prebuild_lab(scale: str, jobs: int, log: Path) -> None:
    """Build the lab's entries as a graph on ``jobs`` cores before the notebooks that read them start.

    A failure is only logged: the notebook that needs the entry hits it again and shows the traceback.
    """
    from ..lab.recipes import prebuild

    logger.info("building the lab (%s scale) on %d cores", scale, jobs)
    saved = {k: os.environ.get(k) for k in (BUILD_LOG_ENV, "REWARDSCOPE_NOTEBOOK")}
    os.environ.update({BUILD_LOG_ENV: str(log), "REWARDSCOPE_NOTEBOOK": "lab (before the notebooks)"})
    try:
        for node, outcome in prebuild(scale, jobs).items():
            if isinstance(outcome, str):
                logger.warning("lab entry %s: %s", node, outcome)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def builds_path(root: Path, profile: str | Path) -> Path:
    """The build log of the last ``build_book``: one line per cache entry its kernels built, with its time."""
    return build_dir(root, profile) / "src" / "builds.jsonl"


def _expectation(root: Path, profile: str, name: str) -> str:
    seconds = previous_duration(root, profile, name)
    return f"; the last run took {seconds / 60:.1f} min" if seconds else ""


def _keep_output(notebook: Path, output: Path, record: RunRecord, key: str, label: str) -> None:
    """After a book run: stamp the output with its run key (only a success is reused), mark a failure on its page, or
    stage the unexecuted notebook where the run left no output."""
    if output.is_file():
        if record.status != "ok":
            _mark_failed(output)
        _stamp(output, record, key if record.status == "ok" else "", label)
    else:
        _unexecuted_copy(notebook, output)


def build_book(profile: str | Path = "default", only: list[str] | None = None, root: Path | None = None,
               force: bool = False, progress: bool = True, jobs: int = 1) -> tuple[list[RunRecord], int, str]:
    """Execute the notebooks with a profile and build the site.

    ``jobs`` > 1 runs that many notebooks side by side, longest first (by their last run), each kernel
    capped at cpu_count // jobs threads: on a small CPU, two one-thread kernels do more than one
    two-thread kernel, since the models are too small to keep two threads busy.

    Returns (records, sphinx exit code, sphinx log tail). Raises ParameterError before running
    anything if the profile, a notebook name or a parameter is bad.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ParameterError(f"jobs must be a positive int, got {jobs!r}")
    _with_launch_buttons("{}", os.environ.get(REPOSITORY_ENV))  # a bad URL fails before any compute
    root = project_root(root)
    names = notebook_names(root)
    profiles = load_profile(profile, root / "notebooks" / "params", names)
    selected = [resolve_notebook(root, n).stem for n in only] if only else names
    for name in names:  # values everywhere; loadable specs and devices where a kernel will run
        check_parameters(root / "notebooks" / f"{name}.ipynb", profiles[name], environment=name in selected)
    label = profile_label(profile)
    stage = build_dir(root, profile) / "src"
    (stage / "notebooks").mkdir(parents=True, exist_ok=True)
    audit_base, book_rms = audit_settings(root, profile)
    audits = audit_jobs(book_rms, audit_base, stage / AUDITS, root) if book_rms else []
    records: dict[str, RunRecord] = {}
    todo = []
    for name in names:
        notebook, output = root / "notebooks" / f"{name}.ipynb", stage / "notebooks" / f"{name}.ipynb"
        parameters = profiles[name]
        key = run_key(notebook, parameters, root)
        if name not in selected:
            previous = _record_from_output(output) if output.is_file() else None
            if previous and _cached_output(output, key):
                records[name] = RunRecord(name, "cached", previous.duration, previous.peak_rss_mb, parameters)
            elif previous and previous.status == "ok":  # out of date, but hours of results: keep them, say so
                _mark_stale(output)
                records[name] = RunRecord(name, "stale", previous.duration, previous.peak_rss_mb, parameters)
            else:
                _unexecuted_copy(notebook, output)
                records[name] = RunRecord(name, "not run", parameters=parameters)
            continue
        if not force and _cached_output(output, key) and refresh_prose(notebook, output):
            previous = _record_from_output(output)
            records[name] = RunRecord(name, "cached", previous.duration if previous else 0.0,
                                      previous.peak_rss_mb if previous else None, parameters)
            logger.info("%s: cached", name)
            continue
        todo.append((name, notebook, output, parameters, key))
    if jobs > 1:  # longest first, so the last long notebook does not start when the others are done
        todo.sort(key=lambda item: -(previous_duration(root, profile, item[0]) or 0.0))
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    log = builds_path(root, profile)
    log.unlink(missing_ok=True)
    if jobs > 1 and any(item[0] == LAB_NOTEBOOK for item in todo):
        _prebuild_lab(profiles[LAB_NOTEBOOK].get("scale", "default"), jobs, log)

    def execute(item) -> RunRecord:
        name, notebook, output, parameters, key = item
        logger.info("%s: running (%s profile%s)", name, profile, _expectation(root, profile, name))
        record = execute_notebook(notebook, output, parameters, cwd=root / "notebooks",
                                  timeout=cell_timeout(root, profile, name), progress=progress and jobs == 1,
                                  threads=threads, build_log=log)
        _keep_output(notebook, output, record, key, label)
        logger.info("%s: %s in %.1f s", name, record.status, record.duration)
        return record

    with ThreadPoolExecutor(max_workers=jobs) as pool:  # each job is a subprocess; threads only wait on it
        for record in pool.map(execute, todo):
            records[record.notebook] = record
    ordered = [records[name] for name in names]
    ordered += _book_audits(root, label, audits, run=not only, force=force, progress=progress)  # chapter caches are warm
    _stage_static(root, stage)
    if audits:
        ordered.append(_stage_audits(root, stage, audits, label, force, progress))
    else:
        _stage_toc_cards(stage, None)
    atomic_write_text(stage / "book" / "execution_report.md", execution_report(ordered, label, root, build_log(log)))
    path_output = root if label == "default" and str(profile) == "default" else build_dir(root, profile)
    start = time.time()
    code, log = run_sphinx(stage, path_output)
    logger.info("site built in %.1f s (exit %d): %s", time.time() - start, code, site_dir(root, profile))
    return ordered, code, log


def writable_output(output: Path) -> Path:
    """``output`` if a notebook can be written there (its folder is made); else one clear ParameterError."""
    output = Path(output).expanduser()
    if output.suffix != ".ipynb":
        raise ParameterError(f"output {str(output)!r} must be a .ipynb file")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output.parent, prefix=".rewardscope-probe-"):
            pass
    except OSError as err:
        raise ParameterError(f"cannot write the output notebook {str(output)!r}: {err.strerror or err}") from None
    return output


def _profile_values(root: Path, path: Path, profile: str | Path) -> dict[str, Any]:
    """A profile's values for one notebook: the ``audit:`` section for the audit, else the notebook's own."""
    if path.stem == AUDIT:
        return audit_settings(root, profile)[0]
    return load_profile(profile, root / "notebooks" / "params", notebook_names(root)).get(path.stem, {})


def effective_parameters(notebook: str, parameters: dict[str, Any], profile: str | Path = "default",
                         root: Path | None = None) -> list[dict[str, Any]]:
    """What ``rewardscope run`` would pass a notebook, checked (statically) but not run: one row per declared
    parameter with its value, where the value comes from ("default", the profile, or "-p") and its help text."""
    from .params import declared_parameters

    root = project_root(root)
    path = resolve_notebook(root, notebook, allow_path=True)
    profiled = _profile_values(root, path, profile)
    values = {**profiled, **parameters}
    check_parameters(path, values)
    return [{"name": name, "value": values.get(name, d.default), "type": d.type_name, "help": d.help,
             "from": "-p" if name in parameters else profile_label(profile) if name in profiled else "default"}
            for name, d in declared_parameters(path).items()]


def run_one(notebook: str, parameters: dict[str, Any], profile: str | Path = "default", output: Path | None = None,
            root: Path | None = None, progress: bool = True) -> RunRecord:
    """Execute one notebook with a profile's parameters overridden by ``parameters`` (no site build).

    ``notebook`` is a project notebook's name or a path to a ``.ipynb`` file (that file is run, with the
    profile's values for the project notebook of the same name, if any). Every parameter is checked,
    and every spec resolved, before the kernel starts.
    """
    root = project_root(root)
    path = resolve_notebook(root, notebook, allow_path=True)
    label = profile_label(profile)
    values = {**_profile_values(root, path, profile), **parameters}
    check_parameters(path, values, environment=True)
    output = writable_output(output if output else root / "_build" / "runs" / f"{path.stem}.ipynb")
    logger.info("%s: running (%s profile%s)", path.stem, label, _expectation(root, label, path.stem))
    record = execute_notebook(path, output, values, cwd=root / "notebooks", progress=progress,
                              timeout=cell_timeout(root, label, path.stem))
    if output.is_file() and output.stat().st_size:
        _stamp(output, record, "", label)  # a record for the next run's expectation, never a book cache key
    elif output.is_file():
        output.unlink()  # papermill failed before writing anything: leave no empty notebook behind
    return record


def audit_notebook(root: Path) -> Path:
    """The audit notebook: ``notebooks/audit/audit.ipynb``, outside the glob that finds the book's chapters."""
    return root / "notebooks" / AUDIT / f"{AUDIT}.ipynb"


@dataclass
class AuditRecord(RunRecord):
    """One reward model's audit: the run, and where its notebook and card went."""

    spec: str = ""
    directory: str = ""


BOOK_RMS = "book_rms"  # the `audit:` section's list of RMs whose cards the book shows; not a notebook parameter
AUDITS = "audits"  # the book's Audits part: <stage>/audits/<safe name>/ per card, and the explorer
AUDITS_PAGE = "book/audits"  # the part's first page (prose that includes the generated comparison table)
EXPLORER = "explorer"  # notebooks/audit/explorer.ipynb, staged as audits/explorer


def audit_settings(root: Path, profile: str | Path) -> tuple[dict[str, Any], list[str]]:
    """A profile's ``audit:`` section: (the audit notebook's parameters, the RMs the book audits: ``book_rms``)."""
    values = load_profile(profile, root / "notebooks" / "params", [*notebook_names(root), AUDIT])[AUDIT]
    specs = values.pop(BOOK_RMS, [])
    if not isinstance(specs, list) or not all(isinstance(s, str) and s.strip() for s in specs):
        raise ParameterError(f"{AUDIT}: {BOOK_RMS} must be a list of reward-model specs, got {specs!r}")
    return values, specs


def audit_jobs(specs: list[str], base: dict[str, Any], out: Path, root: Path) -> list[tuple[str, Path, dict[str, Any]]]:
    """(spec, card folder under ``out``, notebook parameters) for each spec, every one checked before any compute:
    names, types, values, that the spec loads here and returns one scalar, that its folder can be written."""
    from ..studies.audit.audit import safe_name, scalar_reward_problem

    notebook = audit_notebook(root)
    if not isinstance(specs, list) or not specs:
        raise ParameterError("audit needs at least one reward-model spec")
    base = dict(base)
    base.pop("rm", None)
    options = base.pop("reward_options", None) or {}
    if not isinstance(options, dict):
        raise ParameterError(f"parameter 'reward_options' of {AUDIT} must be dict, got {type(options).__name__} {options!r}")
    compared = base.get("compare_rms") if isinstance(base.get("compare_rms"), list) else []
    stray = sorted(set(options) - set(specs) - set(compared))
    if stray:
        raise ParameterError(f"{AUDIT}: parameter 'reward_options' names {', '.join(map(repr, stray))}, which is not "
                             f"among the audited specs ({', '.join(specs)}) or compare_rms")
    names = [safe_name(s) for s in specs]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ParameterError(f"specs {', '.join(s for s, n in zip(specs, names) if n in clash)} share the folder name "
                             f"{clash[0]!r}; audit them one at a time with -o")
    jobs = []
    for spec, name in zip(specs, names):
        directory = out / name
        used = {spec, *compared}
        values = {**base, "rm": spec, "card_dir": str(directory.resolve()),
                  **({"reward_options": {k: v for k, v in options.items() if k in used}} if used & set(options) else {})}
        check_parameters(notebook, values, environment=True)
        problem = scalar_reward_problem(spec, (values.get("reward_options") or {}).get(spec))
        if problem:
            raise ParameterError(f"audit: parameter 'rm': {problem}")
        jobs.append((spec, directory, values))
    for _, directory, _ in jobs:
        writable_output(directory / f"{AUDIT}.ipynb")
    return jobs


def _run_audit(root: Path, spec: str, directory: Path, values: dict[str, Any], label: str, progress: bool,
               key: str = "") -> AuditRecord:
    output = directory / f"{AUDIT}.ipynb"
    logger.info("audit %s: running (%s profile)", spec, label)
    record = execute_notebook(audit_notebook(root), output, values, cwd=root / "notebooks", progress=progress,
                              timeout=cell_timeout(root, label, AUDIT))
    if output.is_file() and output.stat().st_size:
        _stamp(output, record, key if record.status == "ok" else "", label)
    return AuditRecord(**asdict(record), spec=spec, directory=str(directory))


def run_audit(specs: list[str], parameters: dict[str, Any] | None = None, profile: str | Path = "default",
              output: Path | None = None, root: Path | None = None, progress: bool = True) -> list[AuditRecord]:
    """Audit each reward model in ``specs`` with the audit notebook, through the same runner as ``run_one``.

    Parameters are the profile's ``audit`` section overridden by ``parameters``, then ``rm`` (the spec) and
    ``card_dir``. Every spec's parameters are checked (names, types, values, that the spec loads here and returns
    one scalar) before the first kernel starts. Each RM gets ``<output>/<safe name>/`` (default
    ``_build/audits/``) holding ``audit.ipynb`` (the executed notebook), ``card.json``, ``card.md`` and (for a model
    with a vocabulary) ``sweeps.parquet``; ``<output>/comparison.md`` compares the cards of this run.
    """
    root = project_root(root)
    for key in ("rm", "card_dir"):
        if key in (parameters or {}):
            raise ParameterError(f"parameter {key!r} is set by `rewardscope audit` (the spec, and the output folder "
                                 "with -o); do not pass it with -p")
    base = audit_settings(root, profile)[0] | (parameters or {})
    out = Path(output).expanduser() if output else root / "_build" / AUDITS
    jobs = audit_jobs(specs, base, out, root)
    label = profile_label(profile)
    records = [_run_audit(root, spec, directory, values, label, progress) for spec, directory, values in jobs]
    done = [Path(r.directory) for r in records if (Path(r.directory) / "card.md").is_file()]
    if done:
        from ..studies.audit.audit import comparison_markdown, read_cards

        atomic_write_text(out / "comparison.md", "# Reward-model cards compared\n\n"
                          + comparison_markdown(read_cards(done), [f"{d.name}/card.md" for d in done]))
    return records


def _book_audits(root: Path, label: str, jobs: list[tuple[str, Path, dict[str, Any]]], run: bool, force: bool,
                 progress: bool) -> list[RunRecord]:
    """The book's audits: each card is rerun only when its notebook, parameters or library changed (like a chapter);
    with ``run`` False (``--only``) none runs and the cards already there are kept."""
    records = []
    for spec, directory, values in jobs:
        output, name = directory / f"{AUDIT}.ipynb", f"{AUDIT} {spec}"
        key = run_key(audit_notebook(root), values, root)
        previous = _record_from_output(output) if output.is_file() else None
        has_card = (directory / "card.md").is_file()
        if has_card and previous and _cached_output(output, key) and not (force and run):
            records.append(RunRecord(name, "cached", previous.duration, previous.peak_rss_mb, values))
        elif not run:
            records.append(RunRecord(name, "stale" if has_card else "not run", parameters=values))
        else:
            record = _run_audit(root, spec, directory, values, label, progress, key)
            records.append(RunRecord(name, record.status, record.duration, record.peak_rss_mb, values, record.error))
    return records


def _files_hash(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path).encode() + (path.read_bytes() if path.is_file() else b""))
    return digest.hexdigest()


def _stage_audits(root: Path, stage: Path, jobs: list[tuple[str, Path, dict[str, Any]]], label: str, force: bool,
                  progress: bool) -> RunRecord:
    """The Audits part's generated pages: the comparison table (included by book/audits.md), the cards in the staged
    table of contents, and the explorer notebook, rerun when its code, the library or a card changed."""
    from ..studies.audit.audit import CARD_JSON, SWEEPS_FILE, comparison_markdown, read_cards

    folders = [directory for _, directory, _ in jobs if (directory / "card.md").is_file()]
    links = [f"../{AUDITS}/{d.name}/card.md" for d in folders]
    table = comparison_markdown(read_cards(folders), links) if folders else \
        "No card was built in this build: the execution report says why.\n"
    atomic_write_text(stage / AUDITS / "comparison.md", table)
    _stage_toc_cards(stage, [f"{AUDITS}/{d.name}/card" for d in folders])
    notebook, output = root / "notebooks" / AUDIT / f"{EXPLORER}.ipynb", stage / AUDITS / f"{EXPLORER}.ipynb"
    parameters = {"card_dirs": [str(d) for d in folders]}
    sources = [c.source for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
    cards = _files_hash([d / f for d in folders for f in (CARD_JSON, SWEEPS_FILE)])
    key = run_key(notebook, parameters, root, {**dependency_hashes(root, sources), "cards": cards})
    previous = _record_from_output(output) if output.is_file() else None
    if not folders:  # nothing to explore; never fall back to the cards of other runs
        nb = nbformat.read(notebook, as_version=4)
        without_missing_glue(nb)
        _write_with_warning(nb, output, "No reward-model card was built in this build (the execution report says why), "
                            "so the explorer has nothing to show.")
        return RunRecord(EXPLORER, "not run", parameters=parameters)
    if not force and previous and _cached_output(output, key):
        return RunRecord(EXPLORER, "cached", previous.duration, previous.peak_rss_mb, parameters)
    record = execute_notebook(notebook, output, parameters, cwd=root / "notebooks", progress=progress)
    _keep_output(notebook, output, record, key, label)
    return record


def _stage_toc_cards(stage: Path, pages: list[str] | None) -> None:
    """The staged table of contents with ``pages`` (the cards) under the Audits page; None drops the Audits part (a
    profile that audits no RM)."""
    import yaml

    toc = yaml.safe_load((stage / "_toc.yml").read_text(encoding="utf-8"))
    for part in list(toc.get("parts", [])):
        chapter = next((c for c in part.get("chapters", []) if c.get("file") == AUDITS_PAGE), None)
        if chapter is None:
            continue
        if pages is None:
            toc["parts"].remove(part)
        elif pages:
            chapter["sections"] = [{"file": page} for page in pages]
    atomic_write_text(stage / "_toc.yml", yaml.safe_dump(toc, sort_keys=False, allow_unicode=True))
