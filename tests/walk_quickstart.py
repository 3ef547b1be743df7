"""Walk the README's quick start in a fresh clone, as a newcomer would: install, reconcile,
then the "For downstreams" commands (taken from the README itself) and a verification by
rebuilding a branch. Exits 0 when every step did what the README says, 1 otherwise.

    python3 -m tests.walk_quickstart            # needs XSABOT_XEN_REPO (a Xen clone)

The install is the README's `pip install -e .` in a virtualenv that sees this machine's
packages (`--no-deps`: the dependencies are installed already; pip may fetch setuptools to build). Without
XSABOT_XEN_REPO the walk would fetch Xen from the network; it says so and exits 0 without
walking, like the tests on real history.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    print("$", shlex.join(argv), flush=True)
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and argv[0] != "xsabot"):
        sys.exit(f"walk: `{shlex.join(argv)}` exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return proc.stdout


def _readme_block(heading: str) -> list[str]:
    """The command lines of the first code block under `heading`, comments dropped."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"\n## {heading}\n", 1)[1]
    block = section.split("```\n", 2)[1]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def main() -> int:
    xen = os.environ.get("XSABOT_XEN_REPO")
    if not xen:
        print("walk: skipped: set XSABOT_XEN_REPO to a Xen clone (the walk fetches no network)")
        return 0
    with tempfile.TemporaryDirectory(prefix="xsabot-walk-") as tmp:
        work = Path(tmp)
        clone = work / "xsabot"
        _run(["git", "clone", "-q", str(ROOT), str(clone)], cwd=work)
        venv.create(work / "venv", system_site_packages=True, with_pip=True)
        bin_dir = work / "venv" / "bin"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "XSABOT_"))}
        env |= {"PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}"}
        env |= {"XSABOT_UPSTREAM_XEN": xen}  # the README: a Xen clone instead of the network
        env.pop("PYTHONPATH", None)
        # The README's set-up, with --no-deps (installed already) and no network.
        [setup] = _readme_block("Set-up on a fresh machine")
        install, _, reconcile = setup.partition(" && ")
        assert install == "python3 -m pip install -e .", install
        pip = [str(bin_dir / "python3"), "-m", "pip", "install", "-q", "--no-deps"]
        _run([*pip, "-e", "."], cwd=clone, env=env)
        assert reconcile == "xsabot reconcile", reconcile
        _run(["xsabot", "--version"], cwd=clone, env=env)
        _run([*shlex.split(reconcile), "-q"], cwd=clone, env=env)
        mirror = clone / ".xsabot" / "mirrors" / "xen.git"
        if not mirror.is_dir():
            sys.exit("walk: the first reconcile made no mirror in .xsabot/mirrors/xen.git")

        downstream = work / "downstream"
        _run(["git", "init", "-q", str(downstream)], cwd=work)
        outputs = []
        for line in _readme_block("For downstreams"):
            argv = shlex.split(line.replace("<mirror URL>", shlex.quote(str(mirror))))
            if argv[:3] == ["git", "remote", "add"] and argv[-1] != str(mirror):
                sys.exit(f"walk: the README's `{line}` names no <mirror URL>")
            outputs.append(_run(argv, cwd=downstream, env=env))
        if '"records"' not in outputs[-1] or "xsa/4.19" not in outputs[-1]:
            sys.exit("walk: `git log --notes=xsabot` shows no build record of xsa/4.19")

        # "To verify a branch yourself": the build's last line is the tip, or the tip's
        # second parent when the tip is a pseudo-merge.
        built = _run(
            ["xsabot", "build", "manifests/4.19.yaml", "--upstream", xen], cwd=clone, env=env
        )
        tip = built.strip().splitlines()[-1]
        # The tip, then its parents: a pseudo-merge's second parent is the build.
        revs = _run(["git", "rev-parse", "xsa/4.19", "xsa/4.19^@"], cwd=downstream, env=env)
        published = revs.split()
        if not re.fullmatch(r"[0-9a-f]{40}", tip) or tip not in (published[0], *published[2:3]):
            sys.exit(f"walk: `xsabot build` made {tip}, the published xsa/4.19 is {published[0]}")
    print("walk: the README's quick start works in a fresh clone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
