"""deploy/k8s rendered by kustomize (kubectl's) and validated: built-in kinds by
kubernetes-validate (strict), custom resources against deploy/k8s/crd-schemas, and the rules of
issue 15 (probes, security contexts, PDBs, NetworkPolicies, no Secret in the base, monitoring)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs in the lock; used in this test only
import kubernetes_validate  # type: ignore[import-untyped]  # ships no py.typed
import pytest
import yaml

from .tools import DEPLOY, kubectl, run

K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.30"
OVERLAYS = ("managed", "operators")
SERVICES = {"gateway": 8000, "twin": 8001, "scheduler": 8002, "billing": 8003, "ingest": 8004}
Doc = dict[str, Any]


def render(target: str, tmp_path: Path) -> list[Doc]:
    """Render an overlay (or the base) from a copy whose secrets/ are the committed examples."""
    copy_root = tmp_path / "k8s"
    shutil.copytree(K8S, copy_root)
    for overlay in OVERLAYS:
        shutil.copytree(copy_root / "overlays" / overlay / "secrets.example",
                        copy_root / "overlays" / overlay / "secrets")
    out = run(kubectl(), "kustomize", str(copy_root / target))
    return [doc for doc in yaml.safe_load_all(out) if doc]


def closed(schema: Any) -> Any:
    """The schema as the API server applies it: unknown fields are not kept (refused here)."""
    if isinstance(schema, dict):
        schema = {key: closed(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [closed(item) for item in schema]
    return schema


def custom_schema(doc: Doc) -> Any | None:
    group_version = doc["apiVersion"].replace("/", "_")
    path = K8S / "crd-schemas" / f"{group_version}_{doc['kind']}.yaml"
    return closed(yaml.safe_load(path.read_text())) if path.exists() else None


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[Doc]:
    return render(f"overlays/{request.param}", tmp_path_factory.mktemp(request.param))


def by_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def test_every_object_validates(rendered: list[Doc]) -> None:
    """Built-in kinds against Kubernetes' schemas (strict: no unknown field), custom resources
    against their CRD schema; a kind with neither fails."""
    custom = 0
    for doc in rendered:
        schema = custom_schema(doc)
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if schema is not None:
            custom += 1
            errors = [f"{'.'.join(map(str, e.path))}: {e.message}"
                      for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
            assert not errors, f"{name}: {errors}"
        else:
            try:
                kubernetes_validate.validate(copy.deepcopy(doc), KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as err:
                pytest.fail(f"{name}: {'.'.join(map(str, err.path))}: {err.message}")
    kinds = {doc["kind"] for doc in rendered}
    assert {"ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PrometheusRule"} <= kinds
    assert custom >= 4


def test_a_custom_resource_with_a_misspelt_field_is_refused() -> None:
    """The check above can fail: an unknown field and a wrong type are both reported."""
    scaled = yaml.safe_load((K8S / "base" / "billing.yaml").read_text().split("---")[-2])
    assert scaled["kind"] == "ScaledObject"
    scaled["spec"]["maxReplicas"] = 20
    scaled["spec"]["minReplicaCount"] = "two"
    schema = custom_schema(scaled)
    messages = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(scaled)]
    assert any("maxReplicas" in m for m in messages) and any("'two'" in m for m in messages)


def test_the_base_applies_no_secret(tmp_path: Path) -> None:
    docs = render("base", tmp_path)
    assert not [d for d in docs if d["kind"] == "Secret"]


def test_every_service_has_probes_security_and_a_pdb(rendered: list[Doc]) -> None:
    deployments = by_kind(rendered, "Deployment")
    pdbs = {pdb["spec"]["selector"]["matchLabels"]["app"] for pdb in by_kind(rendered, "PodDisruptionBudget").values()}
    for name in SERVICES:
        spec = deployments[name]["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        (container,) = spec["containers"]
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        # the start-up budget covers a slow migration: at least 5 minutes
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
        assert name in pdbs
    for deployment in deployments.values():
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, deployment["metadata"]["name"]
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert "startupProbe" in container, container["name"]


def test_only_the_gateway_and_the_broker_tls_port_are_open_to_everyone(rendered: list[Doc]) -> None:
    policies = by_kind(rendered, "NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    open_to_all = set()
    for policy in policies.values():
        for rule in policy["spec"].get("ingress", []):
            if "from" not in rule:
                app = policy["spec"]["podSelector"]["matchLabels"]["app"]
                open_to_all |= {(app, port["port"]) for port in rule["ports"]}
    assert open_to_all == {("gateway", 8000), ("mosquitto", 8883)}
    callers = {app: {peer["podSelector"]["matchLabels"]["app"]
                     for rule in policies[f"{app}-from-{suffix}"]["spec"]["ingress"]
                     for peer in rule["from"] if "podSelector" in peer}
               for app, suffix in (("twin", "callers"), ("scheduler", "gateway"), ("billing", "gateway"))}
    assert callers == {"twin": {"gateway", "scheduler", "billing", "ingest", "mosquitto"},
                       "scheduler": {"gateway"}, "billing": {"gateway"}}


def test_the_broker_serves_tls_and_the_ingest_gateway_has_its_password(rendered: list[Doc]) -> None:
    mosquitto = by_kind(rendered, "Deployment")["mosquitto"]["spec"]["template"]["spec"]
    assert mosquitto["shareProcessNamespace"] is True
    assert [c["name"] for c in mosquitto["containers"]] == ["mosquitto", "broker-auth"]
    secrets = by_kind(rendered, "Secret")
    tls = next(v for v in mosquitto["volumes"] if v["name"] == "tls")["secret"]["secretName"]
    assert secrets[tls]["type"] == "kubernetes.io/tls"
    config = next(c for c in by_kind(rendered, "ConfigMap").values()
                  if c["metadata"]["name"].startswith("mosquitto-config"))
    assert "listener 8883\ncertfile /mosquitto/tls/tls.crt" in config["data"]["mosquitto.conf"]
    assert config["data"]["acl"] == (DEPLOY / "mosquitto" / "acl").read_text()
    devices = by_kind(rendered, "Service")["mqtt-devices"]["spec"]
    assert devices["type"] == "LoadBalancer" and devices["ports"][0]["port"] == 8883
    ingest = by_kind(rendered, "Deployment")["ingest"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in ingest["env"]}
    ref = env["INGEST_MQTT_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] in secrets and ref["key"] == "SERVICE_PASSWORD"
    assert env["INGEST_MQTT_CLIENT_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_every_referenced_secret_is_generated_or_written_by_an_operator(rendered: list[Doc]) -> None:
    generated = set(by_kind(rendered, "Secret"))
    by_operators = {"twinbill-pg-app", "twinbill-mongo-twinbill-twinbill"}
    referenced = set()
    for deployment in by_kind(rendered, "Deployment").values():
        spec = deployment["spec"]["template"]["spec"]
        for container in spec["containers"]:
            for env in container.get("env", []):
                if "secretKeyRef" in env.get("valueFrom", {}):
                    referenced.add(env["valueFrom"]["secretKeyRef"]["name"])
        referenced |= {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    for auth in by_kind(rendered, "TriggerAuthentication").values():
        referenced |= {ref["name"] for ref in auth["spec"]["secretTargetRef"]}
    for mongo in by_kind(rendered, "MongoDBCommunity").values():
        referenced |= {user["passwordSecretRef"]["name"] for user in mongo["spec"]["users"]}
    assert referenced - generated <= by_operators, referenced - generated - by_operators


def test_billing_scales_with_keda_on_its_job_queue(rendered: list[Doc]) -> None:
    scaled = by_kind(rendered, "ScaledObject")["billing"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == "billing" and scaled["minReplicaCount"] >= 1
    assert scaled["triggers"][0]["metadata"]["queueName"] == "billing.jobs"


def test_monitoring_objects_carry_the_alerts_and_dashboards(rendered: list[Doc]) -> None:
    rule = by_kind(rendered, "PrometheusRule")["twinbill"]
    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"], "run `python deploy/prometheus/to_k8s.py`"
    dashboards = by_kind(rendered, "ConfigMap")["twinbill-dashboards"]
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    for path in (DEPLOY / "grafana" / "dashboards").glob("*.json"):
        assert dashboards["data"][path.name] == path.read_text(), path.name
    monitor = by_kind(rendered, "ServiceMonitor")["twinbill"]["spec"]
    assert monitor["jobLabel"] == "app.kubernetes.io/part-of"
    services = by_kind(rendered, "Service")
    for name in SERVICES:
        assert services[name]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "twinbill"


def test_the_operators_overlay_runs_three_member_stores(tmp_path: Path) -> None:
    docs = render("overlays/operators", tmp_path)
    assert by_kind(docs, "Cluster")["twinbill-pg"]["spec"]["instances"] == 3
    rabbit = by_kind(docs, "RabbitmqCluster")["twinbill-rabbitmq"]["spec"]
    assert rabbit["replicas"] == 3 and "default_queue_type = quorum" in rabbit["rabbitmq"]["additionalConfig"]
    mongo = by_kind(docs, "MongoDBCommunity")["twinbill-mongo"]["spec"]
    assert mongo["type"] == "ReplicaSet" and mongo["members"] == 3
    assert mongo["users"][0]["passwordSecretRef"]["name"] in by_kind(docs, "Secret")
    # the Bus dashboard's queue depths
    rabbit_monitor = by_kind(docs, "ServiceMonitor")["twinbill-rabbitmq"]["spec"]["endpoints"][0]
    assert rabbit_monitor["params"] == {"family": ["queue_coarse_metrics"]}


def container_env(container: Doc) -> dict[str, str]:
    """A container's environment as the process would see it: a value from a Secret (or the pod's
    own fields) becomes a placeholder naming it (long enough for every key's minimum length)."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "fieldRef" in item["valueFrom"]:
            env[item["name"]] = "field-" + item["valueFrom"]["fieldRef"]["fieldPath"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            if ref.get("optional"):
                continue  # a key the Secret may not have: the variable is then unset
            # a connection URL from a Secret carries its own user (never the broker's guest)
            scheme = {"AMQP_URL": "amqp", "PG_DSN": "postgresql", "MONGO_URL": "mongodb"}.get(ref["key"])
            env[item["name"]] = (f"{scheme}://from-secret:{ref['key']}@{ref['name']}/" if scheme
                                 else f"secret-{ref['name']}-{ref['key']}-" + "x" * 32)
    return env


def test_the_twin_takes_its_rotation_keys_from_the_platform_secret(
        rendered: list[Doc], monkeypatch: pytest.MonkeyPatch) -> None:
    """Device-secret key rotation on Kubernetes: the new key's id and the old keys come from the
    Secret twinbill-platform when it has them (optional: absent, the twin runs on k1 alone)."""
    from twinbill_twin.secretbox import DeviceSecrets
    from twinbill_twin.settings import TwinSettings

    twin = next(c for d in by_kind(rendered, "Deployment").values()
                for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == "twin")
    refs = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in twin["env"]
            if "secretKeyRef" in item.get("valueFrom", {})}
    assert {name: (ref["name"].rsplit("-", 1)[0], ref["key"], ref.get("optional", False))  # the generator's hash
            for name, ref in refs.items()
            if name.startswith("TWIN_DEVICE_SECRET")} == {
        "TWIN_DEVICE_SECRET_KEY": ("twinbill-platform", "DEVICE_SECRET_KEY", False),
        "TWIN_DEVICE_SECRET_KEY_ID": ("twinbill-platform", "DEVICE_SECRET_KEY_ID", True),
        "TWIN_DEVICE_SECRET_OLD_KEYS": ("twinbill-platform", "DEVICE_SECRET_OLD_KEYS", True)}
    old, new = "o" * 32, "n" * 32
    monkeypatch.setenv("TWIN_DEVICE_SECRET_KEY", new)
    monkeypatch.setenv("TWIN_DEVICE_SECRET_KEY_ID", "k2")
    monkeypatch.setenv("TWIN_DEVICE_SECRET_OLD_KEYS", f"k1:{old}")
    sealed_before = DeviceSecrets(old, key_id="k1").seal("device-secret")
    rotated = TwinSettings().device_secrets()
    assert rotated.open(sealed_before) == "device-secret"
    assert rotated.seal("device-secret").split(":")[1] == "k2"


SETTINGS = {"gateway": ("twinbill_gateway.settings", "GatewaySettings"),
            "twin": ("twinbill_twin.settings", "TwinSettings"),
            "scheduler": ("twinbill_scheduler.settings", "SchedulerSettings"),
            "billing": ("twinbill_billing.settings", "BillingSettings"),
            "ingest": ("twinbill_ingest.settings", "IngestSettings"),
            "broker-auth": ("twinbill_ingest.settings", "BrokerAuthSettings")}


def test_every_twinbill_process_starts_in_production_with_no_development_default(
        rendered: list[Doc], monkeypatch: pytest.MonkeyPatch) -> None:
    """Each twinbill container runs with TWINBILL_ENV=production, so it would refuse to start
    while a guarding setting holds its development default: the rendered environment must set
    every one of them (read by the service's own settings class, as it starts)."""
    import importlib
    import os

    seen = set()
    missing: dict[str, list[str]] = {}
    for deployment in by_kind(rendered, "Deployment").values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if container["name"] not in SETTINGS:
                continue
            module, name = SETTINGS[container["name"]]
            settings_class = getattr(importlib.import_module(module), name)
            with monkeypatch.context() as patch:
                for variable in list(os.environ):
                    if variable.startswith(("TWINBILL_", "GATEWAY_", "TWIN_", "SCHEDULER_", "BILLING_", "INGEST_")):
                        patch.delenv(variable)
                for variable, value in container_env(container).items():
                    patch.setenv(variable, value)
                settings = settings_class()
            assert settings.env == "production", container["name"]
            if defaults := settings.development_defaults():
                missing[container["name"]] = defaults
            seen.add(container["name"])
    assert missing == {}
    assert seen == set(SETTINGS)
