"""Missing names from real gcc/ld output (gcc runs on tiny files here) and literal clang lines."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bot.core.compiler import CompilerError, evidence, headers, identifiers, parse_errors

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def _gcc(tmp_path: Path, source: str, *args: str, lang: str = "C") -> str:
    (tmp_path / "t.c").write_text(source)
    env = {"PATH": os.environ["PATH"], "LANG": lang, "LC_ALL": lang}
    proc = subprocess.run(
        ["gcc", "-Wall", "-Werror", *args, "t.c", "-o", "t.out"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0, "the sample was meant not to build"
    return proc.stderr


def _found(errors: tuple[CompilerError, ...]) -> list[tuple[str, str, str | None, int | None]]:
    return [(e.identifier, e.kind, e.file, e.line) for e in errors]


# (what the source does wrong, C source, (identifier, kind, line) gcc reports)
GCC_CASES = [
    (
        "undeclared variable",
        "int f(void) { return counter; }\n",
        ("counter", "undeclared", 1),
    ),
    (
        "undeclared macro at file scope",
        "int table[MAX_SLOTS];\n",
        ("MAX_SLOTS", "undeclared", 1),
    ),
    (
        "implicit declaration",
        "int f(void)\n{\n    return helper(3);\n}\n",
        ("helper", "implicit-function", 3),
    ),
    (
        "unknown type",
        "int f(void)\n{\n    widget_t w = 0;\n    return (int)w;\n}\n",
        ("widget_t", "unknown-type", 3),
    ),
    (
        "no member",
        "struct s { int x; };\nint f(struct s *p) { return p->y; }\n",
        ("y", "no-member", 2),
    ),
    (
        "unknown field in an initializer",  # gcc 12 words it as a missing member
        "struct s { int x; };\nstruct s v = { .limit = 1 };\n",
        ("limit", "no-member", 2),
    ),
    (
        "incomplete type",
        "struct page;\nint f(struct page *p) { return p->count; }\n",
        ("page", "incomplete-type", 2),
    ),
    (
        "changed signature",
        "int f(int a) { return a; }\nint g(void) { return f(1, 2); }\n",
        ("f", "arguments", 2),
    ),
    (
        "missing header",
        "#include <asm/spec_ctrl_new.h>\nint x;\n",
        ("asm/spec_ctrl_new.h", "missing-header", 1),
    ),
]


@needs_gcc
@pytest.mark.parametrize(("case", "source", "expected"), GCC_CASES, ids=[c[0] for c in GCC_CASES])
def test_gcc_errors_name_what_is_missing(
    tmp_path: Path, case: str, source: str, expected: tuple[str, str, int]
) -> None:
    errors = parse_errors(_gcc(tmp_path, source, "-c"))
    name, kind, line = expected
    assert (name, kind, "t.c", line) in _found(errors), errors
    hit = next(e for e in errors if e.identifier == name)
    assert hit.text.startswith(f"t.c:{line}:") and name in hit.text


@needs_gcc
def test_curly_quotes_of_a_utf8_locale_parse_the_same(tmp_path: Path) -> None:
    out = _gcc(tmp_path, "int f(void) { return counter + helper(); }\n", "-c", lang="C.UTF-8")
    assert "‘counter’" in out or "'counter'" in out
    assert identifiers(parse_errors(out)) == ("counter", "helper")


@needs_gcc
def test_linker_undefined_reference_with_and_without_debug_info(tmp_path: Path) -> None:
    source = "int helper2(int);\nint main(void) { return helper2(1); }\n"
    plain = parse_errors(_gcc(tmp_path, source))
    assert [(e.identifier, e.kind) for e in plain] == [("helper2", "undefined-reference")]
    debug = parse_errors(_gcc(tmp_path, source, "-g"))
    assert [(e.identifier, Path(e.file or "").name, e.line) for e in debug] == [
        ("helper2", "t.c", 2)
    ]


@needs_gcc
def test_notes_and_unrelated_errors_are_not_findings(tmp_path: Path) -> None:
    source = "int f(void) { int unused; return counter; }\nint g(void) { }\n"
    errors = parse_errors(_gcc(tmp_path, source, "-c"))
    # gcc adds "note: each undeclared identifier is reported only once"; -Werror adds
    # "unused variable" and "control reaches end": none is a missing name.
    assert identifiers(errors) == ("counter",)


# clang and lld are not installed here; these lines are copied from their output. The last
# line is from gcc before 12.
CLANG_LINES = [
    (
        "a.c:6:10: error: use of undeclared identifier 'undeclared_var'",
        "undeclared_var",
        "undeclared",
    ),
    (
        "a.c:7:10: error: call to undeclared function 'helper'; ISO C99 and later do not support implicit function declarations [-Wimplicit-function-declaration]",
        "helper",
        "implicit-function",
    ),
    (
        "a.c:7:10: error: implicit declaration of function 'helper' is invalid in C99 [-Werror,-Wimplicit-function-declaration]",
        "helper",
        "implicit-function",
    ),
    ("a.c:5:17: error: no member named 'y' in 'struct s'", "y", "no-member"),
    ("a.c:9:5: error: unknown type name 'widget_t'", "widget_t", "unknown-type"),
    ("a.c:8:14: error: incomplete definition of type 'struct page'", "page", "incomplete-type"),
    (
        "a.c:2:16: error: field designator 'limit' does not refer to any field in type 'struct s'",
        "limit",
        "unknown-field",
    ),
    ("a.c:1:10: fatal error: 'asm/new.h' file not found", "asm/new.h", "missing-header"),
    ("ld.lld: error: undefined symbol: helper2", "helper2", "undefined-reference"),
    ("a.c:2:16: error: unknown field 'limit' specified in initializer", "limit", "unknown-field"),
]


@pytest.mark.parametrize(("line", "name", "kind"), CLANG_LINES, ids=[c[2] for c in CLANG_LINES])
def test_clang_and_lld_lines(line: str, name: str, kind: str) -> None:
    (error,) = parse_errors(line)
    assert (error.identifier, error.kind, error.text) == (name, kind, line)


def test_findings_are_unique_and_in_order_with_colours_stripped() -> None:
    log = "\n".join(
        [
            "make[2]: Entering directory '/build/xen'",
            "\x1b[01m\x1b[Kcommon/sched.c:10:5:\x1b[m\x1b[K \x1b[01;31m\x1b[Kerror: \x1b[m\x1b[Kimplicit declaration of function '\x1b[01m\x1b[Ksched_tick\x1b[m\x1b[K'",
            "common/sched.c:10:5: error: implicit declaration of function 'sched_tick'",
            "include/xen/sched.h:3:1: error: unknown type name 'tick_t'",
            "ld: common/built_in.o: in function `do_tick':",
            "common/sched.c:12: undefined reference to `sched_tick.constprop.0'",
            "make[2]: *** [Rules.mk:203: common/sched.o] Error 1",
        ]
    )
    errors = parse_errors(log)
    assert _found(errors) == [
        ("sched_tick", "implicit-function", "common/sched.c", 10),
        ("tick_t", "unknown-type", "include/xen/sched.h", 3),
        ("sched_tick", "undefined-reference", "common/sched.c", 12),
    ]
    assert identifiers(errors) == ("sched_tick", "tick_t")
    assert headers(errors) == ()
    assert evidence(errors, limit=1) == (
        "common/sched.c:10:5: error: implicit declaration of function 'sched_tick'",
    )
