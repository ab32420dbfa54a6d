"""The paper profile cannot rot unseen: every chapter runs on its models' replicas (the ``replica`` profile)."""

import shutil
import subprocess
import sys

import pytest
import yaml

from rewardscope.replicas import REPLICAS
from rewardscope.runner.book import build_dir, site_dir
from rewardscope.runner.replica_profile import DATA_REPLICAS, render, replica_profile

from ..helpers import ROOT

PARAMS = ROOT / "notebooks" / "params"


def test_replica_yml_is_generated_from_the_paper_profile():
    assert (PARAMS / "replica.yml").read_text() == render(PARAMS), \
        "notebooks/params/replica.yml is stale: run `python -m rewardscope.runner.replica_profile`"


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)


def test_every_hub_model_and_data_set_of_the_paper_profile_has_a_replica():
    paper = yaml.safe_load((PARAMS / "paper.yml").read_text())
    replica = replica_profile(paper, yaml.safe_load((PARAMS / "smoke.yml").read_text()))
    hub = {s for s in _strings(paper) if "/" in s and not s.startswith((".", "/"))}
    assert hub <= set(REPLICAS) | set(DATA_REPLICAS), f"no replica for {sorted(hub - set(REPLICAS) - set(DATA_REPLICAS))}"
    left = {s for s in _strings(replica) if s in hub}
    assert not left, f"hub ids left in the replica profile: {sorted(left)}"
    assert all(v.get("device") is None for v in replica.values())


@pytest.mark.slow
def test_every_chapter_runs_on_the_paper_models_replicas():
    """``book --profile replica --only 03_vocab_sweep`` on a fresh build (the other pages unexecuted), then the whole
    book: every notebook ok and the site built (warnings are errors)."""
    shutil.rmtree(build_dir(ROOT, "replica"), ignore_errors=True)
    cli = [sys.executable, "-m", "rewardscope.runner.cli", "book", "--profile", "replica"]
    only = subprocess.run([*cli, "--only", "03_vocab_sweep"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert only.returncode == 0, only.stdout[-3000:] + only.stderr[-3000:]
    whole = subprocess.run([*cli, "--jobs", "2"], cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert whole.returncode == 0, whole.stdout[-3000:] + whole.stderr[-3000:]
    rows = [line.split() for line in whole.stdout.splitlines() if line.strip()[:2].isdigit()]
    assert rows and all(row[1] in ("ok", "cached") for row in rows), whole.stdout
    assert (site_dir(ROOT, "replica") / "notebooks" / "03_vocab_sweep.html").is_file()
