"""Shared test factories: the repository root, a model copy without a chat template, a mini book."""

from pathlib import Path

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
