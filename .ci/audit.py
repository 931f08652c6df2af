"""`make audit`: pip-audit over the dependencies installed in .venv (what pyproject resolved to).

Known vulnerabilities fail (exit 1) with one line per package. When PyPI's vulnerability data
cannot be reached (machines that see only a package mirror: pip-audit then finds no package
"on PyPI"), nothing could be audited: that is a warning on stderr, exit 0, so CI offline
still passes, and it says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path


def warn(text: str) -> None:
    print(f"audit: WARNING: {text}", file=sys.stderr)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        try:
            run = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
                [
                    sys.executable,
                    "-m",
                    "pip_audit",
                    "--skip-editable",
                    "--progress-spinner",
                    "off",
                    "--format",
                    "json",
                    "--output",
                    str(report),
                    "--timeout",
                    "30",
                ],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        except subprocess.TimeoutExpired:
            warn("pip-audit timed out reaching PyPI's vulnerability data: nothing audited")
            return 0
        if not report.exists() or not report.read_text().strip():
            reason = (run.stderr.strip().splitlines() or ["no report"])[-1]
            warn(f"pip-audit could not reach PyPI's vulnerability data ({reason}): nothing audited")
            return 0
        dependencies = json.loads(report.read_text()).get("dependencies", [])
    audited = [d for d in dependencies if "vulns" in d]
    skipped = [d for d in dependencies if "skip_reason" in d]
    vulnerable = [d for d in audited if d["vulns"]]
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            print(f"{dependency['name']} {dependency['version']}: {vuln['id']} (fixed in {fixed})")
    if vulnerable:
        print(
            f"audit: {len(vulnerable)} of {len(audited)} packages have known vulnerabilities",
            file=sys.stderr,
        )
        return 1
    if not audited:
        warn(
            f"PyPI's vulnerability data was not reachable for any of the {len(skipped)} "
            "packages (this machine sees only a package mirror): nothing audited"
        )
        return 0
    if skipped:
        names = ", ".join(sorted(d["name"] for d in skipped))
        warn(f"{len(skipped)} packages could not be audited: {names}")
    print(f"audit: {len(audited)} packages, no known vulnerabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main())
