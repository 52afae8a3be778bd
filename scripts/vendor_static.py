"""Copy pinned front-end libraries from the npm registry into tagbase/web/static/vendor/.

The result is committed, so a fresh clone runs without Node. Run this only to change a
version: edit PACKAGES, run ``python scripts/vendor_static.py``, review the diff, commit.

Each package is fetched with ``npm pack <name>@<version>`` into a temporary folder (no
node_modules, no install scripts run), then only the listed files and the licence are copied to
``static/vendor/<lib>/``, with a VERSION file naming the package, version and tarball SHA-512
integrity that npm reported.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "tagbase" / "web" / "static" / "vendor"


@dataclass(frozen=True)
class Package:
    lib: str  # folder under static/vendor/
    name: str  # npm package name
    version: str  # exact version, never a range
    files: tuple[str, ...]  # paths inside the package to copy (flattened into the folder)
    licence: str = "LICENSE"


PACKAGES = (
    Package("htmx", "htmx.org", "2.0.11", ("dist/htmx.min.js",)),
    Package("pico", "@picocss/pico", "2.1.1", ("css/pico.min.css",), licence="LICENSE.md"),
    Package("drawflow", "drawflow", "0.0.60", ("dist/drawflow.min.js", "dist/drawflow.min.css")),
)


def npm_pack(pkg: Package, workdir: Path) -> tuple[Path, str]:
    """Download the package tarball; return its path and npm's integrity string."""
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("npm is needed to vendor front-end packages (apt-get install npm)")
    out = subprocess.run(
        [npm, "pack", f"{pkg.name}@{pkg.version}", "--json", "--pack-destination", str(workdir)],
        check=True,
        capture_output=True,
        text=True,
        cwd=workdir,
    )
    info = json.loads(out.stdout)[0]
    if info["version"] != pkg.version:
        sys.exit(f"{pkg.name}: npm gave {info['version']}, expected {pkg.version}")
    return workdir / info["filename"], info.get("integrity", "")


def extract(tarball: Path, pkg: Package, target: Path) -> None:
    """Copy the wanted members of the tarball (all under ``package/``) into ``target``."""
    wanted = {f"package/{name}": Path(name).name for name in (*pkg.files, pkg.licence)}
    with tarfile.open(tarball) as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        for member_name, out_name in wanted.items():
            member = members.get(member_name)
            if member is None:
                sys.exit(f"{pkg.name}@{pkg.version}: {member_name} is not in the tarball")
            source = tar.extractfile(member)
            assert source is not None
            (target / out_name).write_bytes(source.read())


def vendor(pkg: Package) -> None:
    target = VENDOR / pkg.lib
    with tempfile.TemporaryDirectory() as tmp:
        tarball, integrity = npm_pack(pkg, Path(tmp))
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        extract(tarball, pkg, target)
    (target / "VERSION").write_text(
        f"{pkg.name}@{pkg.version}\nintegrity {integrity}\nvendored by scripts/vendor_static.py\n"
    )
    print(f"{pkg.name}@{pkg.version} -> {target.relative_to(ROOT)}")


def main() -> None:
    for pkg in PACKAGES:
        vendor(pkg)


if __name__ == "__main__":
    main()
