"""The deployment files, checked without a container engine: docker-compose.yml against
the Compose Specification's JSON schema (vendored in tests/data), the Dockerfile and the
systemd unit parsed for what they must say."""

from __future__ import annotations

import configparser
import ipaddress
import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from callscreen.core.config import Settings
from callscreen.gateway.serve import descriptors_needed

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SPOOL = "/var/spool/asterisk/outgoing"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def setting_names() -> set[str]:
    """Every setting callscreen reads."""
    return set(Settings.model_fields)


def spec_validator() -> jsonschema.protocols.Validator:
    """The schema declares draft 2019-09 (as ``http://…/schema#``, a spelling jsonschema
    does not look up by itself)."""
    schema = json.loads((DATA / "compose-spec.json").read_text())
    assert "2019-09" in schema["$schema"]
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def test_compose_file_is_valid_against_the_compose_specification(
    compose: dict[str, Any],
) -> None:
    validator = spec_validator()
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_does_catch_mistakes(compose: dict[str, Any]) -> None:
    validator = spec_validator()
    broken = json.loads(json.dumps(compose))
    broken["services"]["redis"]["restart_policy"] = "always"  # not a service key
    broken["services"]["callscreen"]["depends_on"] = {"redis": {"condition": "healthy"}}
    assert len(list(validator.iter_errors(broken))) >= 2


def test_compose_redis_persists_to_an_append_only_file_on_a_volume(
    compose: dict[str, Any],
) -> None:
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    volume, _, target = redis["volumes"][0].partition(":")
    assert target == "/data" and volume in compose["volumes"]  # a named volume


def test_compose_callscreen_points_at_redis_and_shares_the_spool(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    gateway = services["callscreen"]
    env = gateway["environment"]
    assert env["CALLSCREEN_REDIS_URL"] == "redis://redis:6379/0"
    assert env["CALLSCREEN_LISTEN_HOST"] == "0.0.0.0"
    assert env["CALLSCREEN_LISTEN_PORT"] == "4573"
    assert env["CALLSCREEN_AMI_HOST"] == "asterisk"
    # every variable names a setting callscreen reads (no typo goes unnoticed)
    known = setting_names()
    for name in env:
        assert name.startswith("CALLSCREEN_") and name[11:].lower() in known, name
    assert gateway["depends_on"]["redis"]["condition"] == "service_healthy"
    assert gateway["build"] == "." and (ROOT / "Dockerfile").is_file()
    assert env["CALLSCREEN_SPOOL_DIR"] == SPOOL
    assert f"asterisk-spool:{SPOOL}" in gateway["volumes"]
    asterisk = services["asterisk"]
    assert f"asterisk-spool:{SPOOL}" in asterisk["volumes"]
    assert "asterisk-spool" in compose["volumes"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in asterisk["volumes"]}
    assert mounts["./asterisk"].startswith("/etc/asterisk/")
    assert (ROOT / "asterisk" / "extensions_callscreen.conf").is_file()
    manager = ROOT / "deploy" / "asterisk" / "manager_callscreen.conf"
    assert mounts["./deploy/asterisk"].startswith("/etc/asterisk/") and manager.is_file()
    # the stop grace outlasts the gateway's own
    grace = int(env["CALLSCREEN_SHUTDOWN_GRACE_S"])
    assert int(gateway["stop_grace_period"].rstrip("s")) > grace


def test_compose_allows_only_its_own_fixed_subnet_and_enough_descriptors(
    compose: dict[str, Any],
) -> None:
    [pool] = compose["networks"]["callscreen"]["ipam"]["config"]
    subnet = pool["subnet"]
    assert subnet == "${CALLSCREEN_SUBNET:-172.28.73.0/24}"
    for service in compose["services"].values():
        assert service["networks"] == ["callscreen"]
    env = compose["services"]["callscreen"]["environment"]
    assert env["CALLSCREEN_ALLOWED_CLIENTS"] == env["CALLSCREEN_OPTOUT_CLIENTS"] == subnet
    nofile = compose["services"]["callscreen"]["ulimits"]["nofile"]
    assert nofile["soft"] == nofile["hard"] >= descriptors_needed(Settings(_env_file=None))


def test_the_ami_user_has_what_callscreen_needs() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=(";",))
    parser.read(ROOT / "deploy" / "asterisk" / "manager_callscreen.conf")
    user = parser["callscreen"]
    assert user["read"].split(",") == ["call"]
    assert set(user["write"].split(",")) == {"call", "reporting"}


def test_the_ami_user_receives_only_the_events_the_outcome_watcher_reads() -> None:
    """Asterisk's advanced event filters (name match, no regex): DialBegin, DialEnd and
    Hangup, nothing else of the "call" class; no "dialplan" class at all."""
    text = (ROOT / "deploy" / "asterisk" / "manager_callscreen.conf").read_text()
    filters = [line for line in text.splitlines() if line.startswith("eventfilter")]
    names = ("DialBegin", "DialEnd", "Hangup")
    assert filters == [f"eventfilter(action(include),name({name})) =" for name in names]
    outcomes = (ROOT / "src" / "callscreen" / "gateway" / "outcomes.py").read_text()
    for name in ("dialbegin", "dialend", "hangup"):
        assert f'"{name}"' in outcomes


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile: comments dropped, continuations joined."""
    lines: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        text = (pending + raw).strip()
        pending = ""
        word, _, rest = text.partition(" ")
        lines.append((word.upper(), rest.strip()))
    assert not pending, "a continuation line ends the Dockerfile"
    return lines


def exec_form(arguments: str) -> list[str]:
    if arguments.startswith("["):
        value = json.loads(arguments)
        assert isinstance(value, list)
        return [str(part) for part in value]
    return shlex.split(arguments)


def test_dockerfile_builds_from_python_slim_and_runs_callscreen_serve() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    names = [name for name, _ in instructions]
    entry = next((exec_form(a) for n, a in reversed(instructions) if n == "ENTRYPOINT"), [])
    cmd = next((exec_form(a) for n, a in reversed(instructions) if n == "CMD"), [])
    assert entry + cmd == ["callscreen", "serve"]
    exposed = [a.split() for n, a in instructions if n == "EXPOSE"]
    assert ["4573", "8573"] in exposed
    env = " ".join(a for n, a in instructions if n == "ENV")
    assert re.search(r"CALLSCREEN_LISTEN_HOST=0\.0\.0\.0\b", env)
    # never open to the Internet by default: private and loopback networks only
    allowed = re.search(r"CALLSCREEN_ALLOWED_CLIENTS=(\S+)", env)
    assert allowed is not None
    networks = [ipaddress.ip_network(n) for n in allowed.group(1).split(",")]
    assert networks and all(n.is_private for n in networks)
    assert any(n == "RUN" and 'pip install ".[api]"' in a for n, a in instructions)
    for name, arguments in instructions:
        if name == "COPY":
            *sources, _target = arguments.split()
            for source in sources:
                assert (ROOT / source).exists(), source
    assert names.index("USER") > names.index("RUN")  # not root at run time
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_systemd_unit_restarts_on_failure_and_stops_gracefully() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(ROOT / "deploy" / "callscreen.service")
    service = parser["Service"]
    assert service["Restart"] == "on-failure"
    assert service["WorkingDirectory"] == "/etc/callscreen"  # settings in its .env
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > Settings().shutdown_grace_s
    command = shlex.split(service["ExecStart"])
    assert Path(command[0]).name == "callscreen" and command[1:] == ["serve"]
    assert SPOOL in service["ReadWritePaths"].split()
    assert parser["Install"]["WantedBy"] == "multi-user.target"


def test_compose_api_is_published_on_loopback_only(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["image"] == compose["services"]["callscreen"]["image"]
    assert api["command"] == ["api"]
    env = api["environment"]
    known = setting_names()
    for name in env:
        assert name.startswith("CALLSCREEN_") and name[11:].lower() in known, name
    assert env["CALLSCREEN_REDIS_URL"] == "redis://redis:6379/0"
    assert env["CALLSCREEN_API_HOST"] == "0.0.0.0" and env["CALLSCREEN_API_PORT"] == "8573"
    assert api["ports"] == ["127.0.0.1:8573:8573"]  # never on every interface of the host
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    # the API queues cascades for the gateway: it never touches Asterisk's spool
    assert not any(SPOOL in volume for volume in api["volumes"])
    assert "CALLSCREEN_SPOOL_DIR" not in env
    # uploads on a named volume, at the data directory the image makes for the user
    assert f"api-data:{env['CALLSCREEN_API_DATA_DIR']}" in api["volumes"]
    assert "api-data" in compose["volumes"]
    assert "install -d -o callscreen -g callscreen /var/lib/callscreen-api" in " ".join(
        a for n, a in dockerfile_instructions() if n == "RUN"
    )


def test_systemd_unit_of_the_api() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(ROOT / "deploy" / "callscreen-api.service")
    service = parser["Service"]
    command = shlex.split(service["ExecStart"])
    assert Path(command[0]).name == "callscreen" and command[1:] == ["api"]
    assert service["Restart"] == "on-failure"
    assert service["WorkingDirectory"] == "/etc/callscreen"  # the gateway's .env
    assert service["KillSignal"] == "SIGTERM"
    # the API queues cascades for the gateway: no spool to write, no asterisk group
    assert "ReadWritePaths" not in service and "Group" not in service
    # the data directory is the one systemd makes writable
    assert service["Environment"] == "CALLSCREEN_API_DATA_DIR=/var/lib/callscreen-api"
    assert service["StateDirectory"] == "callscreen-api"
    assert parser["Install"]["WantedBy"] == "multi-user.target"
