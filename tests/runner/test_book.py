"""The runner: failure reporting, resuming, bad input, and the real book in the smoke profile."""

import json
import os
import re
import sys

import nbformat
import pytest
import yaml

from rewardscope.runner.book import build_book, previous_duration, site_dir
from rewardscope.runner.cli import main
from rewardscope.runner.params import ParameterError

from ..helpers import ROOT, write_mini_book


def _notebook(path, body):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("value: int = 1", metadata={"tags": ["parameters"]})
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)


@pytest.fixture
def mini_book(tmp_path):
    """A two-notebook book whose second notebook raises."""
    write_mini_book(tmp_path, ["a_ok", "b_fails"], profiles={"a_ok": {"value": 2}})
    _notebook(tmp_path / "notebooks" / "a_ok.ipynb", "print('value is', value)")
    _notebook(tmp_path / "notebooks" / "b_fails.ipynb", "raise RuntimeError('planted failure')")
    return tmp_path


def test_failing_notebook_is_reported_and_does_not_stop_the_others(mini_book):
    records, code, log = build_book("smoke", root=mini_book, progress=False)
    status = {r.notebook: r for r in records}
    assert status["a_ok"].status == "ok" and status["a_ok"].parameters == {"value": 2}
    assert status["b_fails"].status == "failed" and "planted failure" in status["b_fails"].error
    assert status["a_ok"].peak_rss_mb > 0
    report = (mini_book / "_build" / "smoke" / "src" / "book" / "execution_report.md").read_text()
    assert "| b_fails | **failed** |" in report and "planted failure" in report and "| a_ok | ran |" in report
    html = site_dir(mini_book, "smoke")
    assert code == 0, log
    assert (html / "notebooks" / "a_ok.html").is_file() and (html / "notebooks" / "b_fails.html").is_file()
    assert "planted failure" in (html / "notebooks" / "b_fails.html").read_text()

    # A second build reuses the good output and retries the failed one.
    again, _, _ = build_book("smoke", root=mini_book, progress=False)
    assert [r.status for r in again] == ["cached", "failed"]


def test_cli_exits_non_zero_naming_the_failed_notebook(mini_book, monkeypatch, capsys):
    monkeypatch.chdir(mini_book)
    assert main(["book", "--profile", "smoke"]) == 1
    assert "notebooks failed: b_fails" in capsys.readouterr().err


def test_changed_parameters_invalidate_the_cached_output(mini_book):
    build_book("smoke", root=mini_book, only=["a_ok"], progress=False)
    params = mini_book / "notebooks" / "params" / "smoke.yml"
    params.write_text(yaml.safe_dump({"a_ok": {"value": 3}}))
    records, _, _ = build_book("smoke", root=mini_book, only=["a_ok"], progress=False)
    assert records[0].status == "ok" and records[1].status == "not run"
    out = nbformat.read(mini_book / "_build" / "smoke" / "src" / "notebooks" / "a_ok.ipynb", as_version=4)
    assert "value is 3" in json.dumps(out.cells[-1].outputs)


def test_edited_prose_reaches_the_site_without_a_rerun(mini_book):
    build_book("smoke", root=mini_book, only=["a_ok"], progress=False)
    source = mini_book / "notebooks" / "a_ok.ipynb"
    nb = nbformat.read(source, as_version=4)
    nb.cells[0].source = "# a_ok\n\nEdited prose."
    nb.cells.append(nbformat.v4.new_markdown_cell("A new closing paragraph."))
    nbformat.write(nb, source)
    records, code, log = build_book("smoke", root=mini_book, only=["a_ok"], progress=False)
    assert records[0].status == "cached" and code == 0, log
    out = nbformat.read(mini_book / "_build" / "smoke" / "src" / "notebooks" / "a_ok.ipynb", as_version=4)
    assert out.cells[0].source.endswith("Edited prose.") and out.cells[-1].source == "A new closing paragraph."
    assert "value is 2" in json.dumps(out.cells)  # the cached outputs and the injected parameters are kept
    html = (site_dir(mini_book, "smoke") / "notebooks" / "a_ok.html").read_text()
    assert "Edited prose." in html and "A new closing paragraph." in html


def test_bad_input_fails_before_anything_runs(mini_book, monkeypatch, capsys):
    monkeypatch.chdir(mini_book)
    assert main(["book", "--profile", "smoke", "--only", "zz_missing"]) == 2
    assert "unknown notebook 'zz_missing'; notebooks: a_ok, b_fails" in capsys.readouterr().err
    (mini_book / "notebooks" / "params" / "smoke.yml").write_text(yaml.safe_dump({"a_ok": {"value": "two"}}))
    assert main(["book", "--profile", "smoke"]) == 2
    assert "parameter 'value' of a_ok must be int, got str 'two'" in capsys.readouterr().err
    assert not (mini_book / "_build" / "smoke" / "src" / "notebooks" / "a_ok.ipynb").exists()
    assert main(["run", "a_ok", "-p", "value", "[1, 2]"]) == 2
    assert main(["book", "--profile", "fast"]) == 2
    assert "unknown profile 'fast'" in capsys.readouterr().err


def test_run_one_notebook_with_an_override(mini_book, monkeypatch):
    monkeypatch.chdir(mini_book)
    assert main(["run", "notebooks/a_ok.ipynb", "-p", "value", "41", "--profile", "smoke"]) == 0
    out = nbformat.read(mini_book / "_build" / "runs" / "a_ok.ipynb", as_version=4)
    assert "value is 41" in json.dumps(out.cells[-1].outputs)


@pytest.mark.slow
@pytest.mark.xdist_group("smoke_site")
def test_the_whole_book_builds_in_the_smoke_profile(smoke_site):
    html = smoke_site
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for page in pages:
        assert (html / f"{page}.html").is_file(), page
    zoo = (html / "notebooks" / "00_model_zoo.html").read_text()
    assert "Traceback" not in zoo and "fig-zoo-scores" in zoo and "<img" in zoo
    report = (html / "book" / "execution_report.html").read_text()
    assert re.search(r"<p>00_model_zoo</p></td>\s*<td><p>ran</p></td>", report), "the report lists the notebook as run"


def _rendezvous(path, me, other):
    """A notebook body that finishes only if the other notebook runs at the same time (no timing needed)."""
    return (f"import pathlib, time\nbase = pathlib.Path({str(path)!r})\n(base / {me!r}).touch()\n"
            f"for _ in range(600):\n    if (base / {other!r}).exists():\n        break\n    time.sleep(0.1)\n"
            f"else:\n    raise RuntimeError('ran alone')\n"
            "import os\nprint('threads', os.environ.get('OMP_NUM_THREADS'))")


def test_jobs_run_notebooks_side_by_side_with_a_thread_share(mini_book):
    (mini_book / "notebooks" / "b_fails.ipynb").unlink()
    _notebook(mini_book / "notebooks" / "a_ok.ipynb", _rendezvous(mini_book, "a", "c"))
    _notebook(mini_book / "notebooks" / "c_meets.ipynb", _rendezvous(mini_book, "c", "a"))
    records, code, log = build_book("smoke", root=mini_book, progress=False, jobs=2)
    assert [(r.notebook, r.status) for r in records] == [("a_ok", "ok"), ("c_meets", "ok")], records
    out = nbformat.read(mini_book / "_build" / "smoke" / "src" / "notebooks" / "c_meets.ipynb", as_version=4)
    assert f"threads {max(1, os.cpu_count() // 2)}" in json.dumps(out.cells[-1].outputs)
    with pytest.raises(ParameterError, match="jobs must be a positive int, got 0"):
        build_book("smoke", root=mini_book, jobs=0)


def test_run_tells_how_long_the_last_run_took(mini_book, monkeypatch, caplog):
    monkeypatch.chdir(mini_book)
    caplog.set_level("INFO", logger="rewardscope.runner.book")
    assert main(["run", "a_ok", "--profile", "smoke"]) == 0
    assert "the last run took" not in caplog.text
    assert previous_duration(mini_book, "smoke", "a_ok") > 0 and previous_duration(mini_book, "default", "a_ok") is None
    caplog.clear()
    assert main(["run", "a_ok", "--profile", "smoke"]) == 0
    assert "a_ok: running (smoke profile; the last run took" in caplog.text


def test_progress_bars_reach_the_runner_not_the_notebook(tmp_path, monkeypatch):
    import io

    from rewardscope import progress

    monkeypatch.setattr(progress, "_sink", None)
    monkeypatch.delenv(progress.ENV, raising=False)
    quiet = io.StringIO()
    monkeypatch.setattr(sys, "stderr", quiet)  # not a terminal, no runner: a kernel's stderr is the notebook
    assert list(progress.bar(range(3), desc="step", unit="it")) == [0, 1, 2] and quiet.getvalue() == ""
    sink = tmp_path / "progress.log"
    monkeypatch.setenv(progress.ENV, str(sink))
    assert list(progress.bar(range(3), desc="sweeping", unit="tok")) == [0, 1, 2]
    assert "sweeping" in sink.read_text() and "3/3" in sink.read_text() and quiet.getvalue() == ""
    assert list(progress.bar(range(2), desc="short", unit="it", long=False)) == [0, 1]
    assert "short" not in sink.read_text()  # a short step shows no bar, even to a runner


def test_the_runner_shows_the_latest_bar_line(tmp_path):
    import io
    import threading

    from rewardscope.runner.book import _follow

    sink, stream, stop = tmp_path / "p.log", io.StringIO(), threading.Event()
    sink.write_text("cells:  10%| 1/10\rcells:  20%| 2/10\rsweeping rm:  50%| 5/10 [00:05<00:05]\r")
    thread = threading.Thread(target=_follow, args=(sink, stop, "nb", stream, 0.01))
    thread.start()
    stop.set()
    thread.join()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("[nb ") and lines[0].endswith("sweeping rm:  50%| 5/10 [00:05<00:05]")


def test_colab_and_binder_buttons_appear_once_the_repository_is_known(mini_book, monkeypatch):
    monkeypatch.setenv("REWARDSCOPE_REPOSITORY", "https://github.com/OWNER")
    with pytest.raises(ParameterError, match="must be https://github.com/OWNER/NAME"):
        build_book("smoke", root=mini_book, progress=False)
    monkeypatch.setenv("REWARDSCOPE_REPOSITORY", "https://github.com/owner/book@dev")
    _, code, log = build_book("smoke", root=mini_book, only=["a_ok"], progress=False)
    assert code == 0, log
    html = (site_dir(mini_book, "smoke") / "notebooks" / "a_ok.html").read_text()
    assert "https://colab.research.google.com/github/owner/book/blob/dev/notebooks/a_ok.ipynb" in html
    assert "mybinder.org/v2/gh/owner/book/dev" in html
    monkeypatch.delenv("REWARDSCOPE_REPOSITORY")
    build_book("smoke", root=mini_book, only=["a_ok"], progress=False)
    assert "colab.research.google.com" not in (site_dir(mini_book, "smoke") / "notebooks" / "a_ok.html").read_text()


def test_only_keeps_an_out_of_date_output_and_says_so(mini_book):
    build_book("smoke", root=mini_book, only=["a_ok"], progress=False)
    (mini_book / "notebooks" / "params" / "smoke.yml").write_text(yaml.safe_dump({"a_ok": {"value": 3}}))
    records, code, log = build_book("smoke", root=mini_book, only=["b_fails"], progress=False)
    assert records[0].status == "stale" and code == 0, log
    out = nbformat.read(mini_book / "_build" / "smoke" / "src" / "notebooks" / "a_ok.ipynb", as_version=4)
    assert "value is 2" in json.dumps(out.cells) and "outputs of an earlier run" in out.cells[1].source
    build_book("smoke", root=mini_book, only=["b_fails"], progress=False)  # the warning is added once
    out = nbformat.read(mini_book / "_build" / "smoke" / "src" / "notebooks" / "a_ok.ipynb", as_version=4)
    assert sum("outputs of an earlier run" in c.source for c in out.cells) == 1
    report = (mini_book / "_build" / "smoke" / "src" / "book" / "execution_report.md").read_text()
    assert "| a_ok | earlier run (out of date) |" in report
    records, _, _ = build_book("smoke", root=mini_book, only=["a_ok"], progress=False)
    out = nbformat.read(mini_book / "_build" / "smoke" / "src" / "notebooks" / "a_ok.ipynb", as_version=4)
    assert records[0].status == "ok" and "value is 3" in json.dumps(out.cells)
    assert not any("outputs of an earlier run" in c.source for c in out.cells)


def _package(tmp_path, files):
    package = tmp_path / "rewardscope"
    package.mkdir()
    for name, text in files.items():
        (package / name).parent.mkdir(exist_ok=True)
        (package / name).write_text(text)
    return package


def test_run_key_follows_the_modules_a_notebook_imports_transitively(tmp_path, monkeypatch):
    from rewardscope.runner import book

    package = _package(tmp_path, {
        "__init__.py": "from . import core\n",
        "core.py": "X = 1\n",
        "study.py": "def f():\n    from .helper import g  # a lazy import still counts\n    return g()\n",
        "helper.py": "def g():\n    return 2\n",
        "other.py": "from .core import X\n",
        "runner/__init__.py": "",
        "runner/book.py": "RUNNER = True\n",
    })
    monkeypatch.setattr(book, "PACKAGE", package)
    cells = ["%matplotlib inline\nimport numpy as np", "from rewardscope import study\nimport rewardscope.runner.book"]
    assert [p.name for p in book.library_modules(cells)] == ["__init__.py", "core.py", "helper.py", "study.py"]
    notebook = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), notebook)
    before = book.run_key(notebook, {}, tmp_path)
    (package / "other.py").write_text("Y = 3\n")  # not imported: the key stays
    (package / "runner" / "book.py").write_text("RUNNER = False\n")  # the runner folder: never in the key
    assert book.run_key(notebook, {}, tmp_path) == before
    (package / "helper.py").write_text("def g():\n    return 3\n")  # imported by study, lazily
    assert book.run_key(notebook, {}, tmp_path) != before


def test_a_change_to_the_sweep_reruns_chapter_3_and_not_chapter_4():
    from rewardscope.runner import book

    def modules(name):
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        return {p.name for p in book.library_modules([c.source for c in nb.cells if c.cell_type == "code"])}

    assert "sweep.py" in modules("03_vocab_sweep") and "sweep.py" not in modules("04_seal_imprint")
    assert "imprint.py" in modules("04_seal_imprint") and "imprint.py" not in modules("03_vocab_sweep")
    assert not {"book.py", "params.py", "param_rules.py", "cli.py", "execute.py"} & modules("03_vocab_sweep")


def test_the_book_times_each_notebook_and_each_entry_its_kernels_built(tmp_path, monkeypatch, capsys):
    from rewardscope.runner import book

    write_mini_book(tmp_path, ["a_builds"])
    _notebook(tmp_path / "notebooks" / "a_builds.ipynb",
              "from rewardscope import artifacts\n"
              "artifacts.cached('toy-model', {'value': value}, 1, lambda out: (out / 'w.bin').write_bytes(b'1'))")
    monkeypatch.setenv("REWARDSCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert book.cell_timeout(tmp_path, "smoke", "a_builds") is None  # a first run: no per-cell limit
    assert main(["book", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"a_builds\s+ok\s+[\d.]+ s", out) and re.search(r"toy-model \w{16}\s+[\d.]+ s\s+for a_builds", out)
    report = (tmp_path / "_build" / "smoke" / "src" / "book" / "execution_report.md").read_text()
    assert "## Models and data built in this run" in report and "| toy-model `" in report
    assert book.cell_timeout(tmp_path, "smoke", "a_builds") == book.CELL_TIMEOUT  # a short run: the floor
