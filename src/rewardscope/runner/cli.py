"""The ``rewardscope`` command: build the book, run one notebook, audit reward models, list and build the zoo."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from ..zoo import ModelSpecError
from .params import PROFILES, ParameterError, parse_cli_value


def _book(args) -> int:
    from .book import build_book, site_dir

    start = time.time()
    records, code, log = build_book(args.profile, only=args.only, force=args.force, jobs=args.jobs)
    failed = [r.notebook for r in records if r.status == "failed"]
    from ..artifacts import build_log
    from .book import builds_path, project_root

    print("notebooks:")
    for r in records:
        print(f"  {r.notebook:28s} {r.status:8s} {r.duration:7.1f} s" + (f"  {r.error}" if r.error else ""))
    builds = sorted(build_log(builds_path(project_root(), args.profile)), key=lambda b: -b["seconds"])
    if builds:
        print(f"built in this run ({len(builds)} cache entries, longest first):")
        for b in builds:
            print(f"  {b['builder'] + ' ' + b['key']:45s} {b['seconds']:7.1f} s  for {b['notebook'] or '?'}")
    if code != 0:
        print(log, file=sys.stderr)
        print(f"error: the site build failed (jupyter-book exit {code})", file=sys.stderr)
    if failed:
        print(f"error: notebooks failed: {', '.join(failed)} (their pages show the traceback)", file=sys.stderr)
    print(f"site: {site_dir(project_root(), args.profile) / 'index.html'} ({time.time() - start:.0f} s)")
    return 1 if failed or code else 0


def _run(args) -> int:
    from .book import effective_parameters, run_one

    params = {key: parse_cli_value(value) for key, value in args.param}
    if args.show_params:
        rows = effective_parameters(args.notebook, params, profile=args.profile)
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            note = f"  # {r['help']}" if r["help"] else ""
            print(f"{r['name']:{width}s} = {r['value']!r}  [{r['type']}; {r['from']}]{note}")
        return 0
    record = run_one(args.notebook, params, profile=args.profile, output=args.output)
    print(f"{record.notebook}: {record.status} in {record.duration:.1f} s" + (f"  {record.error}" if record.error else ""))
    return 0 if record.status == "ok" else 1


def _audit(args) -> int:
    from .book import run_audit

    params = {key: parse_cli_value(value) for key, value in args.param}
    records = run_audit(args.specs, params, profile=args.profile, output=args.output)
    for r in records:
        where = f"  -> {r.directory}/card.md" if r.status == "ok" else f"  {r.error}"
        print(f"{r.spec}: {r.status} in {r.duration:.1f} s{where}")
    comparison = Path(records[0].directory).parent / "comparison.md"
    if comparison.is_file():
        print(f"comparison of the cards: {comparison}")
    return 0 if all(r.status == "ok" for r in records) else 1


def _zoo_list(args) -> int:
    from ..zoo import zoo_table

    rows = zoo_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        built = "built" if r["built"] else "not built"
        print(f"{r['name']:24s} {r['kind']:13s} {built:10s} {r['source']}")
    return 0


def _zoo_build(args) -> int:
    from ..zoo import embedded_names, entry

    names = args.names or embedded_names()
    for name in names:
        entry(name)  # unknown names fail before anything is built
    for name in names:
        start = time.time()
        path = entry(name).build()
        print(f"{name:24s} {time.time() - start:7.1f} s  {path}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rewardscope", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    book = sub.add_parser("book", help="execute every notebook with a profile and build the site")
    book.add_argument("--profile", default="default", metavar="NAME|PATH",
                      help=f"a profile ({', '.join(PROFILES)}) or a YAML file in the same schema (default: default)")
    book.add_argument("--only", nargs="+", metavar="NOTEBOOK", help="execute only these notebooks")
    book.add_argument("--force", action="store_true", help="rerun notebooks whose cached output is current")
    book.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                      help="run N notebooks side by side, each with cpu_count/N threads (default 1)")
    book.set_defaults(func=_book)

    run = sub.add_parser("run", help="execute one notebook (no site build)")
    run.add_argument("notebook", help="a notebook name (00_model_zoo) or the path of a .ipynb file to run")
    run.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                     help="override a parameter; VALUE is read as YAML (3, 0.5, '[\"a\", \"b\"]', cuda)")
    run.add_argument("--profile", default="default", metavar="NAME|PATH",
                     help="the profile (a name or a YAML file) whose values are the base")
    run.add_argument("-o", "--output", help="output notebook (default _build/runs/NAME.ipynb)")
    run.add_argument("--show-params", action="store_true",
                     help="print the effective parameters (value, type, where it comes from, help) and exit")
    run.set_defaults(func=_run)

    audit = sub.add_parser("audit", help="audit reward models: one card (card.json, card.md) per RM")
    audit.add_argument("specs", nargs="+", metavar="SPEC",
                       help="reward models: a reward rule, embedded name, local directory or hub id")
    audit.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                       help="override a parameter of the audit notebook; VALUE is read as YAML")
    audit.add_argument("--profile", default="default", metavar="NAME|PATH",
                       help="the profile (a name or a YAML file) whose `audit:` section is the base")
    audit.add_argument("-o", "--output", metavar="DIR",
                       help="folder for the cards, one subfolder per RM (default _build/audits)")
    audit.set_defaults(func=_audit)

    zoo = sub.add_parser("zoo", help="the embedded models")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True)
    listing = zoo_sub.add_parser("list", help="list embedded models")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=_zoo_list)
    build = zoo_sub.add_parser("build", help="build (and cache) embedded models")
    build.add_argument("names", nargs="*", help="entries to build (default: all)")
    build.set_defaults(func=_zoo_build)
    return parser


def _check_cache() -> None:
    """The artifact cache must be a folder we can write, before any work starts."""
    from ..artifacts import cache_root

    root = cache_root()
    if root.exists() and not root.is_dir():
        raise ParameterError(f"the cache {str(root)!r} (REWARDSCOPE_CACHE) is a file, not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ParameterError(f"cannot create the cache folder {str(root)!r} (REWARDSCOPE_CACHE): "
                             f"{err.strerror or err}") from None


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        _check_cache()
        return args.func(args)
    except (ParameterError, ModelSpecError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (OSError, UnicodeError) as err:  # a file or folder we cannot use: one line, no traceback
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
