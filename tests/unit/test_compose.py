"""compose.yaml, checked without a Docker engine.

No registry package ships the Compose Specification's JSON schema in a form we can depend
on, so tests/data/compose-min.schema.json states the subset and the rules this project relies
on; the tests below check what a schema cannot: that compose.yaml agrees with the code.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from ctl.asterisk.config import PROJECT_DIR, layout
from ctl.asterisk.provision import PACKAGES, Installation
from ctl.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
SCHEMA = REPO / "tests/data/compose-min.schema.json"
INTERPOLATION = re.compile(r"\$\{([^}]*)\}")
Doc = dict[str, Any]


@pytest.fixture
def compose() -> Doc:
    doc: Doc = yaml.safe_load(COMPOSE.read_text())
    return doc


@pytest.fixture
def ctl_settings(compose: Doc, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings ctl starts with in compose, from its environment alone."""
    for name in list(os.environ):
        if name.startswith("CTL_"):
            monkeypatch.delenv(name)
    for name, value in compose["services"]["ctl"]["environment"].items():
        monkeypatch.setenv(name, INTERPOLATION.sub("placeholder", str(value)))
    return Settings()


def schema_errors(doc: Doc) -> list[str]:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}"
        for e in validator.iter_errors(doc)
    ]


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA.read_text()))


def test_compose_matches_schema(compose: Doc) -> None:
    assert schema_errors(compose) == []


def _drop(*path: str) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        for key in path[:-1]:
            doc = doc[key]
        del doc[path[-1]]

    return change


def _set(*path: str, value: Any) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        for key in path[:-1]:
            doc = doc[key]
        doc[path[-1]] = value

    return change


def _publish_asterisk(port: str) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        del doc["services"]["asterisk"]["network_mode"]
        doc["services"]["asterisk"]["ports"] = [port]

    return change


MISTAKES = {
    "literal password": _set(
        "services", "postgres", "environment", "POSTGRES_PASSWORD", value="hunter2"
    ),
    "password with a default": _set(
        "services",
        "postgres",
        "environment",
        "POSTGRES_PASSWORD",
        value="${POSTGRES_PASSWORD:-hunter2}",
    ),
    "literal password in a URL": _set(
        "services",
        "ctl",
        "environment",
        "CTL_DATABASE_URL",
        value="postgresql+asyncpg://ctl:hunter2@127.0.0.1:5432/ctl",
    ),
    "AMI on all interfaces": _publish_asterisk("5038:5038"),
    "ARI on 0.0.0.0": _publish_asterisk("0.0.0.0:8088:8088/tcp"),
    "ports with host networking": _set("services", "asterisk", "ports", value=["5060:5060/udp"]),
    "redis on all interfaces": _set("services", "redis", "ports", value=["6379:6379"]),
    "service missing": _drop("services", "redis"),
    "no healthcheck": _drop("services", "redis", "healthcheck"),
    "neither image nor build": _drop("services", "asterisk", "build"),
    "depends_on without conditions": _set(
        "services", "ctl", "depends_on", value=["postgres", "redis"]
    ),
    "ctl not waiting for a healthy database": _set(
        "services", "ctl", "depends_on", "postgres", "condition", value="service_started"
    ),
    "misspelt key": _set("services", "ctl", "healthcheck", "intervall", value="10s"),
}


@pytest.mark.parametrize("change", MISTAKES.values(), ids=MISTAKES.keys())
def test_schema_rejects(compose: Doc, change: Callable[[Doc], None]) -> None:
    broken = copy.deepcopy(compose)
    change(broken)
    assert schema_errors(broken)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def test_interpolations_are_required(compose: Doc) -> None:
    # ${VAR} or ${VAR:-x} would start the stack with an empty or default secret.
    refs = [ref for text in _strings(compose) for ref in INTERPOLATION.findall(text)]
    assert refs
    for ref in refs:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*:\?.+", ref), f"${{{ref}}} is not required"


def _builds(compose: Doc) -> Iterator[tuple[str, Path, Path]]:
    for name, service in compose["services"].items():
        if "build" in service:
            context = (COMPOSE.parent / service["build"]["context"]).resolve()
            yield name, context, context / service["build"].get("dockerfile", "Dockerfile")


def test_build_files_exist(compose: Doc) -> None:
    builds = list(_builds(compose))
    assert {name for name, _, _ in builds} == {"asterisk", "ctl"}
    for name, context, dockerfile in builds:
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        if context == REPO:  # the whole checkout: keep the installer's .env out of the image
            ignored = (context / ".dockerignore").read_text().split()
            assert {".env", ".git", ".venv"} <= set(ignored)


def test_asterisk_image_installs_the_provisioned_packages(compose: Doc) -> None:
    dockerfile = {n: d for n, _, d in _builds(compose)}["asterisk"]
    script = dockerfile.read_text().replace("\\\n", " ")
    installs = re.search(r"apt-get install ([^&\n]*)", script)
    assert installs, f"{dockerfile} runs no apt-get install"
    assert set(PACKAGES) <= set(installs.group(1).split())


def setting_variables(model: type[BaseModel], prefix: str = "CTL_") -> set[str]:
    names = set()
    for field, info in model.model_fields.items():
        name = prefix + field.upper()
        names.add(name)
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names |= setting_variables(kind, name + "__")
    return names


def test_ctl_variables_are_settings(compose: Doc) -> None:
    known = setting_variables(Settings)
    assert "CTL_ASTERISK__HTTP_PORT" in known
    used = {
        name
        for service in compose["services"].values()
        for name in service.get("environment", {})
        if name.startswith("CTL_")
    }
    assert used
    assert sorted(used - known) == []


def test_ctl_environment_is_valid(ctl_settings: Settings) -> None:
    assert ctl_settings.db_url.startswith("postgresql+asyncpg://")


def _volume(service: Doc, target: str) -> str | None:
    for mount in service.get("volumes", []):
        source, _, rest = mount.partition(":")
        if rest.split(":")[0] == target:
            return source
    return None


def test_asterisk_runs_the_configuration_ctl_renders(compose: Doc, ctl_settings: Settings) -> None:
    services = compose["services"]
    data_dir = str(ctl_settings.data_dir)
    volume = _volume(services["ctl"], data_dir)
    assert volume in compose["volumes"], f"ctl's {data_dir} is not a named volume"
    assert _volume(services["asterisk"], data_dir) == volume
    conf = layout(ctl_settings, Installation("asterisk", None, None, None)).conf
    assert f"-C {conf}" in " ".join(services["asterisk"]["command"])
    assert conf in services["asterisk"]["healthcheck"]["test"]


def _published(service: Doc) -> Iterator[tuple[str, int, int]]:
    """(host address, host port, container port) of each short-syntax mapping."""
    for port in service.get("ports", []):
        *host, container = port.split("/")[0].split(":")
        host_ip = host[0] if len(host) == 2 else "0.0.0.0"
        first = int(container.split("-")[0])
        yield host_ip, int(host[-1].split("-")[0]) if host else first, first


def test_asterisk_admin_interfaces_stay_on_loopback(compose: Doc, ctl_settings: Settings) -> None:
    admin = {
        ctl_settings.asterisk.http_port: "http.conf.j2",
        ctl_settings.asterisk.ami_port: "manager.conf.j2",
    }
    for service in compose["services"].values():
        for host_ip, _, port in _published(service):
            assert port not in admin or host_ip == "127.0.0.1", service
    if compose["services"]["asterisk"].get("network_mode") == "host":
        # Nothing is published: the rendered configuration alone keeps ARI/AMI private.
        for template in admin.values():
            text = (PROJECT_DIR / "asterisk-conf" / template).read_text()
            assert re.search(r"^bindaddr\s*=\s*127\.0\.0\.1\s*$", text, re.M), template


def test_ctl_reaches_what_it_depends_on(compose: Doc, ctl_settings: Settings) -> None:
    services = compose["services"]
    ctl = services["ctl"]
    # ctl talks to ARI/AMI on 127.0.0.1: it must share Asterisk's network namespace.
    assert ctl.get("network_mode") == services["asterisk"].get("network_mode") == "host"
    for url, name in ((ctl_settings.database_url, "postgres"), (ctl_settings.redis_url, "redis")):
        assert url and name in ctl["depends_on"]
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1", url
        published = {(ip, port) for ip, port, _ in _published(services[name])}
        assert ("127.0.0.1", parts.port) in published, (name, url)
    health = " ".join(ctl["healthcheck"]["test"])
    assert f"//127.0.0.1:{ctl_settings.http_port}/healthz" in health


def test_dependencies_exist(compose: Doc) -> None:
    services = compose["services"]
    for name, service in services.items():
        for target in service.get("depends_on", {}):
            assert target in services and target != name, (name, target)
