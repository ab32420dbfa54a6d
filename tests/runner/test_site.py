"""The built smoke site, as a reader's browser sees it: every page of the table of contents loads in
headless Chromium without console errors, failed requests, broken images, images without alt text
or broken internal links, and math is typeset offline.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``.ci/run``), driven by Playwright. Without
a browser the test skips with the reason, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest
import yaml

from ..helpers import ROOT

pytestmark = pytest.mark.xdist_group("smoke_site")  # one worker builds the smoke book for all of them

# The flags a sandboxed, offline machine needs: no background requests to Google, no GPU, no sandbox as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _chromium() -> str | None:
    found = os.environ.get("REWARDSCOPE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return found if found and Path(found).exists() else None


def _need_browser():
    """Playwright's sync API and a Chromium binary, or a skip (a failure under CI=true)."""
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason, sync_playwright = "playwright is not installed (make venv installs it)", None
    browser = _chromium()
    if reason is None and browser is None:
        reason = "no Chromium found (apt-get install chromium, or set REWARDSCOPE_CHROMIUM)"
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the browser test cannot run: {reason}")
        pytest.skip(reason)
    return sync_playwright, browser


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the test reports failures itself
        pass


@pytest.fixture(scope="module")
def served_site(smoke_site):
    """The smoke site on an ephemeral loopback port: yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(smoke_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]


# Run in the page after load: what a reader would notice broken.
_INSPECT = """() => ({
  images: [...document.images].map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0,
                                          alt: (i.getAttribute('alt') || '').trim()})),
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  ids: [...document.querySelectorAll('[id]')].map(e => e.id),
  math_source: document.querySelectorAll('.math, span.math, div.math').length,
  math_typeset: document.querySelectorAll('mjx-container').length,
  title: document.title,
})"""


def site_problems(base_url: str, pages: list[str], *, expect_math: bool = True) -> list[str]:
    """Load each page (a path without .html) in headless Chromium; return what a reader would find broken."""
    sync_playwright, executable = _need_browser()
    problems: list[str] = []
    ids_by_page: dict[str, set[str] | None] = {}
    links_to_check: list[tuple[str, str]] = []
    math_pages = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        current = {"url": ""}
        page.on("console", lambda m: m.type == "error" and problems.append(f"{current['url']}: console error: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"{current['url']}: script error: {e}"))
        # Chromium fetches the favicon after "load" and cancels it (ERR_ABORTED) when the next page starts; a missing
        # favicon would still show as an HTTP error below.
        page.on("requestfailed", lambda r: not (r.url.endswith("favicon.svg") and "ERR_ABORTED" in (r.failure or ""))
                and problems.append(f"{current['url']}: request failed: {r.url} ({r.failure})"))
        page.on("response", lambda r: r.status >= 400 and problems.append(f"{current['url']}: HTTP {r.status} for {r.url}"))
        for name in pages:
            current["url"] = name
            response = page.goto(urljoin(base_url, f"{name}.html"), wait_until="load")
            if response is None or not response.ok:
                problems.append(f"{name}: page does not load (HTTP {response and response.status})")
                continue
            if expect_math and page.locator(".math").count():
                page.wait_for_function("document.querySelectorAll('mjx-container').length > 0", timeout=20_000)
            found = page.evaluate(_INSPECT)
            ids_by_page[urldefrag(page.url)[0]] = set(found["ids"])
            for image in found["images"]:
                if not image["ok"]:
                    problems.append(f"{name}: image does not load: {image['src']}")
                if not image["alt"] and "logo" not in image["src"]:
                    problems.append(f"{name}: image without alt text: {image['src']}")
            math_pages += found["math_typeset"] > 0
            links_to_check += [(name, link) for link in found["links"] if urlparse(link).netloc == urlparse(base_url).netloc]
        for name, link in sorted(set(links_to_check)):
            target, fragment = urldefrag(link)
            if target not in ids_by_page:  # a page outside the list (an index, a source file): fetch it once
                response = page.request.get(target)
                if not response.ok:
                    problems.append(f"{name}: broken link {link} (HTTP {response.status})")
                    continue
                ids_by_page[target] = None  # reachable; its anchors are not checked
            if fragment and ids_by_page[target] is not None and fragment not in ids_by_page[target]:
                problems.append(f"{name}: link to a missing anchor {link}")
        browser.close()
    if expect_math and not math_pages:
        problems.append("no page typeset any math: MathJax did not run offline")
    return sorted(set(problems))


@pytest.mark.slow
def test_every_page_loads_cleanly_in_chromium(served_site):
    problems = site_problems(served_site, _toc_pages())
    assert not problems, "\n".join(problems[:40])


def test_the_browser_check_finds_planted_faults(tmp_path):
    """A two-page site with one fault of each kind: the check must report every one, and nothing on the clean page."""
    head = '<html><head><link rel="icon" href="data:,"></head><body>'
    (tmp_path / "ok.html").write_text(head + '<h1 id="top">fine</h1><a href="bad.html#top">next</a></body></html>')
    (tmp_path / "pixel.png").write_bytes(bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"))
    (tmp_path / "bad.html").write_text(
        head + '<h1 id="top">faults</h1><img src="pixel.png"><img src="missing.png" alt="gone">'
        '<a href="nowhere.html">dead</a><a href="ok.html#absent">no anchor</a>'
        '<script>console.error("planted"); undefined_function();</script></body></html>')
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        problems = site_problems(f"http://127.0.0.1:{server.server_address[1]}/", ["ok", "bad"], expect_math=False)
    finally:
        server.shutdown()
        server.server_close()
    text = "\n".join(problems)
    for fault in ("image without alt text: http", "image does not load: http", "missing.png",
                  "broken link http", "nowhere.html", "link to a missing anchor http", "ok.html#absent",
                  "console error: planted", "script error: undefined_function is not defined"):
        assert fault in text, f"not reported: {fault}\n{text}"
    assert not [p for p in problems if p.startswith("ok:")], text


def _audit_pages() -> list[str]:
    """The Audits part of the staged smoke build: its page, the cards under it (added by the build), the explorer."""
    from rewardscope.runner.book import AUDITS_PAGE, build_dir

    toc = yaml.safe_load((build_dir(ROOT, "smoke") / "src" / "_toc.yml").read_text())
    chapters = next(p["chapters"] for p in toc["parts"] if any(c["file"] == AUDITS_PAGE for c in p["chapters"]))
    return [page for c in chapters for page in (c["file"], *(s["file"] for s in c.get("sections", [])))]


@pytest.mark.slow
def test_the_explorer_filters_tokens_offline(served_site):
    """The cards and the explorer load cleanly; typing a swept token into the token table's search box keeps only
    the rows that contain it; every request stays on the site (itables' offline mode: DataTables is in the page)."""
    import pandas as pd

    from rewardscope.runner.book import build_dir

    pages = _audit_pages()
    cards = [p for p in pages if p.endswith("/card")]
    assert cards and "audits/explorer" in pages, pages
    problems = site_problems(served_site, pages, expect_math=False)
    assert not problems, "\n".join(problems[:40])
    sweeps = pd.read_parquet(build_dir(ROOT, "smoke") / "src" / cards[0].removesuffix("/card") / "sweeps.parquet")
    token = next(t for t in sorted(sweeps["token"]) if t.isalpha() and len(t) >= 4)
    sync_playwright, executable = _need_browser()
    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("console", lambda m: m.type == "error" and errors.append(f"console error: {m.text}"))
        page.on("pageerror", lambda e: errors.append(f"script error: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(urljoin(served_site, "audits/explorer.html"), wait_until="load")
        page.wait_for_function("document.querySelectorAll('.dt-container').length >= 3", timeout=30_000)
        tooltips = page.locator("figure svg[role=img] title").all_text_contents()  # the MDS map's points
        table = page.locator(".dt-container").first
        total = table.locator(".dt-info").inner_text()
        table.locator(".dt-search input").fill(token)
        page.wait_for_function("t => document.querySelector('.dt-container .dt-info').innerText !== t", arg=total,
                               timeout=10_000)
        shown = [t.strip() for t in table.locator("tbody tr td:first-child").all_inner_texts()]
        info = table.locator(".dt-info").inner_text()
        table.locator(".dt-search input").fill("zzqx-no-such-token")
        page.wait_for_function("() => document.querySelector('.dt-container .dataTables_empty, .dt-container .dt-empty')"
                               " !== null", timeout=10_000)
        table.locator(".dt-search input").fill("")
        order = table.locator(".dt-scroll-head th").nth(1).locator(".dt-column-order")  # the first score column
        order.click()
        order.click()  # descending
        page.wait_for_function("() => document.querySelector('.dt-container th[aria-sort=descending]') !== null",
                               timeout=10_000)
        scores = [float(t) for t in table.locator(".dt-scroll-body tbody tr td:nth-child(2)").all_inner_texts()]
        browser.close()
    assert not errors, "\n".join(errors)
    assert len(tooltips) >= 3 and any("τ with" in t for t in tooltips), tooltips
    assert shown and all(token.lower() in t.lower() for t in shown), (token, shown)
    assert "filtered from" in info, info
    assert len(scores) > 1 and scores == sorted(scores, reverse=True), scores  # sorted as numbers
    offsite = [u for u in requests if not u.startswith((served_site, "data:", "blob:"))]
    assert not offsite, f"the explorer fetched from outside the site: {offsite[:5]}"
