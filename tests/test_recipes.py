"""The container recipes run the very scripts CI runs (no Docker engine here to build
them, so their install steps are checked by parsing and by running the scripts)."""

from __future__ import annotations

import re
import shlex

from conftest import REPO


def _docker_runs(text: str) -> list[str]:
    """RUN instructions of a Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    return [line.strip()[4:] for line in joined.splitlines() if line.strip().startswith("RUN ")]


def _singularity_post(text: str) -> str:
    m = re.search(r"^%post\n(.*?)(?=^%\w+|\Z)", text, re.S | re.M)
    assert m, "singularity.def has no %post section"
    return m.group(1)


def test_dockerfile_installs_with_the_install_script_and_fetches_templates() -> None:
    text = (REPO / "Dockerfile").read_text()
    runs = " && ".join(_docker_runs(text))
    assert "bash scripts/install.sh --system" in runs
    assert "python scripts/fetch_templates.py" in runs
    assert "bidsdeid-templates precompute" in runs
    assert re.search(r'^ENTRYPOINT \["/usr/local/bin/bidsdeid"\]', text, re.M)
    assert "TEMPLATEFLOW_HOME=/opt/templateflow" in text
    assert "BIDSDEID_CACHE=/opt/bidsdeid-cache" in text
    assert "org.opencontainers.image.version" in text
    assert "chmod -R go=u /home/bidsdeid" in text  # any UID can use HOME
    assert text.count("FROM ") >= 3  # multi-stage: install, templates, final


def test_singularity_def_runs_the_same_steps() -> None:
    text = (REPO / "singularity.def").read_text()
    post = _singularity_post(text)
    assert "bash scripts/install.sh --system" in post
    assert "python scripts/fetch_templates.py" in post
    assert "bidsdeid-templates precompute" in post
    for section in ("%runscript", "%help", "%environment", "%files"):
        assert section in text
    assert "exec /usr/local/bin/bidsdeid" in text


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    blocks = re.findall(r"```\n(.*?)```", readme, re.S)
    commands = [b.strip() for b in blocks if b.strip().startswith("bash scripts/")]
    assert "bash scripts/test.sh" in commands and "bash scripts/demo.sh" in commands
    assert any(shlex.split(line) == ["bash", "scripts/test.sh"] for line in ci.splitlines())


def test_install_script_is_what_the_readme_and_recipes_use() -> None:
    for script in ("install.sh", "demo.sh", "test.sh"):
        assert (REPO / "scripts" / script).stat().st_mode & 0o111
    demo = (REPO / "scripts" / "demo.sh").read_text()
    test = (REPO / "scripts" / "test.sh").read_text()
    assert "scripts/install.sh" in demo and "scripts/install.sh\" --dev" in test
