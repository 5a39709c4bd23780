"""The Helm chart (deploy/k8s), checked on what `helm template` renders for each value set.

The wiring is checked against the code, not against the chart's own values: every address a
component is given must name a rendered Service port that leads to a container port; every
`host:port`/URL setting a service's main module loads must be set (a default of 127.0.0.1 in a
pod is a silent outage); the readiness probes ask for the gRPC service names of the protos; the
NetworkPolicies admit exactly the connections the rendered env and configs make.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from deja.settings import load
from deja.v1 import embedder_pb2, semantic_index_pb2, store_pb2, verifier_pb2
from services.embedder.settings import EmbedderSettings
from services.launcher import SERVICES
from services.store.settings import StoreSettings

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "deploy" / "k8s"
HELM = REPO / ".venv" / "bin" / "helm"
RELEASE = "deja"
VALUE_SETS = ["default", *sorted(p.stem for p in (CHART / "ci").glob("*.yaml"))]
COMPONENT_LABEL = "app.kubernetes.io/component"
HEALTH_NAMES = {
    "store": store_pb2.DESCRIPTOR.services_by_name["StoreService"].full_name,
    "embedder": embedder_pb2.DESCRIPTOR.services_by_name["EmbedderService"].full_name,
    "semantic-index": semantic_index_pb2.DESCRIPTOR.services_by_name["SemanticIndexService"].full_name,
    "verifier": verifier_pb2.DESCRIPTOR.services_by_name["VerifierService"].full_name,
}


@cache
def helm() -> Path:
    subprocess.run([sys.executable, str(REPO / "deploy/scripts/install_helm.py"), str(HELM)], check=True)
    return HELM


def helm_template(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(helm()), "template", RELEASE, str(CHART), "--namespace", "deja", *args],
        capture_output=True,
        text=True,
    )


@cache
def rendered(value_set: str, *sets: str) -> tuple[dict, ...]:
    args = [] if value_set == "default" else ["-f", str(CHART / "ci" / f"{value_set}.yaml")]
    for item in sets:
        args += ["--set", item]
    result = helm_template(*args)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(docs, kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def by_name(docs, kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in of_kind(docs, kind)}


def workloads(docs) -> list[dict]:
    return of_kind(docs, "Deployment") + of_kind(docs, "StatefulSet")


def component(workload: dict) -> str:
    return workload["spec"]["template"]["metadata"]["labels"][COMPONENT_LABEL]


def deja_deployments(docs) -> list[dict]:
    """The Deployments that run a Deja service (`python -m services serve NAME`)."""
    return [d for d in of_kind(docs, "Deployment") if main_container(d).get("args", [None])[0] == "serve"]


def main_container(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]["containers"][0]


def plain_env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def env_names(container: dict) -> list[str]:
    return [e["name"] for e in container.get("env", [])]


def selects(service: dict, workload: dict) -> bool:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in service["spec"]["selector"].items())


def parse_address(value: str) -> tuple[str, int] | None:
    """host, port of a host:port or a URL (scheme default ports); None for non-addresses."""
    if "://" not in value:
        value = "tcp://" + value
    parts = urlsplit(value)
    if parts.hostname is None:
        return None
    default = {"http": 80, "https": 443, "redis": 6379, "rediss": 6379, "redis+cluster": 6379, "rediss+cluster": 6379}
    default = default.get(parts.scheme)
    return parts.hostname, parts.port or default


def addresses(workload: dict) -> Iterator[tuple[str, str, int]]:
    """(what, host, port) of every address a workload's containers are told to call."""
    for container in workload["spec"]["template"]["spec"]["containers"]:
        for name, value in plain_env(container).items():
            if name.endswith(("_ADDR", "_URL")) or name == "OTEL_EXPORTER_OTLP_ENDPOINT":
                address = parse_address(value)
                if address:
                    yield name, *address
        for arg in container.get("args", []):
            match = re.match(r"--trace-config=opentelemetry,url=(\S+)", arg)
            if match:
                yield "triton trace url", *parse_address(match[1])


def configmap_addresses(docs) -> Iterator[tuple[str, str, str, int]]:
    """(component, what, host, port) of the exporter endpoints in the collectors' configs."""
    for cm in of_kind(docs, "ConfigMap"):
        config = yaml.safe_load(cm["data"]["config.yaml"])
        for name, exporter in (config.get("exporters") or {}).items():
            if exporter and "endpoint" in exporter:
                host, port = parse_address(exporter["endpoint"])
                yield cm["metadata"]["labels"][COMPONENT_LABEL], f"exporter {name}", host, port


def in_release(host: str) -> bool:
    """A bare name is a Service of this release; anything with a dot is outside it."""
    return "." not in host


def service_target(docs, host: str, port: int) -> tuple[str, int]:
    """The component and container port a Service port leads to (asserting both exist)."""
    services = by_name(docs, "Service")
    assert host in services, f"no Service {host}"
    service = services[host]
    ports = [p for p in service["spec"]["ports"] if p["port"] == port]
    assert ports, f"Service {host} has no port {port}"
    targets = [w for w in workloads(docs) if selects(service, w)]
    assert targets, f"Service {host} selects no pods"
    target_port = ports[0].get("targetPort", port)
    for workload in targets:
        container_ports = {p["name"]: p["containerPort"] for p in main_container(workload)["ports"]}
        if isinstance(target_port, str):
            assert target_port in container_ports, f"{host}:{port} -> no container port {target_port}"
            target_port = container_ports[target_port]
        else:
            assert target_port in container_ports.values(), f"{host}:{port} -> no container port {target_port}"
    return component(targets[0]), target_port


def needed_edges(docs) -> set[tuple[str, str, int]]:
    """(caller, callee, pod port) for every in-release connection the rendered config makes."""
    edges = set()
    for workload in workloads(docs):
        for what, host, port in addresses(workload):
            if in_release(host):
                edges.add((component(workload), *service_target(docs, host, port)))
                if (
                    what == "DEJA_QDRANT_URL"
                    and plain_env(main_container(workload)).get("DEJA_QDRANT_PREFER_GRPC") == "true"
                ):
                    edges.add((component(workload), *service_target(docs, host, 6334)))
    for caller, _, host, port in configmap_addresses(docs):
        if in_release(host):
            edges.add((caller, *service_target(docs, host, port)))
    return edges


def allowed_edges(docs) -> tuple[set[tuple[str, str, int]], set[tuple[str, int]]]:
    """From the NetworkPolicies: (caller, callee, port) admitted by pod selector, and (callee, port)
    open to every source or to namespace selectors."""
    by_pods, open_ports = set(), set()
    for policy in of_kind(docs, "NetworkPolicy"):
        callee = policy["spec"]["podSelector"]["matchLabels"][COMPONENT_LABEL]
        for rule in policy["spec"]["ingress"]:
            ports = [p["port"] for p in rule["ports"]]
            sources = rule.get("from")
            for port in ports:
                if not sources or any("podSelector" not in s for s in sources):
                    open_ports.add((callee, port))
                for source in sources or []:
                    if "podSelector" in source:
                        by_pods.add((source["podSelector"]["matchLabels"][COMPONENT_LABEL], callee, port))
    return by_pods, open_ports


def loaded_settings(command: str) -> list[type]:
    """The settings dataclasses a service's main module works with (what `load()` is called on)."""
    module = importlib.import_module(SERVICES[command])
    return [
        value
        for value in vars(module).values()
        if dataclasses.is_dataclass(value)
        and isinstance(value, type)
        and any("env" in f.metadata for f in dataclasses.fields(value))
    ]


# -- every address resolves -----------------------------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_address_names_a_service_port_that_reaches_a_container(value_set):
    docs = rendered(value_set)
    checked = 0
    for workload in workloads(docs):
        for what, host, port in addresses(workload):
            if in_release(host):
                service_target(docs, host, port)
                checked += 1
            else:
                # By default only the LLM providers are outside the release.
                assert value_set != "default" or "_UPSTREAM_" in what, f"{what} leaves the release: {host}"
    assert checked >= (10 if value_set == "default" else 3)


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_service_selects_pods_and_every_named_target_port_exists(value_set):
    docs = rendered(value_set)
    for service in of_kind(docs, "Service"):
        for port in service["spec"]["ports"]:
            service_target(docs, service["metadata"]["name"], port["port"])


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_address_setting_a_service_loads_is_set_and_every_env_is_a_setting(value_set):
    docs = rendered(value_set)
    for deployment in deja_deployments(docs):
        container = main_container(deployment)
        command = container["args"][1]
        settings = {f.metadata["env"]: f for cls in loaded_settings(command) for f in dataclasses.fields(cls)}
        env = plain_env(container)
        for name in env_names(container):
            if name.startswith("DEJA_"):
                assert name in settings, f"{command}: {name} is no setting of {SERVICES[command]}"
        backend = env.get(next((n for n in env if n.endswith("_BACKEND") and n != "DEJA_SEMANTIC_BACKEND"), ""), "")
        for name, field in settings.items():
            default = str(field.default)
            if not re.search(r"(^|//)(127\.0\.0\.1|localhost)[:/]", default):
                continue  # not an address, or empty by default (an optional dependency)
            if "_TRITON_" in name and backend != "triton":
                continue
            if name == "DEJA_QDRANT_URL" and env.get("DEJA_SEMANTIC_BACKEND") != "qdrant":
                continue
            assert name in env, f"{command} in {value_set}: {name} unset, would be {default} in the pod"


def test_a_component_at_an_external_address_is_called_there_and_not_deployed():
    docs = rendered("mac-workers")
    gateway = plain_env(main_container(by_name(docs, "Deployment")["deja-gateway"]))
    assert gateway["DEJA_EMBEDDER_ADDR"] == "mac-studio.lan:50052"
    assert gateway["DEJA_VERIFIER_ADDR"] == "mac-studio.lan:50054"
    deployments = by_name(docs, "Deployment")
    assert "deja-embedder" not in deployments and "deja-verifier" not in deployments
    assert "deja-triton" not in deployments  # nothing in the cluster uses it any more


def test_the_semantic_tier_off_renders_the_exact_tier_only():
    docs = rendered("default", "semantic.enabled=false")
    assert {component(w) for w in workloads(docs)} == {"gateway", "store", "redis", "otel-collector", "jaeger"}
    gateway = plain_env(main_container(by_name(docs, "Deployment")["deja-gateway"]))
    assert gateway["DEJA_SEMANTIC_ENABLED"] == "false"
    assert "DEJA_EMBEDDER_ADDR" not in gateway


# -- probes, resources, security --------------------------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_workload_has_probes_resources_and_the_security_context(value_set):
    for workload in workloads(rendered(value_set)):
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"] + pod.get("initContainers", []):
            where = f"{name}/{container['name']}"
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert {"requests", "limits"} <= set(container["resources"]), where
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), where
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts or container in pod.get("initContainers", []), where
        for container in pod["containers"]:
            assert "readinessProbe" in container and "livenessProbe" in container, name


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_grpc_services_get_native_grpc_probes_on_their_proto_service_names(value_set):
    for deployment in deja_deployments(rendered(value_set)):
        container = main_container(deployment)
        command = container["args"][1]
        if command == "gateway":
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            continue
        port = plain_env(container)[next(n for n in plain_env(container) if n.endswith("_PORT") and "METRICS" not in n)]
        assert container["readinessProbe"]["grpc"] == {"port": int(port), "service": HEALTH_NAMES[command]}
        assert container["livenessProbe"]["grpc"]["port"] == int(port)
        host = next(v for n, v in plain_env(container).items() if n.endswith("_HOST"))
        assert host == "0.0.0.0"


def test_writable_directories_are_volumes_and_the_session_archive_is_one():
    docs = rendered("default")
    store = main_container(by_name(docs, "Deployment")["deja-store"])
    archive = plain_env(store)["DEJA_SESSION_ARCHIVE_DIR"]
    assert archive in {m["mountPath"] for m in store["volumeMounts"]}
    shared = rendered("distributed")
    pod = by_name(shared, "Deployment")["deja-store"]["spec"]["template"]["spec"]
    assert {"name": "sessions", "persistentVolumeClaim": {"claimName": "deja-sessions"}} in pod["volumes"]


def test_every_deja_service_runs_a_real_deja_serve_command():
    for deployment in deja_deployments(rendered("default")):
        assert main_container(deployment)["args"][1] in SERVICES


# -- scaling --------------------------------------------------------------------------------------


def test_the_embedder_hpa_scales_the_embedder_deployment():
    docs = rendered("default")
    hpas = by_name(docs, "HorizontalPodAutoscaler")
    deployments = by_name(docs, "Deployment")
    assert set(hpas) == {"deja-gateway", "deja-embedder", "deja-verifier"}
    for name, hpa in hpas.items():
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name)
        assert "replicas" not in deployments[name]["spec"]  # the HPA owns it; helm upgrade must not reset it
    embedder = deployments[hpas["deja-embedder"]["spec"]["scaleTargetRef"]["name"]]
    assert main_container(embedder)["args"] == ["serve", "embedder"]


def test_every_workload_has_a_disruption_budget_selecting_it():
    docs = rendered("default")
    budgets = of_kind(docs, "PodDisruptionBudget")
    for workload in of_kind(docs, "Deployment"):
        if component(workload) in ("otel-collector", "jaeger"):
            continue  # single-replica tracing helpers
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert any(all(labels.get(k) == v for k, v in b["spec"]["selector"]["matchLabels"].items()) for b in budgets), (
            workload["metadata"]["name"]
        )


# -- GPU or not -----------------------------------------------------------------------------------


def test_the_default_values_put_triton_on_gpu_nodes_with_tracing():
    docs = rendered("default")
    triton = by_name(docs, "Deployment")["deja-triton"]
    pod = triton["spec"]["template"]["spec"]
    container = main_container(triton)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert "--trace-config=mode=opentelemetry" in container["args"]
    assert "--model-config-name=cpu" not in container["args"]
    # The model repository comes from the Deja image through an init container into /models.
    init = pod["initContainers"][0]
    assert init["command"][-2:] == ["/app/deploy/triton/model_repository/.", "/models/"]
    for name in ("deja-embedder", "deja-verifier"):
        env = plain_env(main_container(by_name(docs, "Deployment")[name]))
        assert env[f"DEJA_{name.split('-')[1].upper()}_BACKEND"] == "triton"
    # On a GPU the verifier asks Triton for the fp32 export and reads that export's tokenizer/calibration.
    verifier = plain_env(main_container(by_name(docs, "Deployment")["deja-verifier"]))
    assert verifier["DEJA_VERIFIER_TRITON_MODEL"] == "verifier-fp32"
    fp32 = Path(verifier["DEJA_VERIFIER_MODEL_DIR"]).relative_to("/app")
    assert (REPO / fp32 / "model.onnx").is_file() and (REPO / fp32 / "calibration.json").is_file()
    assert (REPO / "deploy/triton/model_repository" / "verifier-fp32" / "config.pbtxt").is_file()


def test_cpu_only_values_render_no_gpu_and_no_triton():
    docs = rendered("cpu-only")
    assert "nvidia.com/gpu" not in yaml.safe_dump_all(docs)
    assert "deja-triton" not in by_name(docs, "Deployment") and "deja-triton" not in by_name(docs, "Service")
    for name in ("deja-embedder", "deja-verifier"):
        env = plain_env(main_container(by_name(docs, "Deployment")[name]))
        assert env[f"DEJA_{name.split('-')[1].upper()}_BACKEND"] == "onnx"
        assert not any("TRITON" in key for key in env)


def test_triton_without_a_gpu_loads_the_cpu_configs():
    docs = rendered("default", "triton.gpu.enabled=false")
    container = main_container(by_name(docs, "Deployment")["deja-triton"])
    assert "--model-config-name=cpu" in container["args"]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    verifier = plain_env(main_container(by_name(docs, "Deployment")["deja-verifier"]))
    assert "DEJA_VERIFIER_TRITON_MODEL" not in verifier  # the int8 model: faster on CPU


# -- stores -----------------------------------------------------------------------------------------


def test_external_stores_are_used_and_not_deployed():
    docs = rendered("external-stores")
    assert {component(s) for s in of_kind(docs, "StatefulSet")} == set()
    store = plain_env(main_container(by_name(docs, "Deployment")["deja-store"]))
    embedder = plain_env(main_container(by_name(docs, "Deployment")["deja-embedder"]))
    index = plain_env(main_container(by_name(docs, "Deployment")["deja-semantic-index"]))
    gateway = plain_env(main_container(by_name(docs, "Deployment")["deja-gateway"]))
    assert store["DEJA_REDIS_URL"] == "redis://redis.cache.example.internal:6379/0"
    assert gateway["DEJA_GATEWAY_REDIS_URL"] == store["DEJA_REDIS_URL"]  # its direct reads: the store's database
    assert embedder["DEJA_EMBEDDING_CACHE_URL"] == "redis://redis.cache.example.internal:6379/1"
    assert index["DEJA_QDRANT_URL"] == "https://qdrant.vectors.example.internal:6333"
    assert index["DEJA_SEMANTIC_BACKEND"] == "qdrant"
    assert not of_kind(docs, "Secret")  # secrets.existingSecret: the chart makes none


def test_an_external_redis_cluster_is_given_to_every_redis_user_as_a_seed_node():
    docs = rendered("external-redis-cluster")
    assert "redis" not in {component(s) for s in of_kind(docs, "StatefulSet")}
    store = plain_env(main_container(by_name(docs, "Deployment")["deja-store"]))
    embedder = plain_env(main_container(by_name(docs, "Deployment")["deja-embedder"]))
    gateway = plain_env(main_container(by_name(docs, "Deployment")["deja-gateway"]))
    seed = "redis+cluster://redis-cluster-0.cache.example.internal:6379"  # database 0 for all: no /<db>
    assert store["DEJA_REDIS_URL"] == embedder["DEJA_EMBEDDING_CACHE_URL"] == gateway["DEJA_GATEWAY_REDIS_URL"] == seed
    # and the services take what the chart renders
    assert load(StoreSettings, store).redis_url == seed
    assert load(EmbedderSettings, embedder).cache_url == seed


def test_redis_keeps_an_append_only_file_on_a_volume():
    redis = by_name(rendered("default"), "StatefulSet")["deja-redis"]
    args = main_container(redis)["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--dir") + 1] == "/data"
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def test_distributed_qdrant_forms_one_cluster_over_the_headless_service():
    qdrant = by_name(rendered("distributed"), "StatefulSet")["deja-qdrant"]
    env = plain_env(main_container(qdrant))
    assert qdrant["spec"]["replicas"] == 3
    assert qdrant["spec"]["serviceName"] == "deja-qdrant-headless"
    assert env["QDRANT__CLUSTER__ENABLED"] == "true"
    assert "--bootstrap" in main_container(qdrant)["args"][0]


def test_secret_env_comes_from_the_secret():
    docs = rendered("default", "secrets.values.DEJA_ADMIN_KEY=s3cret")
    gateway = main_container(by_name(docs, "Deployment")["deja-gateway"])
    ref = next(e for e in gateway["env"] if e["name"] == "DEJA_ADMIN_KEY")["valueFrom"]["secretKeyRef"]
    secret = by_name(docs, "Secret")[ref["name"]]
    assert secret["stringData"] == {"DEJA_ADMIN_KEY": "s3cret"}


# -- network policies -----------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_network_policies_admit_exactly_the_connections_the_config_makes(value_set):
    docs = rendered(value_set)
    needed = needed_edges(docs)
    by_pods, open_ports = allowed_edges(docs)
    if value_set == "distributed":
        by_pods -= {("qdrant", "qdrant", 6335), ("qdrant", "qdrant", 6333)}  # peers (bootstrap URL in args)
    assert by_pods == needed
    # Open to sources outside the release (any pod / namespaces): client, metrics and UI ports only.
    open_ok = {("gateway", 8080), ("jaeger", 16686), ("triton", 8002)}
    for workload in deja_deployments(docs):
        env = plain_env(main_container(workload))
        open_ok |= {(component(workload), int(v)) for n, v in env.items() if n.endswith("_METRICS_PORT")}
    assert open_ports <= open_ok
    # Every pod of the release is selected by a policy, so nothing else reaches it.
    selected = {p["spec"]["podSelector"]["matchLabels"][COMPONENT_LABEL] for p in of_kind(docs, "NetworkPolicy")}
    assert {component(w) for w in workloads(docs)} <= selected


def test_only_the_store_embedder_and_gateway_reach_redis_and_only_the_index_reaches_qdrant():
    needed = needed_edges(rendered("default"))
    assert {caller for caller, callee, _ in needed if callee == "redis"} == {"store", "embedder", "gateway"}
    assert {caller for caller, callee, _ in needed if callee == "qdrant"} == {"semantic-index"}
    assert {caller for caller, callee, _ in needed if callee == "triton"} == {"embedder", "verifier"}


# -- values that cannot work are refused ------------------------------------------------------------


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["components.embedder.backend=gpu"], "components/embedder/backend"),
        (["components.gateway.replica=3"], "additional properties 'replica'"),
        (["redis.enabled=false"], "set redis.external.url"),
        (["qdrant.distributed.enabled=true"], "qdrant.replicas >= 2"),
        (["redis.external.cluster=true"], "set redis.enabled false"),
        (
            ["redis.enabled=false", "redis.external.url=redis://h:6379/1", "redis.external.cluster=true"],
            "a Redis Cluster has only database 0",
        ),
    ],
)
def test_values_that_cannot_work_are_refused_with_a_message(sets, message):
    result = helm_template(*[arg for item in sets for arg in ("--set", item)])
    assert result.returncode != 0
    assert message in result.stderr


def test_the_charts_ports_are_the_services_defaults():
    """values.yaml repeats each service's default ports (Helm cannot import them): held to deja.endpoints."""
    from deja.endpoints import SERVICES as ENDPOINTS

    services = yaml.safe_load((CHART / "values.yaml").read_text())["components"]
    for name, (prefix, port, metrics_port, _) in ENDPOINTS.items():
        key = "semanticIndex" if name == "semantic-index" else name
        assert services[key]["port"] == port, name
        assert services[key]["metricsPort"] == metrics_port, name
        assert services[key]["envPrefix"] == prefix, name
