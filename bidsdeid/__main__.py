"""Allow ``python -m bidsdeid``."""

from bidsdeid.cli.run import main

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
