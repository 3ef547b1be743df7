"""TreeMerger: in-memory picks that give exactly what libgit2's merge_trees gives.

Every scenario is checked twice: against what a pick should do, and against `merge_trees`
itself (same tree ID, same cleanliness, same conflicting paths).
"""

from __future__ import annotations

import random
from pathlib import Path

import pygit2
import pytest

from bot.git.objects import ObjectStore
from bot.git.pick import Merge, TreeMerger
from tests.gitrepo import XenLike, make_xenlike, numbered

REG, EXE, LINK, SUBMODULE = 0o100644, 0o100755, 0o120000, 0o160000
FileSpec = str | bytes | tuple[int, str | bytes]
Files = dict[str, FileSpec]


@pytest.fixture
def repo(tmp_path: Path) -> pygit2.Repository:
    return pygit2.init_repository(str(tmp_path / "repo.git"), bare=True)


def make_tree(repo: pygit2.Repository, files: Files) -> str:
    """A tree with `files` ({path: content or (mode, content)}); a submodule's content is a SHA."""
    index = pygit2.Index()
    for path, spec in files.items():
        mode, content = spec if isinstance(spec, tuple) else (REG, spec)
        data = content.encode() if isinstance(content, str) else content
        oid = pygit2.Oid(hex=data.decode()) if mode == SUBMODULE else repo.create_blob(data)
        index.add(pygit2.IndexEntry(path, oid, pygit2.enums.FileMode(mode)))
    return str(index.write_tree(repo))


def edit(files: Files, **changes: FileSpec | None) -> Files:
    """`files` with some paths changed (keyword names use __ for / and _dot_ for .)."""
    out = dict(files)
    for key, value in changes.items():
        path = key.replace("__", "/").replace("_dot_", ".")
        if value is None:
            out.pop(path, None)
        else:
            out[path] = value
    return out


def reference(repo: pygit2.Repository, base: str, ours: str, theirs: str) -> Merge:
    index = repo.merge_trees(base, ours, theirs)
    if index.conflicts is not None:
        paths = sorted({e.path for entry in index.conflicts for e in entry if e is not None})
        return Merge(None, tuple(paths))
    return Merge(str(index.write_tree(repo)))


def check(
    repo: pygit2.Repository,
    base: str,
    ours: str,
    theirs: str,
    merger: TreeMerger | None = None,
) -> Merge:
    """TreeMerger's result, asserted equal to merge_trees' (objects flushed to compare)."""
    merger = merger or TreeMerger(ObjectStore(repo))
    got = merger.merge(base, ours, theirs)
    merger.store.flush()
    assert got == reference(repo, base, ours, theirs)
    return got


def blob_at(repo: pygit2.Repository, tree: str | None, path: str) -> bytes:
    assert tree is not None
    obj = repo[tree]
    assert isinstance(obj, pygit2.Tree)
    entry = obj[path]
    assert isinstance(entry, pygit2.Blob)
    return entry.data


def mode_at(repo: pygit2.Repository, tree: str | None, path: str) -> int:
    assert tree is not None
    obj = repo[tree]
    assert isinstance(obj, pygit2.Tree)
    return int(obj[path].filemode)


BASE: Files = {
    "README": "Xen\n",
    "xen/common/sched.c": numbered("sched", 40),
    "xen/common/grant.c": numbered("grant", 40),
    "xen/arch/x86/mm.c": numbered("mm", 40),
    "tools/misc/xenpm.c": numbered("xenpm", 10),
}


def three(repo: pygit2.Repository, ours: Files, theirs: Files) -> tuple[str, str, str]:
    return make_tree(repo, BASE), make_tree(repo, ours), make_tree(repo, theirs)


# -- picks that apply -------------------------------------------------------------------------


def test_clean_pick_takes_theirs_where_ours_is_the_base(repo: pygit2.Repository) -> None:
    ours = edit(BASE, tools__misc__xenpm_dot_c=numbered("xenpm", 10, l2="ours"))
    theirs = edit(BASE, xen__arch__x86__mm_dot_c=numbered("mm", 40, l3="fixed"))
    merger = TreeMerger(ObjectStore(repo))
    got = check(repo, *three(repo, ours, theirs), merger=merger)
    assert blob_at(repo, got.tree, "xen/arch/x86/mm.c") == numbered("mm", 40, l3="fixed").encode()
    assert (
        blob_at(repo, got.tree, "tools/misc/xenpm.c") == numbered("xenpm", 10, l2="ours").encode()
    )
    assert merger.stats.fallbacks == 0
    assert merger.stats.file_merges == 0


def test_content_merge_of_distant_lines_in_one_file(repo: pygit2.Repository) -> None:
    ours = edit(BASE, xen__common__sched_dot_c=numbered("sched", 40, l2="ours early"))
    theirs = edit(BASE, xen__common__sched_dot_c=numbered("sched", 40, l35="theirs late"))
    merger = TreeMerger(ObjectStore(repo))
    got = check(repo, *three(repo, ours, theirs), merger=merger)
    assert blob_at(repo, got.tree, "xen/common/sched.c") == (
        numbered("sched", 40, l2="ours early", l35="theirs late").encode()
    )
    assert (merger.stats.file_merges, merger.stats.fallbacks) == (1, 0)


def test_conflict_is_reported_with_its_path_and_no_tree(repo: pygit2.Repository) -> None:
    ours = edit(BASE, xen__common__grant_dot_c=numbered("grant", 40, l20="ours"))
    theirs = edit(
        BASE,
        xen__common__grant_dot_c=numbered("grant", 40, l20="theirs"),
        xen__arch__x86__mm_dot_c=numbered("mm", 40, l1="clean part"),
    )
    merger = TreeMerger(ObjectStore(repo))
    got = check(repo, *three(repo, ours, theirs), merger=merger)
    assert got.tree is None and not got.clean
    assert got.conflicts == ("xen/common/grant.c",)
    assert merger.stats.fallbacks == 0


def test_all_conflicting_paths_are_reported(repo: pygit2.Repository) -> None:
    ours = edit(
        BASE,
        xen__common__grant_dot_c=numbered("grant", 40, l20="ours"),
        xen__common__sched_dot_c=numbered("sched", 40, l5="ours"),
    )
    theirs = edit(
        BASE,
        xen__common__grant_dot_c=numbered("grant", 40, l20="theirs"),
        xen__common__sched_dot_c=numbered("sched", 40, l5="theirs"),
    )
    got = check(repo, *three(repo, ours, theirs))
    assert got.conflicts == ("xen/common/grant.c", "xen/common/sched.c")


def test_already_applied_change_keeps_ours(repo: pygit2.Repository) -> None:
    fixed = numbered("grant", 40, l20="grant line 20 fixed")
    ours = edit(BASE, xen__common__grant_dot_c=fixed, README="Xen 4.19\n")
    theirs = edit(BASE, xen__common__grant_dot_c=fixed)
    base, ours_tree, theirs_tree = three(repo, ours, theirs)
    got = check(repo, base, ours_tree, theirs_tree)
    assert got.tree == ours_tree


def test_add_delete_and_modify_in_one_pick(repo: pygit2.Repository) -> None:
    ours = edit(BASE, README="Xen 4.19\n")
    theirs = edit(
        BASE,
        xen__common__new_dot_c="int new;\n",
        tools__misc__xenpm_dot_c=None,
        xen__common__sched_dot_c=numbered("sched", 40, l1="changed"),
    )
    got = check(repo, *three(repo, ours, theirs))
    assert got.tree is not None
    tree = repo[got.tree]
    assert isinstance(tree, pygit2.Tree)
    assert "tools" not in tree  # its only file went, so the directory goes too
    assert blob_at(repo, got.tree, "xen/common/new.c") == b"int new;\n"


def test_deleting_the_last_file_gives_the_empty_tree(repo: pygit2.Repository) -> None:
    base = make_tree(repo, {"a": "a\n", "b": "b\n"})
    ours = make_tree(repo, {"a": "a\n"})
    theirs = make_tree(repo, {"b": "b\n"})
    got = check(repo, base, ours, theirs)
    assert got.tree == "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def test_nested_directories_and_a_new_subtree(repo: pygit2.Repository) -> None:
    deep = "xen/arch/x86/hvm/vmx/vmx.c"
    base_files = edit(BASE, **{deep.replace("/", "__").replace(".", "_dot_"): numbered("vmx", 20)})
    ours = edit(base_files, README="ours\n")
    theirs = edit(
        base_files,
        xen__arch__x86__hvm__vmx__vmx_dot_c=numbered("vmx", 20, l7="fixed"),
        xen__arch__x86__spec__bhb_dot_S="thunk\n",
        xen__arch__x86__spec__Makefile="obj-y += bhb.o\n",
    )
    base = make_tree(repo, base_files)
    got = check(repo, base, make_tree(repo, ours), make_tree(repo, theirs))
    assert blob_at(repo, got.tree, deep) == numbered("vmx", 20, l7="fixed").encode()
    assert blob_at(repo, got.tree, "xen/arch/x86/spec/bhb.S") == b"thunk\n"


def test_exec_bit_from_one_side_and_content_from_the_other(repo: pygit2.Repository) -> None:
    script = numbered("script", 30)
    base_files = edit(BASE, tools__run_dot_sh=script)
    ours = edit(base_files, tools__run_dot_sh=numbered("script", 30, l2="ours"))
    theirs = edit(base_files, tools__run_dot_sh=(EXE, numbered("script", 30, l28="theirs")))
    base = make_tree(repo, base_files)
    got = check(repo, base, make_tree(repo, ours), make_tree(repo, theirs))
    assert mode_at(repo, got.tree, "tools/run.sh") == EXE
    assert blob_at(repo, got.tree, "tools/run.sh") == (
        numbered("script", 30, l2="ours", l28="theirs").encode()
    )


def test_mode_change_only(repo: pygit2.Repository) -> None:
    base_files = edit(BASE, tools__run_dot_sh="#!/bin/sh\n")
    theirs = edit(base_files, tools__run_dot_sh=(EXE, "#!/bin/sh\n"))
    ours = edit(base_files, README="ours\n")
    got = check(repo, make_tree(repo, base_files), make_tree(repo, ours), make_tree(repo, theirs))
    assert mode_at(repo, got.tree, "tools/run.sh") == EXE


# -- the awkward cases: merge_trees decides ----------------------------------------------------


def test_rename_on_our_side_follows_the_file(repo: pygit2.Repository) -> None:
    ours = edit(
        BASE,
        xen__common__sched_dot_c=None,
        xen__common__sched__core_dot_c=BASE["xen/common/sched.c"],
    )
    theirs = edit(BASE, xen__common__sched_dot_c=numbered("sched", 40, l9="fixed"))
    merger = TreeMerger(ObjectStore(repo))
    got = check(repo, *three(repo, ours, theirs), merger=merger)
    assert blob_at(repo, got.tree, "xen/common/sched/core.c") == (
        numbered("sched", 40, l9="fixed").encode()
    )
    assert merger.stats.fallbacks == 1


def test_rename_on_their_side(repo: pygit2.Repository) -> None:
    ours = edit(BASE, README="ours\n")
    theirs = edit(
        BASE,
        xen__arch__x86__mm_dot_c=None,
        xen__arch__x86__mm__core_dot_c=numbered("mm", 40, l40="moved"),
    )
    got = check(repo, *three(repo, ours, theirs))
    assert blob_at(repo, got.tree, "xen/arch/x86/mm/core.c") == (
        numbered("mm", 40, l40="moved").encode()
    )


def test_rename_on_their_side_with_ours_changed_merges_into_the_new_name(
    repo: pygit2.Repository,
) -> None:
    ours = edit(BASE, xen__arch__x86__mm_dot_c=numbered("mm", 40, l2="ours"))
    theirs = edit(
        BASE,
        xen__arch__x86__mm_dot_c=None,
        xen__arch__x86__mm__core_dot_c=numbered("mm", 40, l39="moved"),
    )
    got = check(repo, *three(repo, ours, theirs))
    assert blob_at(repo, got.tree, "xen/arch/x86/mm/core.c") == (
        numbered("mm", 40, l2="ours", l39="moved").encode()
    )


def test_delete_modify_is_a_conflict(repo: pygit2.Repository) -> None:
    ours = edit(BASE, tools__misc__xenpm_dot_c=None)
    theirs = edit(BASE, tools__misc__xenpm_dot_c=numbered("xenpm", 10, l1="fixed"))
    merger = TreeMerger(ObjectStore(repo))
    got = check(repo, *three(repo, ours, theirs), merger=merger)
    assert got.conflicts == ("tools/misc/xenpm.c",)
    assert merger.stats.fallbacks == 0  # ours adds no path, so no rename can rescue it


def test_delete_modify_next_to_an_unrelated_new_file_needs_no_full_merge(
    repo: pygit2.Repository,
) -> None:
    """Ours also added a file, but one too unlike the deleted one for rename detection."""
    ours = edit(
        BASE,
        tools__misc__xenpm_dot_c=None,
        automation__build__debian_dot_dockerfile="".join(f"RUN step {i}\n" for i in range(30)),
    )
    theirs = edit(BASE, tools__misc__xenpm_dot_c=numbered("xenpm", 10, l1="fixed"))
    merger = TreeMerger(ObjectStore(repo))
    got = check(repo, *three(repo, ours, theirs), merger=merger)
    assert got.conflicts == ("tools/misc/xenpm.c",)
    assert merger.stats.fallbacks == 0


def test_modify_delete_is_a_conflict(repo: pygit2.Repository) -> None:
    ours = edit(BASE, tools__misc__xenpm_dot_c=numbered("xenpm", 10, l1="ours"))
    theirs = edit(BASE, tools__misc__xenpm_dot_c=None)
    got = check(repo, *three(repo, ours, theirs))
    assert got.conflicts == ("tools/misc/xenpm.c",)


def test_deleted_on_both_sides(repo: pygit2.Repository) -> None:
    ours = edit(BASE, tools__misc__xenpm_dot_c=None, README="ours\n")
    theirs = edit(BASE, tools__misc__xenpm_dot_c=None)
    assert check(repo, *three(repo, ours, theirs)).clean


def test_added_on_both_sides(repo: pygit2.Repository) -> None:
    same = edit(BASE, xen__common__new_dot_c="int new;\n")
    got = check(repo, *three(repo, edit(same, README="ours\n"), same))
    assert got.clean
    differ = edit(BASE, xen__common__new_dot_c="int other;\n")
    assert not check(repo, *three(repo, same, differ)).clean


def test_file_replaced_by_a_directory(repo: pygit2.Repository) -> None:
    ours = edit(BASE, README="ours\n")
    theirs = edit(BASE, xen__arch__x86__mm_dot_c=None, xen__arch__x86__mm_dot_c__core_dot_c="x\n")
    assert check(repo, *three(repo, ours, theirs)).clean
    ours_changed = edit(BASE, xen__arch__x86__mm_dot_c=numbered("mm", 40, l1="ours"))
    assert not check(repo, *three(repo, ours_changed, theirs)).clean


def test_directory_replaced_by_a_file(repo: pygit2.Repository) -> None:
    ours = edit(BASE, xen__common__grant_dot_c=numbered("grant", 40, l1="ours"))
    theirs = edit(BASE, xen__common__sched_dot_c=None, xen__common__grant_dot_c=None)
    theirs["xen/common"] = "now a file\n"
    check(repo, *three(repo, ours, theirs))
    check(repo, *three(repo, edit(BASE, README="ours\n"), theirs))


def test_symlinks(repo: pygit2.Repository) -> None:
    base_files = edit(BASE, tools__link=(LINK, "misc/xenpm.c"))
    retarget = edit(base_files, tools__link=(LINK, "misc/other.c"))
    other = edit(base_files, tools__link=(LINK, "misc/third.c"))
    base = make_tree(repo, base_files)
    got = check(
        repo, base, make_tree(repo, edit(base_files, README="o\n")), make_tree(repo, retarget)
    )
    assert mode_at(repo, got.tree, "tools/link") == LINK
    assert not check(repo, base, make_tree(repo, other), make_tree(repo, retarget)).clean
    as_file = edit(base_files, tools__link="a plain file now\n")
    check(repo, base, make_tree(repo, as_file), make_tree(repo, retarget))


def test_submodules(repo: pygit2.Repository) -> None:
    sha1, sha2, sha3 = "1" * 40, "2" * 40, "3" * 40
    base_files = edit(BASE, extras__mini=(SUBMODULE, sha1))
    base = make_tree(repo, base_files)
    theirs = make_tree(repo, edit(base_files, extras__mini=(SUBMODULE, sha2)))
    assert check(repo, base, make_tree(repo, edit(base_files, README="o\n")), theirs).clean
    ours = make_tree(repo, edit(base_files, extras__mini=(SUBMODULE, sha3)))
    assert not check(repo, base, ours, theirs).clean


def test_binary_files_conflict_like_merge_trees(repo: pygit2.Repository) -> None:
    blob = b"\0binary" + bytes(range(256)) * 4
    base_files = edit(BASE, firmware__ucode_dot_bin=blob)
    ours = edit(base_files, firmware__ucode_dot_bin=(EXE, blob))
    theirs = edit(base_files, firmware__ucode_dot_bin=blob + b"\1")
    assert not check(
        repo, make_tree(repo, base_files), make_tree(repo, ours), make_tree(repo, theirs)
    ).clean


def test_a_merge_attribute_defers_to_merge_trees(repo: pygit2.Repository) -> None:
    Path(repo.path, "info").mkdir(exist_ok=True)
    Path(repo.path, "info", "attributes").write_text("*.c merge=union\n")
    repo = pygit2.Repository(repo.path)
    ours = edit(BASE, xen__common__grant_dot_c=numbered("grant", 40, l20="ours"))
    theirs = edit(BASE, xen__common__grant_dot_c=numbered("grant", 40, l20="theirs"))
    merger = TreeMerger(ObjectStore(repo))
    got = check(repo, *three(repo, ours, theirs), merger=merger)
    assert got.clean  # union merge keeps both lines
    assert merger.stats.fallbacks == 1


# -- chains of picks, caches, both file-merge back ends -----------------------------------------


@pytest.mark.parametrize("in_memory", [True, False], ids=["buffers", "from-index"])
def test_cumulative_picks_on_merged_blobs_in_memory(
    repo: pygit2.Repository, in_memory: bool
) -> None:
    """Each pick merges into a blob the previous pick made and that only exists in memory."""
    store = ObjectStore(repo)
    merger = TreeMerger(store, in_memory_file_merge=in_memory)
    ours_files = edit(BASE, xen__common__sched_dot_c=numbered("sched", 40, l1="ours"))
    ours = make_tree(repo, ours_files)
    source = dict(BASE)
    expected_lines = {"l1": "ours"}
    for step in range(2, 8):
        changed = {f"l{5 * step}": f"fix {step}"}
        expected_lines.update(changed)
        parent = make_tree(repo, source)
        source = edit(
            source,
            xen__common__sched_dot_c=numbered(
                "sched", 40, **{k: v for k, v in expected_lines.items() if k != "l1"}
            ),
        )
        merge = merger.merge(parent, ours, make_tree(repo, source))
        assert merge.tree is not None
        ours = merge.tree
    assert store.pending > 0
    store.flush()
    assert blob_at(repo, ours, "xen/common/sched.c") == (
        numbered("sched", 40, **expected_lines).encode()
    )
    assert merger.stats.file_merges == 6
    assert merger.stats.fallbacks == 0


def test_identical_file_merges_come_from_the_cache(repo: pygit2.Repository) -> None:
    ours = edit(BASE, xen__common__sched_dot_c=numbered("sched", 40, l2="ours early"))
    theirs = edit(BASE, xen__common__sched_dot_c=numbered("sched", 40, l35="theirs late"))
    base, ours_tree, theirs_tree = three(repo, ours, theirs)
    other_ours = make_tree(repo, edit(ours, README="another branch\n"))
    merger = TreeMerger(ObjectStore(repo))
    first = merger.merge(base, ours_tree, theirs_tree)
    second = merger.merge(base, other_ours, theirs_tree)
    assert first.clean and second.clean and first.tree != second.tree
    assert (merger.stats.file_merges, merger.stats.file_cache_hits) == (1, 1)


def test_xenlike_stable_picks_in_order(tmp_path: Path) -> None:
    x: XenLike = make_xenlike(tmp_path / "xen")
    repo = pygit2.Repository(str(x.path))
    merger = TreeMerger(ObjectStore(repo))
    ours = str(repo.revparse_single(x.base_tag).peel(pygit2.Tree).id)
    outcomes: dict[str, bool] = {}
    for name in ("xsa1", "xsa2", "xsa3a", "xsa3b", "xsa4", "xsa5"):
        commit = repo[x.shas[name]]
        assert isinstance(commit, pygit2.Commit)
        got = check(repo, str(commit.parents[0].tree_id), ours, str(commit.tree_id), merger)
        outcomes[name] = got.clean
        ours = got.tree or ours
    assert outcomes == {
        "xsa1": True,
        "xsa2": False,  # needs the non-XSA prerequisite
        "xsa3a": True,
        "xsa3b": True,
        "xsa4": True,
        "xsa5": True,  # already in the base: clean and empty
    }


# -- differential ----------------------------------------------------------------------------

_WORDS = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]
_PATHS = [
    "a",
    "a-b",
    "a.c",
    "b/x.c",
    "b/y.c",
    "b/sub/z.c",
    "b-c/k",
    "c/d/e/f.c",
    "c/d/g.h",
    "docs/misc/x.txt",
]


def _text(rng: random.Random, lines: int) -> str:
    return "".join(f"{rng.choice(_WORDS)} {i}\n" for i in range(lines))


def _mutate(rng: random.Random, files: Files, edits: int) -> Files:
    """Random edits in the ways real commits change trees (and a few they rarely do)."""
    out = dict(files)
    for _ in range(edits):
        kind = rng.choice(
            [
                "line",
                "line",
                "line",
                "line",
                "add",
                "delete",
                "rename",
                "mode",
                "link",
                "dir_file",
                "binary",
                "empty",
                "copy",
            ]
        )
        paths = sorted(out)
        path = rng.choice(paths) if paths else "a"
        spec = out.get(path, "")
        mode, content = spec if isinstance(spec, tuple) else (REG, spec)
        text = content if isinstance(content, str) else content.decode("latin-1")
        if kind == "line" and mode in (REG, EXE):
            lines = text.splitlines(keepends=True) or ["\n"]
            i = rng.randrange(len(lines))
            lines[i] = f"{rng.choice(_WORDS)} changed {rng.randrange(3)}\n"
            if rng.random() < 0.3:
                lines.insert(rng.randrange(len(lines) + 1), "inserted\n")
            out[path] = (mode, "".join(lines))
        elif kind == "add":
            new = rng.choice([*_PATHS, f"n/{rng.randrange(4)}.c"])
            if not any(p.startswith(new + "/") or new.startswith(p + "/") for p in out):
                out[new] = _text(rng, rng.randrange(1, 30))
        elif kind == "delete" and paths:
            out.pop(path)
        elif kind in ("rename", "copy") and paths:
            new = rng.choice(_PATHS) + ".moved"
            if not any(p.startswith(new + "/") or new.startswith(p + "/") for p in out):
                if kind == "rename":
                    out.pop(path)
                out[new] = spec
        elif kind == "mode" and mode in (REG, EXE):
            out[path] = (EXE if mode == REG else REG, content)
        elif kind == "link":
            out[path] = (LINK, rng.choice(_WORDS))
        elif kind == "dir_file" and paths:
            if "/" in path:  # the directory becomes a file
                top = path.split("/")[0]
                for p in [p for p in out if p.startswith(top + "/")]:
                    out.pop(p)
                out[top] = _text(rng, 5)
            else:  # the file becomes a directory
                out.pop(path)
                out[path + "/inner.c"] = _text(rng, 5)
        elif kind == "binary":
            out[path] = b"\0bin" + rng.randbytes(40)
        elif kind == "empty":
            out[path] = ""
    return out


def test_differential_against_merge_trees(repo: pygit2.Repository) -> None:
    """Many random (base, ours, theirs) triples: same tree ID, clean flag and conflicts."""
    rng = random.Random(20240611)
    root: Files = {p: _text(rng, 25) for p in _PATHS}
    generations: list[Files] = [root]
    for _ in range(30):
        generations.append(_mutate(rng, rng.choice(generations), rng.randrange(1, 6)))
    merger = TreeMerger(ObjectStore(repo))
    compared = clean = 0
    for _ in range(400):
        base_files = rng.choice(generations)
        theirs_files = _mutate(rng, base_files, rng.randrange(1, 4))
        ours_files = _mutate(rng, base_files, rng.randrange(0, 8))
        if rng.random() < 0.15:  # already applied, in part or in full
            ours_files = _mutate(rng, theirs_files, rng.randrange(0, 2))
        base, ours, theirs = (make_tree(repo, f) for f in (base_files, ours_files, theirs_files))
        got = merger.merge(base, ours, theirs)
        chained = next_theirs = None
        if got.tree is not None and rng.random() < 0.5:
            # Pick onto the in-memory result too, as a build does.
            next_theirs = make_tree(repo, _mutate(rng, theirs_files, 2))
            chained = merger.merge(theirs, got.tree, next_theirs)
        merger.store.materialize(m.tree for m in (got, chained) if m and m.tree)
        assert got == reference(repo, base, ours, theirs), (base_files, ours_files, theirs_files)
        if chained is not None and got.tree is not None and next_theirs is not None:
            assert chained == reference(repo, theirs, got.tree, next_theirs)
        compared += 1
        clean += got.clean
    assert compared == 400
    assert 50 < clean < 390  # both outcomes well represented
    assert merger.stats.fallbacks < merger.stats.merges  # the fast path does most of the work
