"""Shared fixtures. Every test session gets a fresh artifact cache and no hub access."""

import os
import random
import tempfile
from pathlib import Path

# Set before rewardscope or huggingface_hub are imported anywhere in the session.
os.environ["REWARDSCOPE_CACHE"] = tempfile.mkdtemp(prefix="rewardscope-test-cache-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="rewardscope-test-datasets-")  # local copies' Arrow files
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per core: one thread each, none oversubscribed
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def copy_without_chat_template(name: str, dest: Path) -> Path:
    """A copy of an embedded model's directory at ``dest`` whose tokenizer has no chat template."""
    import json
    import shutil

    from rewardscope.zoo import resolve

    shutil.copytree(resolve(name), dest)
    config = json.loads((dest / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (dest / "tokenizer_config.json").write_text(json.dumps(config))
    for file in ("chat_template.jinja", "chat_template.json"):
        (dest / file).unlink(missing_ok=True)
    return dest


def write_mini_book(root: Path, chapters: list[str], profiles: dict | None = None) -> Path:
    """The scaffolding of a small book at ``root``: an intro, the given notebook chapters, an execution report,
    and the smoke/default/paper profiles (``profiles``: their content, {} by default)."""
    import yaml

    (root / "notebooks" / "params").mkdir(parents=True, exist_ok=True)
    (root / "book").mkdir(exist_ok=True)
    for profile in ("smoke", "default", "paper"):
        (root / "notebooks" / "params" / f"{profile}.yml").write_text(yaml.safe_dump(profiles or {}))
    (root / "book" / "intro.md").write_text("# Mini\n\nA test book.\n")
    (root / "book" / "execution_report.md").write_text("# Execution report\n")
    (root / "_toc.yml").write_text(yaml.safe_dump({
        "format": "jb-book", "root": "book/intro",
        "chapters": [{"file": f"notebooks/{c}"} for c in chapters] + [{"file": "book/execution_report"}]}))
    (root / "_config.yml").write_text(yaml.safe_dump({
        "title": "mini", "only_build_toc_files": True, "execute": {"execute_notebooks": "off"}}))
    return root


@pytest.fixture(autouse=True)
def reproducibility():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache for tests that count builds."""
    from rewardscope import artifacts

    monkeypatch.setenv("REWARDSCOPE_CACHE", str(tmp_path / "cache"))
    artifacts._VERIFIED.clear()
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def smoke_site():
    """The whole book built from scratch with the smoke profile (once per session): its HTML directory.

    Tests that use it carry ``xdist_group("smoke_site")``, so that one worker builds it, once."""
    import subprocess
    import sys

    from rewardscope.runner.book import site_dir

    proc = subprocess.run([sys.executable, "-m", "rewardscope.runner.cli", "book", "--profile", "smoke", "--force"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return site_dir(ROOT, "smoke")


@pytest.fixture(scope="session")
def templateless_llama(tmp_path_factory):
    """A copy of the tiny Llama policy without any chat template, like a base LM (Pythia): its directory."""
    return copy_without_chat_template("tiny-llama", tmp_path_factory.mktemp("templateless") / "tiny-llama-base")
