"""A Sphinx extension that drops repeated inline ``<script>`` blocks from every page.

sphinx-thebe 0.3.1 adds its inline config script (``const THEBE_JS_URL = ...``) on each
``env-before-read-docs`` event through ``app.add_js_file``, which files it both in the registry and, with
filename ``None`` rather than ``""``, in the builder's list; Sphinx's own check then sees two different
scripts, and every page declared the same ``const`` twice: a script error in every browser.
"""


def _key(filename, attributes):  # None and "" both mean an inline script
    return filename or "", tuple(sorted((k, str(v)) for k, v in attributes.items()))


def _dedupe(items, key):
    seen, kept = set(), []
    for item in items:
        if key(item) not in seen:
            seen.add(key(item))
            kept.append(item)
    items[:] = kept  # in place: Sphinx and other extensions hold these lists


def _unique_scripts(app, pagename, templatename, context, doctree):
    _dedupe(context["script_files"], lambda js: _key(js.filename, js.attributes))


def setup(app):
    # First among the page's handlers (a later one may end the event); in place, since install_mathjax
    # and others add their scripts to this same list afterwards.
    app.connect("html-page-context", _unique_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
