"""``make security``'s dependency audit: pip-audit over every installed package.

- A known vulnerability fails (exit 1), naming the package, the version and the advisory.
- Packages pip-audit could not look up (no network, or an index without PyPI's per-version JSON)
  are listed. If it could look up none at all, nothing was checked: that is said plainly and the
  audit counts as SKIPPED (exit 0), the way PostgreSQL tests are skipped with their reason on a
  laptop without PostgreSQL — unless TAGBASE_REQUIRE_PIP_AUDIT=1, where it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def main() -> int:
    proc = subprocess.run(
        [str(BIN / "pip-audit"), "--skip-editable", "--progress-spinner", "off", "-f", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        print(proc.stderr.strip()[-2000:], file=sys.stderr)
        print("pip-audit: no report (see above); the audit did not run.", file=sys.stderr)
        return 1
    deps = report.get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    unchecked = [d for d in deps if d.get("skip_reason")]
    checked = len(deps) - len(unchecked)
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version"
            print(f"VULNERABLE {dep['name']} {dep.get('version')}: {vuln['id']} (fixed in {fixes})")
    if vulnerable:
        return 1
    if checked == 0:
        print(
            f"pip-audit SKIPPED: none of the {len(unchecked)} packages could be looked up "
            f"({unchecked[0]['skip_reason'] if unchecked else 'no packages'}); PyPI's advisory "
            "data is not reachable from here, so nothing was checked."
        )
        return 1 if os.environ.get("TAGBASE_REQUIRE_PIP_AUDIT") == "1" else 0
    print(f"pip-audit: {checked} packages checked, no known vulnerability", end="")
    print(f"; {len(unchecked)} could not be looked up." if unchecked else ".")
    return 0


if __name__ == "__main__":
    sys.exit(main())
