"""The JSON reports: README documents their keys, `schema --report` describes what the commands
print, and a build record that cannot be read is reported with why."""

from __future__ import annotations

import json
import re
import subprocess
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pytest

from bot.core.record import BuildRecord, NoteRecords, note_json, note_records
from bot.core.reports import (
    REPORTS,
    BranchReport,
    PassReport,
    Report,
    StatusReport,
    report_json_schema,
)
from tests.conftest import Bot
from tests.gitrepo import RepoBuilder, XenLike
from tests.manifests import manifest

README = Path(__file__).resolve().parent.parent / "README.md"
NOTES = "refs/notes/xsabot"

# -- README documents exactly the models' keys --------------------------------------------------

Tree = list[tuple[str, "Tree"]]


def _paragraph() -> str:
    text = README.read_text()
    start = text.index("The `--json` of `plan` and `reconcile` lists per manifest:")
    return " ".join(text[start : text.index("\n\n", start)].split())


def _sentence_after(paragraph: str, marker: str) -> str:
    start = paragraph.index(marker) + len(marker)
    end = re.search(r"\.(\s|$)", paragraph[start:])
    assert end is not None
    return paragraph[start : start + end.start()]


def _keys(text: str) -> Tree:
    """The backquoted names of a sentence; a parenthesis after a name holds its own keys (or
    values), and prose between them is skipped."""
    stack: list[Tree] = [[]]
    for name, paren in re.findall(r"`([^`]+)`|([()])", text):
        if paren == "(":
            stack.append(stack[-1][-1][1] if stack[-1] else [])
        elif paren == ")":
            stack.pop()
        else:
            stack[-1].append((name, []))
    assert len(stack) == 1, f"unbalanced parentheses in {text!r}"
    return stack[0]


def _inner(annotation: Any) -> list[Any]:
    """The types inside `X | None`, `tuple[X, ...]` and the like."""
    if get_origin(annotation) in (Union, types.UnionType, tuple):
        return [t for arg in get_args(annotation) for t in _inner(arg)]
    return [annotation]


def _field_type(model: type[Report], key: str) -> Any:
    if key in model.model_fields:
        return model.model_fields[key].annotation
    return model.model_computed_fields[key].return_type


def _check(doc: Tree, model: type[Report], seen: set[type[Report]], where: str) -> None:
    assert [name for name, _ in doc] == model.json_keys(), f"{where}: keys differ from the model"
    seen.add(model)
    for name, children in doc:
        for inner in _inner(_field_type(model, name)):
            if isinstance(inner, type) and issubclass(inner, Report):
                if children or inner not in seen:  # "as above" is enough once documented
                    _check(children, inner, seen, f"{where}.{name}")
                break
            if get_origin(inner) is Literal:
                if children:
                    assert [v for v, _ in children] == list(get_args(inner)), f"{where}.{name}"
                break
        else:
            assert not children, f"{where}.{name}: README lists keys the model does not have"


def test_readme_documents_exactly_the_keys_of_the_reports() -> None:
    paragraph = _paragraph()
    seen: set[type[Report]] = set()
    for marker, model in (
        ("lists per manifest:", BranchReport),
        ("Around them:", PassReport),
        ("`status --json` has", StatusReport),
    ):
        _check(_keys(_sentence_after(paragraph, marker)), model, seen, model.__name__)
    schemas = _keys(_sentence_after(paragraph, "prints the JSON Schema of each:"))
    assert [name for name, _ in schemas] == list(REPORTS)


def test_the_readme_check_sees_a_missing_key() -> None:
    doc = _keys(_sentence_after(_paragraph(), "lists per manifest:"))
    with pytest.raises(AssertionError, match="keys differ"):
        _check([item for item in doc if item[0] != "path"], BranchReport, set(), "branch")
    check = dict(doc)["check"]
    with pytest.raises(AssertionError, match="keys differ"):
        _check([(n, c if n != "check" else check[:-1]) for n, c in doc], BranchReport, set(), "b")


# -- schema --report: the JSON the commands print validates -----------------------------------


def _validator(name: str) -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    schema = report_json_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _valid(name: str, data: object) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in _validator(name).iter_errors(data)]
    assert not errors, errors


def test_schema_report_prints_each_report_schema(bot: Bot) -> None:
    for name in REPORTS:
        run = bot("schema", "--report", name)
        assert run.status == 0, run.err
        assert json.loads(run.out) == report_json_schema(name)
        assert json.loads(run.out)["$id"] == f"urn:xsabot:report:{name}"
    assert bot("schema", "--report", "nonsense").status == 2


def test_every_schema_requires_the_keys_always_printed() -> None:
    schema = report_json_schema("plan")
    assert schema["required"] == ["branches", "errors", "ok"]  # `proposals`: reconcile only
    assert schema["additionalProperties"] is False
    branch = schema["$defs"]["BranchReport"]
    assert branch["required"] == BranchReport.json_keys()
    assert schema["$defs"]["CheckReport"]["required"] == ["command", "passed"]


@pytest.fixture
def repo_bot(bot: Bot, tmp_path: Path, xenlike: XenLike) -> Bot:
    """The bot with a manifest in a git repository (so it can propose) that blocks XSA-2."""
    repo = RepoBuilder(tmp_path / "manifests-repo")
    bot.manifests = repo.path / "manifests"
    text = manifest(xenlike, (1, ["xsa1"]), (2, ["xsa2"]), (5, ["xsa5"]))
    repo.commit("add 4.19\n", {"manifests/4.19.yaml": text})
    return bot


def _json(run_: Any) -> Any:
    return json.loads(run_.out)


def test_plan_reconcile_and_status_json_validate_against_their_schemas(repo_bot: Bot) -> None:
    bot = repo_bot
    plan = _json(bot("plan", "--json", "--check", "xen=true"))
    assert plan["branches"][0]["check"]["skipped"] == "a plan runs no check"
    assert "proposals" not in plan
    _valid("plan", plan)

    reconcile = _json(bot("reconcile", "--json"))
    [opened] = reconcile["proposals"]
    assert opened["action"] == "open"
    _valid("reconcile", reconcile)

    gated = _json(bot("reconcile", "--json", "--check", "xen=true"))
    assert gated["branches"][0]["check"]["checks_run"] == 1 and gated["proposals"]
    _valid("reconcile", gated)

    status = _json(bot("status", "--json"))
    assert status["proposals"][0]["id"] == opened["id"]
    _valid("status", status)

    tip = status["branches"][0]["tip"]
    note = _git(bot.mirror, "notes", "--ref", "xsabot", "show", tip)
    _valid("record", json.loads(note_json(note) or ""))


def test_deps_json_validates_against_its_schema(bot: Bot, xenlike: XenLike, tmp_path: Path) -> None:
    path = bot.write("4.19", manifest(xenlike, (1, ["xsa1"]), (2, ["xsa2"])))
    found = _json(bot("deps", str(path), "2", "--json"))
    applies = _json(bot("deps", str(path), "1", "--json"))
    lost = {"xsa": 7, "commits": "[" + "a" * 40 + "]"}
    other = bot.write("4.18", manifest(xenlike, lost, branch="xsa/4.18"))
    unsearchable = _json(bot("deps", str(other), "7", "--json"))
    assert found["chosen"] and found["bound_hit"] is None
    assert list(applies) == ["manifest", "xsa", "state", "found", "chosen"]
    assert list(unsearchable) == ["manifest", "xsa", "state", "found", "reason", "detail"]
    for data in (found, applies, unsearchable):
        _valid("deps", data)


# -- a build record that cannot be read says why -----------------------------------------------


def _git(repo: Path, *args: str, input: str | None = None) -> str:
    identity = ["-c", "user.name=someone", "-c", "user.email=someone@example.org"]
    return subprocess.run(
        ["git", *identity, "-C", str(repo), *args],
        check=True,
        capture_output=True,
        text=True,
        input=input,
    ).stdout.strip()


def _without_inputs(note: str) -> str:
    data = json.loads(note_json(note) or "")
    del data["records"]["xsa/4.19"]["inputs"]
    return json.dumps(data)


TAMPERED = [
    pytest.param(lambda note: "{not json", "the note is not JSON", id="not-json"),
    pytest.param(
        lambda note: note.replace('"format": 2', '"format": 1'),
        "format: Input should be 2 (got 1)",
        id="wrong-format",
    ),
    pytest.param(_without_inputs, "inputs: Field required", id="missing-field"),
]


@pytest.mark.parametrize(("tamper", "why"), TAMPERED)
def test_a_tampered_record_is_reported_with_why_and_rebuilt(
    bot: Bot, xenlike: XenLike, tamper: Any, why: str
) -> None:
    bot.write("4.19", manifest(xenlike, (1, ["xsa1"])))
    assert bot("reconcile").status == 0
    tip = _git(bot.mirror, "rev-parse", "refs/heads/xsa/4.19")
    note = _git(bot.mirror, "notes", "--ref", "xsabot", "show", tip)
    _git(bot.mirror, "notes", "--ref", "xsabot", "add", "-f", "-F", "-", tip, input=tamper(note))

    status = bot("status", "--json")
    [branch] = _json(status)["branches"]
    assert status.status == 1
    [problem] = branch["problems"]
    assert problem.startswith("build record unreadable: ") and why in problem

    run = bot("reconcile", "--json")
    [rebuilt] = _json(run)["branches"]
    assert run.status == 0  # as before: the branch is rebuilt, and nothing it holds changed
    assert (rebuilt["action"], rebuilt["tip"], rebuilt["rebuilt"]) == ("none", tip, True)
    [change] = rebuilt["changes"]
    assert change.startswith("previous build record unreadable (") and why in change
    assert change.endswith("): rebuilt from the manifest")
    # The pass wrote a good record again.
    assert bot("status", "--json").status == 0


def _record(branch: str) -> dict[str, object]:
    return BuildRecord(
        manifest="m", branch=branch, inputs="i", base="b", base_commit="c", build="d"
    ).model_dump(mode="json")


def test_one_broken_record_leaves_the_others_of_its_note_readable() -> None:
    broken = _record("xsa/b") | {"xsas": [{"xsa": 1}]}
    found = note_records(
        json.dumps({"format": 2, "records": {"xsa/a": _record("xsa/a"), "xsa/b": broken}})
    )
    assert isinstance(found.get("xsa/a"), BuildRecord)
    assert found.unreadable == {"xsa/b": "xsas[0].state: Field required"}
    assert found.get("xsa/c") is None  # no record for it at all: not an error


def test_an_unreadable_note_makes_every_record_in_it_unreadable() -> None:
    found = note_records('["format", 2]')
    assert found == NoteRecords(why=found.why) and found.why.startswith("the note: ")
    unreadable = found.get("xsa/a")
    assert not isinstance(unreadable, BuildRecord) and unreadable is not None
    assert unreadable.problem == f"build record unreadable: {found.why}"


def test_every_report_model_is_frozen_and_strict() -> None:
    for model, _ in REPORTS.values():
        assert model.model_config.get("frozen") and model.model_config.get("extra") == "forbid"
    with pytest.raises(ValueError, match="Extra inputs"):
        BranchReport(manifest="m", path="p", action="none", bogus=1)
