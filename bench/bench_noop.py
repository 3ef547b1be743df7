"""A no-op `xsabot reconcile` of the shipped manifests, timed as whole processes.

Run by hand:  python3 bench/bench_noop.py [--repo PATH_TO_XEN] [--runs N]

First publishes the shipped manifests into a scratch mirror (bench/out/noop), then times
`xsabot reconcile` processes that find nothing to do, against the naive baseline on the same
inputs: a pass that rebuilds every branch from a cold state dir (`reconcile --dry-run`
against an empty mirror).
The Xen clone is only read (through alternates); nothing is written into it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The Xen clone: --repo, or the XSABOT_XEN_REPO environment variable.
DEFAULT_REPO = os.environ.get("XSABOT_XEN_REPO")


def xsabot(*args: str) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bot", *args, "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"xsabot {' '.join(args)} failed:\n{proc.stderr}")
    return elapsed, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--repo",
        default=DEFAULT_REPO,
        required=DEFAULT_REPO is None,
        help="a Xen clone, only read (default: $XSABOT_XEN_REPO)",
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    out = ROOT / "bench" / "out" / "noop"
    shutil.rmtree(out, ignore_errors=True)
    common = ["--manifests", str(ROOT / "manifests"), "--upstream", f"xen={args.repo}"]
    state, mirror = out / "state", out / "mirror.git"
    first, data = xsabot("reconcile", *common, "--state", str(state), "--mirror", f"xen={mirror}")
    print(
        f"first pass (fetch + build + publish): {first:.2f} s, "
        f"{len(data['branches'])} manifests, "
        f"{sum(len(b['applied']) for b in data['branches'])} XSAs applied"
    )

    noop = []
    for _ in range(args.runs):
        elapsed, data = xsabot(
            "reconcile", *common, "--state", str(state), "--mirror", f"xen={mirror}"
        )
        assert all(b["action"] == "none" and not b["rebuilt"] for b in data["branches"]), data
        noop.append(elapsed)
    rebuild = []
    for i in range(max(1, args.runs // 2)):
        # Cold, as a first pass is: a fresh state dir (no objects from earlier builds).
        elapsed, data = xsabot(
            "reconcile",
            "--dry-run",
            *common,
            "--state",
            str(out / f"cold-{i}"),
            "--mirror",
            f"xen={out / f'empty-{i}.git'}",
        )
        assert all(b["rebuilt"] for b in data["branches"]), data
        rebuild.append(elapsed)
    n, r = statistics.median(noop), statistics.median(rebuild)
    print(
        f"no-op reconcile, whole process: median {n:.3f} s over {len(noop)} runs "
        f"(min {min(noop):.3f}, max {max(noop):.3f}); target < 0.5 s"
    )
    print(f"baseline, rebuild every branch: median {r:.3f} s; ratio {r / n:.1f}x")


if __name__ == "__main__":
    main()
