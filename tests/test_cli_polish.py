"""What a person sees around the work: a closed pipe, -v/-q anywhere, typos in TREE=, an
unreachable upstream, YAML mistakes, and help that says every default."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.main import COMMANDS, build_parser
from tests.conftest import Bot
from tests.gitrepo import XenLike
from tests.manifests import manifest

ROOT = Path(__file__).resolve().parent.parent


def _xsabot(cwd: Path, *args: str, stdout: int | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in a process of its own, as a shell runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XSABOT_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )


def _pass_args(bot: Bot) -> list[str]:
    return [
        "--manifests",
        str(bot.manifests),
        "--state",
        str(bot.state),
        "--upstream",
        f"xen={bot.upstream}",
        "--mirror",
        f"xen={bot.mirror}",
    ]


# -- a closed pipe ----------------------------------------------------------------------------


def test_a_closed_pipe_ends_quietly_with_141(bot: Bot, xenlike: XenLike, tmp_path: Path) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (3, ["xsa3a", "xsa3b"])))
    who = ["-c", "user.name=Volunteer", "-c", "user.email=volunteer@example.org"]
    for git in (["init", "-q"], ["add", "."], [*who, "commit", "-qm", "Manifests"]):
        subprocess.run(["git", "-C", str(bot.manifests), *git], check=True)
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line: every write fails
    try:
        done = _xsabot(tmp_path, "reconcile", "--json", *_pass_args(bot), stdout=write)
    finally:
        os.close(write)
    assert done.returncode == 141
    assert done.stderr == ""  # no traceback, no "Exception ignored", no internal error
    assert not (bot.state / "logs").exists()
    # The pass did its work all the same: the branch is published.
    published = ["git", "-C", str(bot.mirror), "rev-parse", "--verify", "-q", "xsa/4.19"]
    assert subprocess.run(published, capture_output=True).returncode == 0


def test_json_piped_into_head_prints_no_traceback(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    for n in range(40):  # more output than a pipe holds, so head's exit is felt
        bot.write(f"4.{n}", manifest(xenlike, (1, ["xsa1"]), branch=f"xsa/4.{n}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("XSABOT_")}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "bot", "plan", "--json", *_pass_args(bot)]
    with subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as xsabot:
        assert xsabot.stdout is not None and xsabot.stderr is not None
        head = subprocess.run(["head", "-1"], stdin=xsabot.stdout, capture_output=True)
        xsabot.stdout.close()
        err = xsabot.stderr.read().decode()
    assert head.stdout == b"{\n"
    assert xsabot.returncode in (0, 141)
    assert "Traceback" not in err and "Error" not in err and "internal error" not in err


# -- -v and -q --------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["after", "before"])
def test_verbose_anywhere_logs_each_step_with_its_timing(
    bot: Bot, xenlike: XenLike, where: str
) -> None:
    from bot.cli.main import main

    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    bot.write("4.20", manifest(xenlike, (3, ["xsa3a", "xsa3b"]), branch="xsa/4.20"))
    argv = ["plan", *_pass_args(bot)]
    argv = [*argv, "-v"] if where == "after" else ["-v", *argv]
    bot.capsys.readouterr()
    assert main(argv) == 0
    err = bot.capsys.readouterr().err
    timed = re.compile(r"^xsabot: (.+): (\d+\.\d\d s|\d+ min \d+ s)$", re.MULTILINE)
    steps = [m[1] for m in timed.finditer(err)]
    assert steps == [
        "fetching xen upstream",
        "fetching xen mirror",
        "building 4.19 (1/2)",
        "building 4.20 (2/2)",
    ]


def _on_a_terminal(cwd: Path, *args: str) -> bytes:
    """What the command writes to stderr when stderr is a terminal (a pseudo-terminal here)."""
    import pty
    import select

    main, other = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XSABOT_")}
    env |= {"PYTHONPATH": str(ROOT), "TERM": "xterm", "COLUMNS": "100"}
    with subprocess.Popen(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=other,
    ) as process:
        os.close(other)
        seen = b""
        while select.select([main], [], [], 60)[0]:
            try:
                data = os.read(main, 65536)
            except OSError:  # the terminal is closed once the command exits
                break
            if not data:
                break
            seen += data
    os.close(main)
    assert process.returncode == 0
    return seen


def test_progress_on_a_terminal_counts_and_times_and_q_anywhere_hides_it(
    bot: Bot, xenlike: XenLike, tmp_path: Path
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    bot.write("4.20", manifest(xenlike, (3, ["xsa3a", "xsa3b"]), branch="xsa/4.20"))
    shown = _on_a_terminal(tmp_path, "plan", *_pass_args(bot))
    assert b"building 4.19 (1/2)" in shown and b"building 4.20 (2/2)" in shown
    assert re.search(rb"fetching xen upstream .*0:00:\d\d", shown)  # the elapsed time
    assert _on_a_terminal(tmp_path, "-q", "plan", *_pass_args(bot)) == b""
    assert _on_a_terminal(tmp_path, "plan", *_pass_args(bot), "--quiet") == b""


# -- unknown trees ----------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--upstream", "--mirror", "--check"])
def test_an_unknown_tree_is_a_usage_error_naming_the_known_ones(
    bot: Bot, xenlike: XenLike, option: str
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    run = bot("plan", option, "linux=/somewhere")
    assert run.status == 2
    assert run.out == ""
    assert f"{option} linux=...: no tree 'linux'" in run.err
    assert "known trees: xen" in run.err


def test_a_tree_only_a_manifest_names_may_be_given_on_the_command_line(
    bot: Bot, xenlike: XenLike
) -> None:
    bot.write("arm", manifest(xenlike, (1, ["xsa1"])).replace("tree: xen", "tree: xen-arm"))
    run = bot("plan", "--upstream", f"xen-arm={xenlike.path}", "--mirror", "xen-arm=m.git")
    assert run.status == 0, run.err
    assert "arm: would create xsa/4.19" in run.out


# -- an environment error: once, with a hint --------------------------------------------------


@pytest.mark.parametrize(
    ("upstream", "cause", "hint"),
    [
        ("http://127.0.0.1:1/xen.git", "Failed to connect", "--upstream PATH"),
        ("/nonexistent/xen", "no such directory", "must be a git repository"),
    ],
)
def test_an_unreachable_upstream_is_reported_once_with_a_hint(
    bot: Bot, xenlike: XenLike, upstream: str, cause: str, hint: str
) -> None:
    from bot.cli.main import main

    for n in range(6):
        bot.write(f"4.{n}", manifest(xenlike, (1, ["xsa1"]), branch=f"xsa/4.{n}"))
    args = ["--manifests", str(bot.manifests), "--state", str(bot.state)]
    for command in (["reconcile"], ["plan"], ["build", str(bot.manifests / "4.0.yaml")]):
        bot.capsys.readouterr()
        status = main([*command, *args, "--upstream", f"xen={upstream}"])
        out, err = bot.capsys.readouterr()
        assert status == 2
        assert (out + err).count(cause) == 1, (command, out, err)
        hints = [line for line in (out + err).splitlines() if line.startswith("hint: ")]
        assert len(hints) == 1 and hint in hints[0]
        if command[0] != "build":
            assert "problem of 4.0, 4.1, 4.2, 4.3, 4.4, 4.5:" in out
    assert "XSABOT_UPSTREAM_XEN" in hints[0] or "XSABOT_UPSTREAM_<TREE>" in hints[0]


# -- YAML mistakes in plain words -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "hint"),
    [
        ("tree: xen\nxsas:\n\t- xsa: 1\n", "3:1", "use spaces, not tabs, to indent"),
        (
            "tree: xen\nxsas:\n  - xsa: 490\n    status: blocked\n   why: x\n",
            "5:4",
            "check the indentation of the lines above",
        ),
        (
            "tree: xen\nxsas:\n  - xsa: 1\n    status: blocked\n    why: x86: broken\n",
            "5:13",
            'quote a value that holds ": "',
        ),
    ],
)
def test_a_yaml_mistake_gets_a_hint_beside_the_parser_message(
    bot: Bot, text: str, where: str, hint: str
) -> None:
    path = bot.write("4.19", text)
    run = bot("lint")
    assert run.status == 1
    [line] = run.out.splitlines()
    assert line.startswith(f"{path}:{where}: YAML syntax: ")
    assert f"; hint: {hint}" in line


# -- help -------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_option_has_help_and_every_value_its_default(command: str) -> None:
    parser = build_parser(command)
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in sub.choices[command]._actions:
        if not action.option_strings or action.dest == "help":
            continue
        assert action.help, (command, action.option_strings)
        takes_value = action.nargs != 0
        if takes_value:
            said = action.help % {"default": action.default}
            assert "default" in said or "required" in said, (command, action.option_strings)
    text = sub.choices[command].format_help()
    assert "XSABOT_UPSTREAM_<TREE>" in text and "--verbose" in text
