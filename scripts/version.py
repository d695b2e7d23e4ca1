#!/usr/bin/env python3
"""Print bidsdeid's version from the source tree, without installing or importing it
(``docker build --build-arg BIDSDEID_VERSION=$(python3 scripts/version.py)``)."""

import re
import sys
from pathlib import Path

INIT = Path(__file__).resolve().parents[1] / "bidsdeid" / "__init__.py"


def version() -> str:
    match = re.search(r'^__version__ = "([^"]+)"', INIT.read_text(encoding="utf-8"), re.MULTILINE)
    if not match:
        sys.exit(f"no __version__ in {INIT}")
    return match.group(1)


if __name__ == "__main__":
    print(version())
