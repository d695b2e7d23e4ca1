"""The package ships every subpackage and the template registry."""

from __future__ import annotations

from importlib import resources

import tomllib
from conftest import REPO


def test_every_subpackage_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"])
    found = {"bidsdeid"}
    for init in (REPO / "bidsdeid").rglob("__init__.py"):
        found.add(".".join(init.parent.relative_to(REPO).parts))
    found.add("bidsdeid.registry")
    assert found == listed


def test_template_registry_ships_in_the_package() -> None:
    assert resources.files("bidsdeid.registry").joinpath("registry.json").is_file()
