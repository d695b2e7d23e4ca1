"""Allow ``python -m bidsdeid``."""

from bidsdeid.cli.run import entry

if __name__ == "__main__":  # pragma: no cover
    entry()
