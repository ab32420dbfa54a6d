"""Same profile and seed, same tables: the smoke book built from two empty caches, and from a cache whose tiny
backbones were built beforehand by ``rewardscope zoo build``, must glue identical values (timings aside).

Slow (three smoke builds): ``make check-determinism`` runs it, and ``.ci/run`` calls that target."""

import os
import re
import shutil
import subprocess
import sys

import nbformat
import pytest

from rewardscope.runner.book import build_dir, glued_values

from ..helpers import ROOT

TIMING = re.compile(r"(second|minute|_s$|_s_|per_s|speed|throughput|time|duration|tokens_per|elapsed|_min$|bound)", re.I)
SPEEDUP = re.compile(r"\d+(\.\d+)?×")  # a measured speed-up quoted inside a sentence (chapter 3's answer)
WARMED = ("tiny-llama", "tiny-llama-rm", "tiny-bert-rm")

pytestmark = pytest.mark.skipif(os.environ.get("REWARDSCOPE_DETERMINISM") != "1",
                                reason="three smoke builds: run with `make check-determinism`")


def _build(cache, warm: bool) -> dict[str, dict[str, str]]:
    env = {**os.environ, "REWARDSCOPE_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    cli = [sys.executable, "-m", "rewardscope.runner.cli"]
    if warm:
        subprocess.run([*cli, "zoo", "build", *WARMED], cwd=ROOT, env=env, check=True, capture_output=True)
    proc = subprocess.run([*cli, "book", "--profile", "smoke", "--force", "--jobs", "2"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    outputs = build_dir(ROOT, "smoke") / "src" / "notebooks"
    return {p.stem: {k: SPEEDUP.sub("N×", v) for k, v in glued_values(nbformat.read(p, as_version=4)).items()
                     if not TIMING.search(k)}
            for p in sorted(outputs.glob("*.ipynb"))}


def test_the_same_seed_gives_the_same_glued_values(tmp_path):
    builds = {}
    for label, warm in (("first", False), ("second", False), ("warmed", True)):
        builds[label] = _build(tmp_path / label, warm)
        shutil.rmtree(tmp_path / label, ignore_errors=True)
    reference = builds["first"]
    assert sum(len(v) for v in reference.values()) > 300, "too few glued values: did the book build?"
    for label in ("second", "warmed"):
        differ = [f"{nb}.{name}: {value!r} vs {builds[label].get(nb, {}).get(name)!r}"
                  for nb, values in reference.items() for name, value in values.items()
                  if builds[label].get(nb, {}).get(name) != value]
        assert not differ, f"{len(differ)} glued values differ ({label} build):\n" + "\n".join(differ[:40])
