"""The runner: failure reporting, resuming, bad input, and the real book in the smoke profile."""

import json
import subprocess
import sys

import nbformat
import pytest
import yaml

from rewardscope.book import build_book, site_dir
from rewardscope.cli import main

from .conftest import ROOT


def _notebook(path, body):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("value: int = 1", metadata={"tags": ["parameters"]})
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)


@pytest.fixture
def mini_book(tmp_path):
    """A two-notebook book whose second notebook raises."""
    (tmp_path / "notebooks" / "params").mkdir(parents=True)
    (tmp_path / "book").mkdir()
    _notebook(tmp_path / "notebooks" / "a_ok.ipynb", "print('value is', value)")
    _notebook(tmp_path / "notebooks" / "b_fails.ipynb", "raise RuntimeError('planted failure')")
    for profile in ("smoke", "default", "paper"):
        (tmp_path / "notebooks" / "params" / f"{profile}.yml").write_text(yaml.safe_dump({"a_ok": {"value": 2}}))
    (tmp_path / "book" / "intro.md").write_text("# Mini\n\nA test book.\n")
    (tmp_path / "book" / "execution_report.md").write_text("# Execution report\n")
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump({
        "format": "jb-book", "root": "book/intro",
        "chapters": [{"file": "notebooks/a_ok"}, {"file": "notebooks/b_fails"}, {"file": "book/execution_report"}]}))
    (tmp_path / "_config.yml").write_text(yaml.safe_dump({
        "title": "mini", "only_build_toc_files": True, "execute": {"execute_notebooks": "off"}}))
    return tmp_path


def test_failing_notebook_is_reported_and_does_not_stop_the_others(mini_book):
    records, code, log = build_book("smoke", root=mini_book, progress=False)
    status = {r.notebook: r for r in records}
    assert status["a_ok"].status == "ok" and status["a_ok"].parameters == {"value": 2}
    assert status["b_fails"].status == "failed" and "planted failure" in status["b_fails"].error
    assert status["a_ok"].peak_rss_mb > 0
    report = (mini_book / "_build" / "smoke" / "src" / "book" / "execution_report.md").read_text()
    assert "| b_fails | ❌ failed |" in report and "planted failure" in report and "| a_ok | ✅ ran |" in report
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
    with pytest.raises(SystemExit):
        main(["book", "--profile", "fast"])


def test_run_one_notebook_with_an_override(mini_book, monkeypatch):
    monkeypatch.chdir(mini_book)
    assert main(["run", "notebooks/a_ok.ipynb", "-p", "value", "41", "--profile", "smoke"]) == 0
    out = nbformat.read(mini_book / "_build" / "runs" / "a_ok.ipynb", as_version=4)
    assert "value is 41" in json.dumps(out.cells[-1].outputs)


@pytest.mark.slow
def test_the_whole_book_builds_in_the_smoke_profile():
    proc = subprocess.run([sys.executable, "-m", "rewardscope.cli", "book", "--profile", "smoke", "--force"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    html = site_dir(ROOT, "smoke")
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for page in pages:
        assert (html / f"{page}.html").is_file(), page
    zoo = (html / "notebooks" / "00_model_zoo.html").read_text()
    assert "Traceback" not in zoo and "fig-zoo-scores" in zoo and "<img" in zoo
    report = (html / "book" / "execution_report.html").read_text()
    assert "00_model_zoo" in report and "✅" in report
