"""``bidsdeid-templates {list,fetch,precompute}``: the template registry on this machine.

* ``list``: every registered template, its ages and contrasts, and whether its files are
  here (TemplateFlow files under ``$TEMPLATEFLOW_HOME``);
* ``fetch``: download the TemplateFlow files the registry needs (network; run at
  container build time or on a login node) -- the same as ``scripts/fetch_templates.py``;
* ``precompute``: derive and cache the face masks of every template that is here
  (``$BIDSDEID_CACHE``), so runs never derive one (the container build calls it).
"""

from __future__ import annotations

import argparse
import sys

from bidsdeid.deface import registry, templates


def _list(families: list[registry.Family]) -> int:
    for fam in families:
        for cohort, (lo, hi) in fam.cohorts.items():
            status = []
            for contrast in fam.contrasts:
                try:
                    templates.resolve_file(fam, cohort, contrast)
                    status.append(f"{contrast}:here")
                except templates.TemplateMissingError:
                    status.append(f"{contrast}:missing")
            ages = "any age" if fam.role == "adult" else \
                f"{lo:g}-{'' if hi is None else f'{hi:g}'} months"
            tid = fam.id + (f":cohort-{cohort}" if cohort else "")
            print(f"{tid:28s} {fam.role:6s} {ages:18s} {' '.join(status)}")
    return 0


def fetch(families: list[registry.Family], *, dry_run: bool = False) -> int:
    """Fetch every TemplateFlow file of the registry with templateflow (network)."""
    needed = templates.templateflow_files(families)
    if dry_run:
        for _tpl, _cohort, _ent, rel in needed:
            print(rel)
        return 0
    home = templates.templateflow_home()
    import os

    os.environ.setdefault("TEMPLATEFLOW_HOME", str(home))
    from templateflow import api

    failed = 0
    for tpl, cohort, ent, rel in needed:
        query = {k: v for k, v in ent.items() if k not in ("suffix", "res")}
        for key in ("desc", "label", "atlas"):
            query.setdefault(key, None)
        if "res" in ent:
            query["resolution"] = ent["res"]
        try:
            got = api.get(tpl, cohort=cohort, suffix=ent["suffix"], extension=".nii.gz",
                          **query)
        except Exception as exc:  # noqa: BLE001 - report every file, then fail
            print(f"FAILED {rel}: {exc}", file=sys.stderr)
            failed += 1
            continue
        paths = got if isinstance(got, list) else [got]
        ok = any(str(p).endswith(rel.split("/")[-1]) and templates._is_real(p)
                 for p in paths)
        print(("ok     " if ok else "FAILED ") + rel)
        failed += not ok
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bidsdeid-templates", description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("list", "fetch", "precompute"))
    ap.add_argument("--template-registry", metavar="FILE", help="an extra registry file")
    ap.add_argument("--dry-run", action="store_true", help="fetch: only list the files")
    ap.add_argument("--sloppy", action="store_true", help="precompute: fast presets (tests)")
    args = ap.parse_args(argv)
    families = registry.load_registry(args.template_registry)
    if args.command == "list":
        return _list(families)
    if args.command == "fetch":
        return fetch(families, dry_run=args.dry_run)
    from bidsdeid.deface import library

    failed = 0
    for tid, how in library.precompute(families, sloppy=args.sloppy):
        print(f"{tid:28s} {how}")
        failed += how.startswith("missing")
    print(f"template cache: {library.configured_cache_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
