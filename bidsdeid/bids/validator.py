"""Run ``bids-validator-deno`` (PyPI) on a dataset, offline, and read its JSON report.

The PyPI package bundles the validator and its schema; nothing is fetched. Deno's cache
goes to the work dir (``DENO_DIR``) so a read-only home is fine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bidsdeid.errors import BidsdeidError


@dataclass
class Issue:
    code: str
    severity: str
    location: str
    sub_code: str = ""

    def line(self) -> str:
        sub = f" ({self.sub_code})" if self.sub_code else ""
        return f"{self.code}{sub}: {self.location or 'dataset'}"


@dataclass
class Report:
    returncode: int
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    schema_version: str = ""

    def to_json(self) -> dict[str, Any]:
        def conv(issues: list[Issue]) -> list[dict[str, str]]:
            return [{"code": i.code, "sub_code": i.sub_code, "location": i.location}
                    for i in issues]

        return {"returncode": self.returncode, "schema_version": self.schema_version,
                "n_errors": len(self.errors), "n_warnings": len(self.warnings),
                "errors": conv(self.errors), "warnings": conv(self.warnings)}


def executable() -> str:
    local = Path(sys.executable).parent / "bids-validator-deno"
    if local.is_file():
        return str(local)
    found = shutil.which("bids-validator-deno")
    if not found:
        raise BidsdeidError("bids-validator-deno is not installed (pip install "
                            "bids-validator-deno), or use --skip-bids-validation")
    return found


def validate(dataset: Path, work_dir: Path, timeout: float = 1800) -> Report:
    """Validate ``dataset``; raises :class:`BidsdeidError` if the validator cannot run."""
    env = {**os.environ, "DENO_DIR": str(work_dir / "deno"), "DENO_NO_UPDATE_CHECK": "1",
           "NO_COLOR": "1"}
    (work_dir / "deno").mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run([executable(), str(dataset), "--format", "json"],
                              capture_output=True, timeout=timeout, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BidsdeidError(f"bids-validator-deno could not run ({type(exc).__name__})") from exc
    try:
        data = json.loads(proc.stdout.decode("utf-8", "replace"))
        issues = data["issues"]["issues"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BidsdeidError(f"bids-validator-deno gave no readable report (exit code "
                            f"{proc.returncode})") from exc
    report = Report(proc.returncode,
                    schema_version=str(data.get("summary", {}).get("schemaVersion", "")))
    for raw in issues:
        issue = Issue(str(raw.get("code", "")), str(raw.get("severity", "")),
                      str(raw.get("location", "")), str(raw.get("subCode", "") or ""))
        (report.errors if issue.severity == "error" else report.warnings).append(issue)
    return report
