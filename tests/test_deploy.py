"""deploy/ and docs/operating.md: what can be checked without a container engine or a cluster.

Every `xsabot` command line in any deploy file parses with the real parser; the Kubernetes
and CI YAML parse and hang together (names, ports, probes, shards); the config they embed
loads with the real config model; the Containerfile names files that exist and its health
check works against a real server; the systemd units pass `systemd-analyze verify` where it
is installed; the image builds and runs where a container engine runs. And the config
reference in docs/operating.md is the one generated from the config model:
`python3 -m tests.test_deploy` rewrites it after a config change.
"""

from __future__ import annotations

import argparse
import http.server
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from ruamel.yaml import YAML

from bot.cli.main import build_parser
from bot.config import SHARD, Config, load_config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBE = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
CONTAINERFILE = DEPLOY / "container" / "Containerfile"
GITLAB_CI = DEPLOY / "gitlab-ci" / "xsabot.gitlab-ci.yml"
OPERATING = ROOT / "docs" / "operating.md"
IMAGE = "xsabot:0.1.0"
KINDS = {
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "CronJob"),
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
}


def _load_all(path: Path) -> list[Any]:
    return [doc for doc in YAML(typ="safe").load_all(path.read_text()) if doc is not None]


def _kube_docs() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in sorted(KUBE.glob("*.yaml")) for doc in _load_all(path)]


def _pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for _, doc in _kube_docs():
        if doc["kind"] == "Deployment":
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            yield doc["metadata"]["name"], doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


# -- every xsabot command line ------------------------------------------------------------


def _containerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (word.upper(), rest.strip())
        for line in lines
        if line and not line.startswith("#")
        for word, _, rest in [line.partition(" ")]
    ]


def _instruction(name: str) -> list[str]:
    return [rest for word, rest in _containerfile() if word == name]


def _command_lines() -> list[tuple[str, list[str]]]:
    """(where, argv after `xsabot`) for every place a deploy file runs the bot."""
    import json

    found: list[tuple[str, list[str]]] = []
    [entry] = _instruction("ENTRYPOINT")
    [cmd] = _instruction("CMD")
    assert json.loads(entry) == ["xsabot"]
    found.append(("Containerfile CMD", json.loads(cmd)))
    for unit in sorted(SYSTEMD.glob("*.service")):
        for line in unit.read_text().splitlines():
            if line.startswith(("ExecStart=", "ExecStartPre=")):
                argv = shlex.split(line.partition("=")[2].lstrip("-"))
                if argv[0].endswith("/xsabot"):
                    found.append((unit.name, argv[1:]))
    for name, spec in _pod_specs():
        for container in spec.get("initContainers", []) + spec["containers"]:
            assert container["image"] == IMAGE, (name, container["name"])
            if "command" not in container:  # the image's entry point: xsabot
                found.append((f"{name}/{container['name']}", container["args"]))
    for job, body in YAML(typ="safe").load(GITLAB_CI.read_text()).items():
        if isinstance(body, dict):
            for line in body.get("script", []):
                if line.startswith("xsabot "):
                    found.append((f"CI {job}", shlex.split(line.partition(">")[0])[1:]))
    return found


def test_every_deploy_file_runs_the_bot_somewhere() -> None:
    where = {w.split()[0].split("/")[0] for w, _ in _command_lines()}
    assert {"Containerfile", "xsabot.service", "xsabot-reconcile.service", "CI"} <= where
    assert {"xsabot", "xsabot-reconcile", "xsabot-reconcile-sharded"} <= where


@pytest.mark.parametrize("where,argv", _command_lines(), ids=[w for w, _ in _command_lines()])
def test_every_command_and_option_exists(where: str, argv: list[str]) -> None:
    """Parsed by the real parser: a renamed option or subcommand fails here, not in a
    cluster. Literal shards are valid K/N; values taken from the environment are left."""
    parser = build_parser(argv[0])
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # argparse printed why
        pytest.fail(f"{where}: xsabot {shlex.join(argv)} does not parse")
    shard = getattr(args, "shard", None)
    if shard is not None and "$" not in shard:
        assert SHARD.match(shard), where
    if args.command == "serve":  # where the probes, the Service and the health check look
        assert argv[argv.index("--listen") + 1].endswith(":8080"), where


def test_a_renamed_option_would_fail() -> None:
    """The check above is real: the parser refuses what does not exist."""
    with pytest.raises(SystemExit):
        build_parser("reconcile").parse_args(["reconcile", "--shards", "0/2"])


# -- Kubernetes ---------------------------------------------------------------------------


def test_kubernetes_kinds_names_and_kustomization() -> None:
    docs = _kube_docs()
    assert docs
    names: dict[str, set[str]] = {}
    for path, doc in docs:
        assert (doc["apiVersion"], doc["kind"]) in KINDS, path
        if doc["kind"] != "Kustomization":
            assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", doc["metadata"]["name"]), path
            names.setdefault(doc["kind"], set()).add(doc["metadata"]["name"])
    [kustomization] = [d for _, d in docs if d["kind"] == "Kustomization"]
    listed = set(kustomization["resources"])
    text = (KUBE / "kustomization.yaml").read_text()
    for path in KUBE.glob("*.yaml"):
        if path.name != "kustomization.yaml":  # listed, or there to be uncommented
            assert path.name in listed or f"# - {path.name}" in text, path.name
    assert all((KUBE / name).is_file() for name in listed)
    # Every reference inside a pod resolves to an object defined here.
    for name, spec in _pod_specs():
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec.get("initContainers", []) + spec["containers"]:
            for mount in container["volumeMounts"]:
                assert mount["name"] in volumes, (name, mount)
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in names["ConfigMap"]
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert claim in names["PersistentVolumeClaim"]
            if "secret" in volume:
                assert volume["secret"]["secretName"] in names["Secret"]
            if "configMap" in volume:
                assert volume["configMap"]["name"] in names["ConfigMap"]
        assert spec["securityContext"]["runAsNonRoot"] is True


def test_the_deployment_serves_one_replica_with_both_probes() -> None:
    [deployment] = [d for _, d in _kube_docs() if d["kind"] == "Deployment"]
    [service] = [d for _, d in _kube_docs() if d["kind"] == "Service"]
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    [serve] = [c for c in spec["template"]["spec"]["containers"] if c["name"] == "xsabot"]
    assert serve["args"][0] == "serve"
    listen = serve["args"][serve["args"].index("--listen") + 1]
    [port] = serve["ports"]
    assert listen == f"0.0.0.0:{port['containerPort']}"
    assert serve["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert serve["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]


def test_the_sharded_cronjob_covers_every_shard() -> None:
    [job] = [
        d["spec"]["jobTemplate"]["spec"]
        for _, d in _kube_docs()
        if d.get("metadata", {}).get("name") == "xsabot-reconcile-sharded"
    ]
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"]
    [container] = job["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["SHARDS"]["value"] == str(job["completions"])
    assert "job-completion-index" in env["SHARD"]["valueFrom"]["fieldRef"]["fieldPath"]
    args = container["args"]
    assert args[args.index("--shard") + 1] == "$(SHARD)/$(SHARDS)"
    # Each shard has a state dir of its own.
    assert "$(SHARD)" in args[args.index("--state") + 1]


def test_the_embedded_config_loads(tmp_path: Path) -> None:
    [configmap] = [d for _, d in _kube_docs() if d["kind"] == "ConfigMap"]
    path = tmp_path / "xsabot.yaml"
    path.write_text(configmap["data"]["xsabot.yaml"])
    config = load_config(path)
    assert config.forge.token_file == "/run/secrets/xsabot/forge-token"
    mounts = {
        m["mountPath"]
        for _, spec in _pod_specs()
        for c in spec["containers"]
        for m in c["volumeMounts"]
    }
    assert str(Path(config.forge.token_file).parent) in mounts
    assert str(config.manifests.parent) in mounts


# -- GitLab CI ----------------------------------------------------------------------------


def test_the_gitlab_ci_template() -> None:
    ci = YAML(typ="safe").load(GITLAB_CI.read_text())
    jobs = {k: v for k, v in ci.items() if isinstance(v, dict) and "script" in v}
    commands = {k: " ".join(v["script"]) for k, v in jobs.items()}
    on_mr = {k for k, v in jobs.items() if "merge_request_event" in str(v["rules"])}
    scheduled = {k for k, v in jobs.items() if '"schedule"' in str(v["rules"])}
    assert {"xsabot lint", "xsabot plan --mr"} <= {
        c.split(" --state")[0] for k, c in commands.items() if k in on_mr
    }
    assert any(commands[k].startswith("xsabot reconcile") for k in scheduled)
    assert not on_mr & scheduled
    for body in jobs.values():
        assert body["extends"] == ".xsabot"
    assert "include:" in GITLAB_CI.read_text()  # how to include it, in one line


def test_the_ci_shard_expression_gives_every_shard_once() -> None:
    """`parallel:` numbers jobs from 1; the shards go from 0: the shell arithmetic in the
    template, run by a real shell for each job of `parallel: 4`."""
    ci = YAML(typ="safe").load(GITLAB_CI.read_text())
    job = ci[".xsabot-reconcile-sharded"]
    [line] = job["script"]
    expression = re.search(r'--shard ("[^"]+")', line)
    assert expression
    total = job["parallel"]
    shards = [
        subprocess.run(
            ["sh", "-c", f"echo {expression[1]}"],
            env={"CI_NODE_INDEX": str(i), "CI_NODE_TOTAL": str(total), "PATH": os.defpath},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for i in range(1, total + 1)
    ]
    assert shards == [f"{k}/{total}" for k in range(total)]


# -- the Containerfile --------------------------------------------------------------------


def test_the_containerfile_copies_files_that_exist_and_runs_as_a_user() -> None:
    copies = _instruction("COPY")
    assert copies
    for args in copies:
        *sources, _ = args.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
    assert "pip install --no-cache-dir ." in " ".join(_instruction("RUN"))
    packages = " ".join(_instruction("RUN"))
    assert {"git", "bubblewrap"} <= set(packages.split())
    [user] = _instruction("USER")
    assert user not in ("root", "0")
    [volume] = _instruction("VOLUME")
    import json

    cmd = json.loads(_instruction("CMD")[0])
    assert json.loads(volume) == [cmd[cmd.index("--state") + 1]]
    [expose] = _instruction("EXPOSE")
    assert cmd[cmd.index("--listen") + 1] == f"0.0.0.0:{expose}"
    # The console script the entry point names is the package's.
    assert 'xsabot = "bot.cli.main:main"' in (ROOT / "pyproject.toml").read_text()


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _healthcheck_argv(port: int, path: str = "/healthz") -> list[str]:
    import json

    [check] = _instruction("HEALTHCHECK")
    argv = json.loads(check.partition("CMD")[2])
    assert argv[0] == "python3" and "http://127.0.0.1:8080/healthz" in argv[-1]
    argv[-1] = argv[-1].replace("127.0.0.1:8080/healthz", f"127.0.0.1:{port}{path}")
    return [sys.executable, *argv[1:]]


def test_the_health_check_passes_on_200_and_fails_otherwise() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        assert subprocess.run(_healthcheck_argv(port), capture_output=True).returncode == 0
        missing = _healthcheck_argv(port, "/nothing")
        assert subprocess.run(missing, capture_output=True).returncode != 0
    finally:
        server.shutdown()
    # Nobody listening: fails too.
    assert subprocess.run(_healthcheck_argv(port), capture_output=True).returncode != 0


def test_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed")
    proc = subprocess.run([hadolint, str(CONTAINERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _container_engine() -> str | None:
    for engine in ("podman", "docker"):
        path = shutil.which(engine)
        if path and subprocess.run([path, "info"], capture_output=True).returncode == 0:
            return path
    return None


def test_the_image_builds_and_runs() -> None:
    engine = _container_engine()
    if engine is None:
        pytest.skip("no container engine that runs (podman or docker with its daemon)")
    tag = "localhost/xsabot-test:latest"
    build = [engine, "build", "-f", str(CONTAINERFILE), "-t", tag, str(ROOT)]
    proc = subprocess.run(build, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    try:
        run = subprocess.run(
            [engine, "run", "--rm", tag, "--version"], capture_output=True, text=True, timeout=120
        )
        from bot import __version__

        assert run.returncode == 0 and run.stdout.strip() == f"xsabot {__version__}", run
        whoami = [engine, "run", "--rm", "--entrypoint", "id", tag, "-u"]
        assert subprocess.run(whoami, capture_output=True, text=True).stdout.strip() != "0"
    finally:
        subprocess.run([engine, "rmi", "-f", tag], capture_output=True)


# -- systemd ------------------------------------------------------------------------------


def _unit(path: Path) -> dict[str, list[str]]:
    """key -> values of a unit file (every section; keys may repeat)."""
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_the_service_units_are_hardened() -> None:
    for name in ("xsabot.service", "xsabot-reconcile.service"):
        unit = _unit(SYSTEMD / name)
        for key, value in {
            "DynamicUser": "yes",
            "StateDirectory": "xsabot",
            "ProtectSystem": "strict",
            "ProtectHome": "yes",
            "PrivateTmp": "yes",
            "NoNewPrivileges": "yes",
            "SystemCallFilter": "@system-service",
            "CapabilityBoundingSet": "",
            "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        }.items():
            assert unit.get(key, [None])[0] == value, (name, key)
        assert any(c.startswith("forge-token:") for c in unit["LoadCredential"])
    assert _unit(SYSTEMD / "xsabot-reconcile.timer")["OnUnitInactiveSec"]


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """Every unit passes `systemd-analyze verify` with no word of warning (an unknown key is
    only a warning). The executables are pointed at ones that exist here."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    stub = tmp_path / "xsabot"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    git = shutil.which("git")
    assert git
    units = []
    for path in sorted(SYSTEMD.iterdir()):
        text = path.read_text().replace("/usr/local/bin/xsabot", str(stub))
        (tmp_path / path.name).write_text(text.replace("/usr/bin/git", git))
        units.append(str(tmp_path / path.name))
    proc = subprocess.run([analyze, "verify", "--man=no", *units], capture_output=True, text=True)
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), proc.stderr
    # The hardening as systemd rates it: "OK" or better for both services.
    for name in ("xsabot.service", "xsabot-reconcile.service"):
        rated = subprocess.run(
            [analyze, "security", "--offline=true", str(tmp_path / name)],
            capture_output=True,
            text=True,
        )
        level = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", rated.stdout)
        assert level and level[2] in ("SAFE", "OK"), rated.stdout[-500:]


def test_systemd_verify_would_catch_a_typo(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    unit = tmp_path / "xsabot-manifests.service"
    unit.write_text((SYSTEMD / unit.name).read_text().replace("PrivateTmp=", "PrivateTemp="))
    proc = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True)
    assert b"PrivateTemp" in proc.stdout + proc.stderr


# -- the config reference ------------------------------------------------------------------

BEGIN = "<!-- config reference: generated from bot/config.py by `python3 -m tests.test_deploy` -->"
END = "<!-- end of the config reference -->"


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        kinds = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(kinds)  # an optional key: its default says `none`
    if origin in (tuple, list, set, frozenset):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {_type_name(args[1])}"
    if isinstance(tp, type):
        return {"str": "text", "float": "number", "int": "integer", "bool": "boolean"}.get(
            tp.__name__, "path" if issubclass(tp, os.PathLike) else tp.__name__
        )
    return str(tp).replace("typing.", "")


def _model_in(tp: Any) -> tuple[type[BaseModel], str] | None:
    """The model a field holds: itself, or as the values of a mapping or items of a list."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _model_in(args[0])
    if origin in (typing.Union, types.UnionType):
        found = [m for a in args if a is not type(None) and (m := _model_in(a))]
        return found[0] if len(found) == 1 else None
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp, "."
    if origin is dict and _model_in(args[1]):
        return _model_in(args[1])[0], ".<name>."  # type: ignore[index]
    if origin in (tuple, list) and args and _model_in(args[0]):
        return _model_in(args[0])[0], "[]."  # type: ignore[index]
    return None


def _default(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default if field.default_factory is None else field.default_factory()
    if isinstance(value, BaseModel) or (isinstance(value, dict) and value):
        return "see below"
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)) and not value:
        return "`[]`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _rows(model: type[BaseModel], prefix: str) -> Iterator[str]:
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)  # the YAML key (`from`, not `sender`)
        assert field.description, f"{model.__name__}.{name} has no description"
        description = " ".join(field.description.split()).replace("|", "\\|")
        nested = _model_in(field.annotation)
        yield f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {description} |"
        if nested is not None:
            yield from _rows(nested[0], key + nested[1])


def config_reference() -> str:
    """The Markdown table of every config key, from the model: key, type, default, meaning."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|", *_rows(Config, "")]
    return "\n".join([BEGIN, *lines, END])


def _documented() -> str:
    text = OPERATING.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end]


def test_operating_md_documents_every_config_option() -> None:
    assert _documented() == config_reference(), (
        "docs/operating.md's config reference is not the config model's: "
        "run `python3 -m tests.test_deploy` and review the diff"
    )


def test_every_field_of_every_model_is_a_row() -> None:
    """The generator misses no model: every field of every model reachable from Config."""
    seen: set[type[BaseModel]] = set()

    def walk(model: type[BaseModel]) -> Iterator[str]:
        seen.add(model)
        for name, field in model.model_fields.items():
            yield field.alias or name
            nested = _model_in(field.annotation)
            if nested and nested[0] not in seen:
                yield from walk(nested[0])

    reference = config_reference()
    for name in walk(Config):
        assert re.search(rf"`[^`]*\b{re.escape(name)}` \|", reference), name
    assert len(seen) >= 4  # Config, Identity, Tree, ForgeConfig at least


def _write_reference() -> None:
    text = OPERATING.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    OPERATING.write_text(text[:start] + config_reference() + text[end:])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="rewrite docs/operating.md's config reference")
    parser.parse_args()
    _write_reference()
    print(f"wrote the config reference into {OPERATING.relative_to(ROOT)}")
