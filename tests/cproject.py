"""A tiny C project with the shapes of issue 4: fixes that merge cleanly but need a function
that a non-XSA commit added. Used by the check gate's tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.gitrepo import RepoBuilder, lines

BUILD = "make -s"
MAKEFILE = lines(
    "CFLAGS = -Wall -Werror -O0",
    "prog: main.o util.o",
    "\t$(CC) -o $@ main.o util.o",
    "main.o util.o: util.h",
)
UTIL_H = lines("#ifndef UTIL_H", "#define UTIL_H", "int util_add(int a, int b);", "#endif")
UTIL_C = lines('#include "util.h"', "int util_add(int a, int b) { return a + b; }")
MAIN_C = lines(
    '#include "util.h"',
    "",
    "static int first(void)",
    "{",
    "    return util_add(1, 2) - 3;",
    "}",
    "",
    "static int second(void)",
    "{",
    "    return util_add(2, 2) - 4;",
    "}",
    "",
    "int main(void)",
    "{",
    "    return first() + second();",
    "}",
)
CLAMP_C = "int util_clamp(int v, int hi) { return v > hi ? hi : v; }\n"
TWICE_C = "int util_twice(int v) { return 2 * v; }\n"


@dataclass
class Project:
    upstream: RepoBuilder
    shas: dict[str, str]

    @property
    def path(self) -> Path:
        return self.upstream.path

    def tree(self, ref: str) -> str:
        return self.upstream.repo.git.rev_parse(f"{ref}^{{tree}}")


def make_project(path: Path) -> Project:
    b = RepoBuilder(path)
    s: dict[str, str] = {}
    s["root"] = b.commit(
        "Initial import\n",
        {
            "Makefile": MAKEFILE,
            "util.h": UTIL_H,
            "util.c": UTIL_C,
            "main.c": MAIN_C,
            "README": "x\n",
        },
    )
    b.tag("RELEASE-1.0")
    b.branch("stable-1.0")
    b.checkout("stable-1.0")
    s["tidy"] = b.commit(
        "util: document util_add\n",
        {
            "util.h": UTIL_H.replace(
                "int util_add(int a, int b);", "int util_add(int a, int b); /* a + b */"
            )
        },
    )
    s["docs"] = b.commit("docs: say what it is\n", {"README": "A tiny program.\n"})
    s["clamp"] = b.commit(
        "util: add util_clamp()\n",
        {
            "util.h": UTIL_H.replace(
                "int util_add(int a, int b);",
                "int util_add(int a, int b); /* a + b */\nint util_clamp(int v, int hi);",
            ),
            "util.c": UTIL_C + CLAMP_C,
        },
    )
    s["xsa1"] = b.commit(
        "main: bound the result\n\nThis is XSA-1.\n",
        {"main.c": MAIN_C.replace("util_add(1, 2) - 3", "util_clamp(util_add(1, 2), 3) - 3")},
    )
    s["xsa2"] = b.commit("security: a contact\n\nThis is XSA-2.\n", {"SECURITY": "security@\n"})
    # Defined in util.c only (after util_clamp: it needs that commit to apply); XSA-3 declares
    # it itself, so only the link fails without it, and only a whole-tree search finds it.
    s["twice"] = b.commit("util: add util_twice()\n", {"util.c": UTIL_C + CLAMP_C + TWICE_C})
    s["xsa3"] = b.commit(
        "main: double check\n\nThis is XSA-3.\n",
        {
            "main.c": b.read("main.c").replace(
                "    return util_add(2, 2) - 4;",
                "    extern int util_twice(int v);\n    return util_twice(2) - 4;",
            )
        },
    )
    return Project(b, s)
