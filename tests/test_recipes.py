"""The container recipes run the very scripts CI runs.

There is no Docker engine or Apptainer here, so the recipes are parsed and pinned to the
install and template scripts (which tests/test_ops_install.py runs for real in a
throwaway venv, in the order the recipes run them), and the two recipes are checked to
build the same thing: same steps, same environment, same places.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field

import pytest
from conftest import REPO


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def docker_stages(text: str) -> list[Stage]:
    """The stages of a Dockerfile: instructions with continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    stages: list[Stage] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arg = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", arg.strip(), re.IGNORECASE)
            assert m, line
            stages.append(Stage(m.group(1), m.group(2)))
        elif stages:
            stages[-1].instructions.append((keyword, arg.strip()))
    return stages


def docker_env(stage: Stage) -> dict[str, str]:
    env = {}
    for arg in stage.all("ENV"):
        for word in shlex.split(arg):
            key, _, value = word.partition("=")
            env[key] = value
    return env


def commands(script: str) -> list[str]:
    """Shell commands of a RUN or %post: split on &&, newlines and ';'."""
    out = []
    for part in re.split(r"&&|\n|;", re.sub(r"\\\n", " ", script)):
        part = " ".join(part.split())
        if part and not part.startswith("#"):
            out.append(part)
    return out


def def_sections(text: str) -> dict[str, str]:
    """The %sections of an Apptainer definition file."""
    parts = re.split(r"^%(\w+)[^\n]*\n", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    parsed = docker_stages((REPO / "Dockerfile").read_text())
    assert [s.name for s in parsed] == ["install", "templates", "final"]
    return {s.name: s for s in parsed if s.name}


@pytest.fixture(scope="module")
def sections() -> dict[str, str]:
    return def_sections((REPO / "singularity.def").read_text())


BUILD_STEPS = ("bash scripts/install.sh --system", "python scripts/fetch_templates.py",
               "bidsdeid-templates precompute", "find /opt/templateflow -type f -empty -delete")


def _build_steps(cmds: list[str]) -> list[str]:
    return [c for c in cmds if c in BUILD_STEPS]


def test_dockerfile_installs_with_the_install_script_then_fetches_templates(
        stages: dict[str, Stage]) -> None:
    install_runs = [c for run in stages["install"].all("RUN") for c in commands(run)]
    assert install_runs[0] == "bash scripts/install.sh --system"
    assert stages["templates"].base == "install" and stages["final"].base == "install"
    template_runs = [c for run in stages["templates"].all("RUN") for c in commands(run)]
    assert _build_steps(template_runs) == list(BUILD_STEPS[1:])  # fetch, precompute, tidy
    # everything pip installs goes through the script: the image is what CI tests
    text = (REPO / "Dockerfile").read_text()
    assert "pip install" not in text and "pip3 install" not in text
    for script in ("install.sh", "fetch_templates.py", "version.py"):
        assert (REPO / "scripts" / script).stat().st_mode & 0o111


def test_final_image_reads_the_baked_templates_and_runs_for_any_uid(
        stages: dict[str, Stage]) -> None:
    tpl_env, final_env = docker_env(stages["templates"]), docker_env(stages["final"])
    for key in ("TEMPLATEFLOW_HOME", "BIDSDEID_CACHE"):
        assert final_env[key] == tpl_env[key]
        assert f"--from=templates {tpl_env[key]} {tpl_env[key]}" in stages["final"].all("COPY")
    # the tool sets thread counts from --nprocs/--omp-nthreads; an image-wide value would
    # silently override them
    assert not {"OMP_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"} & set(final_env)
    assert final_env["NIPYPE_NO_ET"] == "1" and final_env["MPLBACKEND"] == "Agg"
    final_runs = " && ".join(stages["final"].all("RUN"))
    assert "chmod -R go=u /home/bidsdeid" in final_runs and final_env["HOME"] == "/home/bidsdeid"
    assert "a+rX,a-w /opt/templateflow /opt/bidsdeid-cache" in final_runs
    assert stages["final"].all("ENTRYPOINT") == ['["/usr/local/bin/bidsdeid"]']
    labels = " ".join(stages["final"].all("LABEL"))
    assert 'org.opencontainers.image.version="${BIDSDEID_VERSION}"' in labels
    assert "ARG BIDSDEID_VERSION=unknown" in (REPO / "Dockerfile").read_text()
    # the build fails if the version label is not the installed package's version
    assert '[ "$BIDSDEID_VERSION" = "$installed" ]' in final_runs


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", "**/__pycache__", "*.egg-info"):
        assert entry in ignored


def test_singularity_def_builds_the_same_thing(stages: dict[str, Stage],
                                               sections: dict[str, str]) -> None:
    docker_steps = _build_steps([c for name in ("install", "templates")
                                 for run in stages[name].all("RUN") for c in commands(run)])
    assert _build_steps(commands(sections["post"])) == docker_steps == list(BUILD_STEPS)
    env = dict(re.findall(r"^\s*export (\w+)=(\S+)", sections["environment"], re.MULTILINE))
    docker = docker_env(stages["final"])
    docker.pop("HOME")  # Apptainer gives the user's (or, with --containall, an empty) HOME
    assert env == docker
    post = sections["post"]
    assert "export TEMPLATEFLOW_HOME=/opt/templateflow BIDSDEID_CACHE=/opt/bidsdeid-cache" in post
    assert "chmod -R a+rX,a-w /opt/templateflow /opt/bidsdeid-cache" in post
    assert 'org.opencontainers.image.version $(bidsdeid --version' in post
    assert '"${APPTAINER_LABELS:-$SINGULARITY_LABELS}"' in post


def test_singularity_def_copies_what_the_install_needs(sections: dict[str, str]) -> None:
    """%files, unlike Docker, ignores .dockerignore: it names what to copy, so a .venv
    or .git in the clone never lands in the image."""
    copied = {line.split()[0] for line in sections["files"].splitlines() if line.strip()}
    assert {"pyproject.toml", "README.md", "bidsdeid", "templates", "scripts"} <= copied
    assert not copied & {".", ".venv", ".git"}
    assert (REPO / "bidsdeid" / "registry").resolve() == (REPO / "templates").resolve()
    assert sections["runscript"].split() == ["exec", "/usr/local/bin/bidsdeid", '"$@"']
    assert "--cleanenv" in sections["help"] and ":ro" in sections["help"]
    assert "bidsdeid --version" in sections["test"]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    blocks = re.findall(r"```\n(.*?)```", readme, re.DOTALL)
    command_lines = [b.strip() for b in blocks if b.strip().startswith("bash scripts/")]
    assert "bash scripts/test.sh" in command_lines and "bash scripts/demo.sh" in command_lines
    assert any(shlex.split(line) == ["bash", "scripts/test.sh"] for line in ci.splitlines())


def test_install_script_is_what_the_readme_and_recipes_use() -> None:
    for script in ("install.sh", "demo.sh", "test.sh"):
        assert (REPO / "scripts" / script).stat().st_mode & 0o111
    demo = (REPO / "scripts" / "demo.sh").read_text()
    test = (REPO / "scripts" / "test.sh").read_text()
    assert "scripts/install.sh" in demo and "scripts/install.sh\" --dev" in test
    docs = (REPO / "docs" / "containers_and_clusters.md").read_text()
    assert "bash scripts/install.sh" in docs


def test_version_script_reads_the_package_version() -> None:
    from bidsdeid import __version__

    out = subprocess.run(["python3", str(REPO / "scripts" / "version.py")],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == __version__


def _doc_commands(text: str, start: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", text)
    return [ln.strip() for ln in joined.splitlines() if ln.strip().startswith(start)]


def test_documented_runs_are_read_only_offline_and_clean() -> None:
    """Every documented way to run the container keeps the input read-only, and Docker
    runs have no network and Apptainer runs a clean environment."""
    checked = 0
    for path in ("docs/containers_and_clusters.md", "Dockerfile", "singularity.def"):
        text = (REPO / path).read_text().replace("#   ", "")
        runs = [c for c in _doc_commands(text, "docker run") + _doc_commands(text, "apptainer run")
                if " participant" in c or " group" in c]
        for cmd in runs:
            assert ":ro" in cmd, (path, cmd)
            assert ("--network none" if cmd.startswith("docker") else "--cleanenv") in cmd, (
                path, cmd)
        checked += len(runs)
    assert checked >= 8


@pytest.mark.parametrize("script", ["scripts/bidsdeid.sbatch", "scripts/bidsdeid-slurm.sh",
                                    "scripts/slurm-local-cluster.sh", "scripts/install.sh",
                                    "scripts/test.sh", "scripts/demo.sh",
                                    ".circleci/fetch_data.sh", ".circleci/make_dataset.sh"])
def test_shell_scripts_parse_and_pass_shellcheck(script: str) -> None:
    path = REPO / script
    subprocess.run(["bash", "-n", str(path)], check=True)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (bash scripts/install.sh --dev installs it)")
    proc = subprocess.run(["shellcheck", "-S", "warning", str(path)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout
