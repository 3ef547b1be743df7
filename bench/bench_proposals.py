"""The proposal step for many blocked XSAs in one manifest, on a synthetic repository.

Run by hand:  python3 bench/bench_proposals.py [--xsas 400] [--kind not-found|found]

Makes an upstream where every XSA's fix conflicts on the base, each in a file of its own:
with `not-found` the base has its own version of the line the fix changes, and no commit on
the source makes the fix apply, so the bot proposes a draft marking each XSA blocked; with
`found` each fix needs one non-XSA prerequisite, and the bot proposes adding it.

It publishes the branch (a pass, which also makes the prerequisite searches), then times the
proposal step of `reconcile` (`converge`: the proposals' texts from the pass's searches, and
the local forge opening every merge request), and the proposals' texts of the same inputs
twice: as they are made (one parse of the manifest, each edit on its own entry) and naively
(the manifest parsed and dumped whole for every proposal, as before). Needs only git;
writes under bench/out.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app.pass_ import run_pass  # noqa: E402
from bot.app.proposals import converge, derive_proposals  # noqa: E402
from bot.config import Config, Tree  # noqa: E402
from bot.core.proposals import desired_proposals  # noqa: E402
from bot.manifest import edit  # noqa: E402

LINES = 12


def _blob(text: str) -> bytes:
    data = text.encode()
    return b"data %d\n" % len(data) + data + b"\n"


def make_upstream(path: Path, xsas: int, *, found: bool) -> list[str]:
    """An upstream with `xsas` conflicting fixes on `stable-1`; returns their commit IDs."""
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    out = bytearray()
    when = 1_700_000_000

    def commit(
        ref: str, mark: int, message: str, files: dict[str, str], parent: int | None
    ) -> None:
        nonlocal when
        when += 60
        out.extend(f"commit {ref}\nmark :{mark}\n".encode())
        out.extend(f"committer Dev <dev@example.org> {when} +0000\n".encode())
        out.extend(_blob(message))
        if parent is not None:
            out.extend(f"from :{parent}\n".encode())
        for name, text in files.items():
            out.extend(f"M 100644 inline {name}\n".encode() + _blob(text))

    def lines(i: int, **changed: str) -> str:
        return "".join(changed.get(f"l{n}", f"file {i} line {n}") + "\n" for n in range(LINES))

    commit(
        "refs/heads/stable-1",
        1,
        "Initial import\n",
        {f"src/f{i:04d}.c": lines(i) for i in range(xsas)},
        None,
    )
    mark, parent = 2, 1
    if found:
        out.extend(b"reset refs/tags/RELEASE-1.0\nfrom :1\n")
    else:  # the release has its own version of every line the fixes change
        release = {f"src/f{i:04d}.c": lines(i, l6=f"release {i}") for i in range(xsas)}
        commit("refs/heads/release-1", 2, "Release 1.0\n", release, 1)
        out.extend(b"reset refs/tags/RELEASE-1.0\nfrom :2\n")
        mark = 3
    for i in range(xsas):
        prereq = {"l5": "begin", "l6": f"body {i}", "l7": "end"}
        if found:
            commit(
                "refs/heads/stable-1",
                mark,
                f"f{i}: restructure\n",
                {f"src/f{i:04d}.c": lines(i, **prereq)},
                parent,
            )
            mark, parent = mark + 1, mark
        fixed = dict(prereq, l6=f"body {i} bounded")
        message = f"f{i}: fix the bound\n\nThis is XSA-{i + 1}.\n"
        commit("refs/heads/stable-1", mark, message, {f"src/f{i:04d}.c": lines(i, **fixed)}, parent)
        mark, parent = mark + 1, mark
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=bytes(out), check=True)
    log = subprocess.run(
        ["git", "log", "--reverse", "--format=%H %s", "stable-1"],
        cwd=path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [line.split()[0] for line in log if "fix the bound" in line]


def manifest_text(fixes: list[str]) -> str:
    head = "tree: xen\nbase: RELEASE-1.0\nsource: stable-1\nbranch: xsa/1\nxsas:\n"
    entries = "".join(
        f"  - xsa: {n}\n    commits:\n      - {sha}  # f{n - 1}: fix the bound\n"
        for n, sha in enumerate(fixes, 1)
    )
    return head + entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--xsas", type=int, default=400)
    parser.add_argument("--kind", choices=("not-found", "found"), default="not-found")
    args = parser.parse_args()
    out = ROOT / "bench" / "out" / "proposals"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    fixes = make_upstream(out / "upstream.git", args.xsas, found=args.kind == "found")
    repo = out / "manifests-repo"
    (repo / "manifests").mkdir(parents=True)
    (repo / "manifests" / "1.yaml").write_text(manifest_text(fixes))
    git = ["git", "-C", str(repo), "-c", "user.name=V", "-c", "user.email=v@example.org"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "Manifests"], check=True)
    config = Config(
        state=out / "state",
        manifests=repo / "manifests",
        trees={"xen": Tree(upstream=str(out / "upstream.git"), mirror=str(out / "mirror.git"))},
    )
    start = time.perf_counter()
    outcome = run_pass(config, publish=True)
    elapsed = time.perf_counter() - start
    print(f"pass (build, prerequisite searches, publish; {args.xsas} XSAs): {elapsed:.2f} s")

    start = time.perf_counter()
    done = converge(config, outcome)
    step = time.perf_counter() - start
    opened = sum(a.action == "open" and a.error is None for a in done.actions)

    start = time.perf_counter()
    [d] = derive_proposals(config, outcome).values()
    derive = time.perf_counter() - start
    edit._layout.cache_clear()
    start = time.perf_counter()
    batched = desired_proposals([d.file], {d.file.name: d.result}, d.found)
    texts = time.perf_counter() - start
    layout, edit._layout = edit._layout, lambda text: None  # type: ignore[assignment]
    try:  # every edit parses and dumps the whole manifest, as before
        start = time.perf_counter()
        naive = desired_proposals([d.file], {d.file.name: d.result}, d.found)
        texts_naive = time.perf_counter() - start
    finally:
        edit._layout = layout  # type: ignore[assignment]
    same = {b: p.content_hash() for b, (_, _, p) in naive.items()} == {
        b: p.content_hash() for b, (_, _, p) in batched.items()
    }
    # The searches run in the pass (every fresh build); the proposal step reuses them.
    forge = max(step - derive, 0.0)
    before = 2 * texts_naive + forge  # the texts were made twice per pass, naively
    print(
        f"proposal step ({args.kind}, {opened} merge requests opened): {step:.2f} s = "
        f"proposal texts {texts:.2f} s + local forge {forge:.2f} s (+ reusing the searches)"
    )
    print(
        f"proposal texts, naive (the manifest parsed and dumped per proposal): "
        f"{texts_naive:.2f} s; ratio {texts_naive / max(texts, 1e-9):.0f}x; "
        f"same proposals: {same}"
    )
    print(
        f"proposal step before (texts made twice, naively): {before:.2f} s; "
        f"ratio {before / step:.1f}x; target < 10 s for 400"
    )


if __name__ == "__main__":
    main()
