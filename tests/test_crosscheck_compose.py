"""compose.yaml: cross-check mode wired with etcd and ZooKeeper. No docker engine here, so the file
is checked as YAML and as a compose structure, and zetcd's command line is parsed by zetcd's own
CLI."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import typer
import yaml

from zetcd.cli import app, translate_go_flags

COMPOSE = Path(__file__).resolve().parent.parent / "compose.yaml"


def load() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def zetcd_args(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    assert command[:2] == ["sh", "-c"]
    script = command[2].replace("$${ZETCD_ORACLE:-zk}", "zk")
    words = shlex.split(script)
    start = words.index("exec") + 1
    assert words[start] == "zetcd"
    return words[start + 1 :]


def test_services_and_images() -> None:
    services = load()["services"]
    assert set(services) == {"etcd", "zookeeper", "zetcd"}
    assert services["etcd"]["image"].startswith("quay.io/coreos/etcd:")
    assert services["zookeeper"]["image"] == "zookeeper:3.8"
    for name in ("etcd", "zookeeper"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"
    depends = services["zetcd"]["depends_on"]
    assert depends == {
        "etcd": {"condition": "service_healthy"},
        "zookeeper": {"condition": "service_healthy"},
    }
    assert services["zetcd"]["ports"] == ["2181:2181"]


def test_zookeeper_is_configured_like_the_test_oracle() -> None:
    env = load()["services"]["zookeeper"]["environment"]
    assert env["ZOO_TICK_TIME"] == "2000"
    assert "extendedTypesEnabled=true" in env["ZOO_CFG_EXTRA"]


def test_zetcd_command_is_cross_check_mode_and_parses() -> None:
    services = load()["services"]
    args = zetcd_args(services["zetcd"])
    command = typer.main.get_command(app)
    ctx = command.make_context("zetcd", translate_go_flags(args))
    params = ctx.params
    assert params["debug_zkbridge"] == "zookeeper:2181"
    assert params["debug_oracle"] == "zk"
    assert str(params["divergence_log"]).startswith("/reports/")
    assert params["zkaddr"] == "0.0.0.0:2181"
    etcd_command = services["etcd"]["command"]
    assert f"--advertise-client-urls={params['endpoints']}" in etcd_command
    assert any(v.endswith(":/reports") for v in services["zetcd"]["volumes"])
