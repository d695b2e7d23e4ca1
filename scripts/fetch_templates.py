#!/usr/bin/env python3
"""Fetch exactly the TemplateFlow files that bidsdeid's template registry needs.

Run it where there is network (container build, a cluster login node); runs then read
the files from ``$TEMPLATEFLOW_HOME`` with no network at all.

    TEMPLATEFLOW_HOME=/opt/templateflow python scripts/fetch_templates.py
    python scripts/fetch_templates.py --list            # only print the files
    python scripts/fetch_templates.py --mirror DIR      # copy from a local mirror instead

``--mirror DIR`` takes a local TemplateFlow tree (e.g. a DataLad clone of the
templateflow superdataset, or another machine's TEMPLATEFLOW_HOME) and copies the
needed files from it, with no network. ``--template-registry FILE`` adds a user registry.
Exit status 1 if any file could not be had.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bidsdeid.deface import registry, templates
from bidsdeid.deface.cli import fetch


def from_mirror(mirror: Path, families: list[registry.Family]) -> int:
    home = templates.templateflow_home()
    failed = 0
    for _tpl, _cohort, _ent, rel in templates.templateflow_files(families):
        src, dst = mirror / rel, home / rel
        if not templates._is_real(src):
            print(f"FAILED {rel}: not in the mirror {mirror}", file=sys.stderr)
            failed += 1
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.exists():
            dst.unlink()
        shutil.copyfile(src, dst)
        print(f"ok     {rel}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="print the files and exit")
    ap.add_argument("--mirror", type=Path, help="copy from a local TemplateFlow tree")
    ap.add_argument("--template-registry", metavar="FILE")
    args = ap.parse_args(argv)
    families = registry.load_registry(args.template_registry)
    if args.mirror:
        return from_mirror(args.mirror, families)
    return fetch(families, dry_run=args.list)


if __name__ == "__main__":
    sys.exit(main())
