"""Shared fixtures. Every test session gets a fresh artifact cache and no hub access."""

import os
import random
import tempfile

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

from .helpers import ROOT, copy_without_chat_template  # noqa: E402


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
