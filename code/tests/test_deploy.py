"""The deployment examples (docs/deploy/) name the relay's own ports,
paths and variables, with values it accepts: they cannot rot. Kubernetes
is checked by reading; the Sentinel topology runs for real in
test_redis_topologies.py."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from relay import routes
from relay.redis_url import target
from relay.settings import Settings

DEPLOY = Path(__file__).parents[2] / "docs" / "deploy"
KNOWN = {f.metadata["env"] for f in fields(Settings)}
PORT = int(Settings().bind.rpartition(":")[2])


def documents(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((DEPLOY / name).read_text()))


def test_kubernetes_matches_the_relay() -> None:
    kinds = {doc["kind"]: doc for doc in documents("kubernetes.yaml")}
    assert set(kinds) == {"Deployment", "Service", "PodDisruptionBudget",
                          "HorizontalPodAutoscaler"}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (relay,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in relay["ports"]}
    assert ports["http"] == PORT
    env = {e["name"]: e for e in relay["env"]}
    assert set(env) <= KNOWN, set(env) - KNOWN
    assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"]  # from a Secret
    values = {n: e["value"] for n, e in env.items() if "value" in e}
    settings = Settings.from_env(values)  # values the relay accepts
    assert ports["metrics"] == int(settings.metrics_bind.rpartition(":")[2])
    live, ready = relay["livenessProbe"], relay["readinessProbe"]
    assert f"GET {live['httpGet']['path']}" in routes.ROUTES
    assert live["httpGet"]["path"] == "/watchdog"
    assert live["httpGet"]["httpHeaders"][0]["name"] == "Health-Check"
    assert ready["httpGet"]["path"] == "/ready"
    assert f"GET {ready['httpGet']['path']}" in routes.ROUTES
    # A stopping pod may finish what it holds: the graceful timeout.
    assert pod["terminationGracePeriodSeconds"] >= settings.request_budget + 5
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert relay["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"mountPath": "/tmp", "name": "tmp"} in relay["volumeMounts"]
    service = kinds["Service"]["spec"]["ports"][0]
    assert service["targetPort"] == "http"
    selector = kinds["Deployment"]["spec"]["selector"]["matchLabels"]
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] \
        == selector
    assert kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"][
        "name"] == kinds["Deployment"]["metadata"]["name"]


def test_the_sentinel_compose_names_real_settings_and_sentinels() -> None:
    (compose,) = documents("compose-sentinel.yaml")
    env = compose["services"]["relay"]["environment"]
    assert set(env) <= KNOWN, set(env) - KNOWN
    Settings.from_env(env)
    where = target(env["REDIS_URL"])
    assert where.kind == "sentinel" and where.master == "relay"
    sentinels = {f"{host}:{port}" for host, port in where.nodes}
    assert sentinels == {f"{name}:26379" for name in compose["services"]
                         if name.startswith("sentinel-")}
    command = compose["services"]["sentinel-1"]["command"][0]
    assert f"sentinel monitor {where.master} redis-primary 6379" in command
