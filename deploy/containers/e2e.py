"""`make e2e-containers`: the whole cluster from the images `make images` builds, each tier in its
own podman container, and the end-to-end checks against it.

Layout (what the chart's Deployments, Services and NetworkPolicy give a pod): every container runs
as the chart runs it (uid 10001, or 999 for Valkey; read-only root; no capabilities; /tmp a tmpfs)
and joins only the networks of the tiers it calls or is called from, one network per callee:

    gateway  -> store, embedder, semantic-index, verifier, upstream (the mock provider)
    store    -> valkey (db 0), embedder (session recall)
    embedder -> valkey (db 1)
    every Deja service -> telemetry (the host's OTLP receiver, as the chart's collector)

Valkey keeps its append-only file on a named volume. Only the gateway's port is published, on
loopback. The checks use the real openai and anthropic SDKs; everything is removed at the end.

    .venv/bin/python deploy/containers/e2e.py [--keep-going]    (from the repository root)
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(Path(__file__).parent)]

import anthropic  # noqa: E402
import blake3  # noqa: E402
import httpx  # noqa: E402
import openai  # noqa: E402
import redis  # noqa: E402
from podman import Run, podman  # noqa: E402

from tests.otlp_receiver import OtlpReceiver, missing_edges  # noqa: E402
from tools.cluster import free_port, grpc_ready, verifier_only_env  # noqa: E402

DEJA_IMAGE = os.environ.get("DEJA_IMAGE", "localhost/deja:dev")
VALKEY_IMAGE = os.environ.get("VALKEY_IMAGE", "localhost/deja-valkey:dev")
ADMIN_KEY = "e2e-containers-admin"
GPT, CLAUDE = "gpt-4o-mini", "claude-haiku-4-5"
# Learned once, then asked again verbatim (exact hits) and reworded (semantic hits).
CSS = "How do I center a div horizontally with CSS?"
CSS_REWORDED = "How can I horizontally center a div using CSS?"
PYTHON = "How do I reverse a list in Python?"
PYTHON_REWORDED = "How can I reverse a Python list?"
PANDAS = "How do I read a CSV file with pandas?"
PANDAS_REWORDED = "How can I read a CSV file using pandas?"

# service -> (port, metrics port, env prefix, gRPC health service), as values.yaml has them.
SERVICES = {
    "store": (50051, 9151, "DEJA_STORE", "deja.v1.StoreService"),
    "embedder": (50052, 9152, "DEJA_EMBEDDER", "deja.v1.EmbedderService"),
    "semantic-index": (50053, 9153, "DEJA_SEMANTIC", "deja.v1.SemanticIndexService"),
    "verifier": (50054, 9154, "DEJA_VERIFIER", "deja.v1.VerifierService"),
}
NETWORKS = {
    "valkey": ["valkey"],
    "mock-provider": ["upstream"],
    "store": ["store", "valkey", "embedder", "telemetry"],
    "embedder": ["embedder", "valkey", "telemetry"],
    "semantic-index": ["semantic-index", "telemetry"],
    "verifier": ["verifier", "telemetry"],
    "gateway": ["store", "embedder", "semantic-index", "verifier", "upstream", "telemetry"],
}
# (parent service, parent span, child service, child span) that cross a container boundary.
CROSS_TIER_EDGES = [
    ("deja-gateway", "/deja.v1.StoreService/Get", "deja-store", "/deja.v1.StoreService/Get"),
    ("deja-store", "/deja.v1.StoreService/Get", "deja-store", "EVALSHA"),  # the call into Valkey
    ("deja-gateway", "/deja.v1.EmbedderService/Embed", "deja-embedder", "/deja.v1.EmbedderService/Embed"),
    ("deja-gateway", "/deja.v1.SemanticIndexService/Search",
     "deja-semantic-index", "/deja.v1.SemanticIndexService/Search"),
    ("deja-gateway", "/deja.v1.VerifierService/Verify", "deja-verifier", "/deja.v1.VerifierService/Verify"),
]  # fmt: skip


def wait_until(what: str, ready: Callable[[], bool], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not ready after {timeout_s:.0f}s")
        time.sleep(0.2)


def valkey_ready(host: str) -> bool:
    try:
        return redis.Redis(host=host, socket_timeout=0.5).ping()
    except redis.RedisError:
        return False


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class BridgedReceiver(OtlpReceiver):
    """The tests' OTLP receiver, also listening where containers reach the host. On every interface:
    the telemetry network's bridge address exists only once a container is on it, and a service
    whose first exports fail backs off for longer than a check waits."""

    def __init__(self) -> None:
        super().__init__()
        if not self._server.add_insecure_port(f"0.0.0.0:{self.port}"):
            raise RuntimeError(f"the OTLP receiver cannot listen on port {self.port}")


class ContainerCluster:
    def __init__(self, state: Path) -> None:
        self.run = Run(f"deja-e2e-{os.getpid()}")
        self.state = state
        self.gateway_port = free_port()
        self.receiver: BridgedReceiver | None = None

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def name(self, service: str) -> str:
        return f"{self.run.prefix}-{service}"

    # -- start ------------------------------------------------------------------------------

    def start(self) -> None:
        networks = {n: self.run.network(n) for n in sorted({n for nets in NETWORKS.values() for n in nets})}
        self.nets = lambda service: [networks[n] for n in NETWORKS[service]]
        telemetry_host = self.run.network_gateway(networks["telemetry"])
        self.receiver = BridgedReceiver().__enter__()
        otel = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{telemetry_host}:{self.receiver.port}",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_TRACES_SAMPLER": "always_on",
        }
        data = self.run.volume("valkey-data")
        self.run.start("valkey", VALKEY_IMAGE, [
            "valkey-server", "--dir", "/data", "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--maxmemory", "256mb", "--maxmemory-policy", "volatile-lru", "--protected-mode", "no",
        ], user="999:999", networks=self.nets("valkey"), mounts=[f"{data}:/data"])  # fmt: skip
        self.run.start("mock-provider", DEJA_IMAGE, ["serve", "mock-provider"], user="10001:10001",
                       networks=self.nets("mock-provider"),
                       env={"DEJA_MOCK_HOST": "0.0.0.0", "DEJA_MOCK_PORT": "8090",
                            "DEJA_MOCK_LATENCY_MS": "20"})  # fmt: skip
        wait_until("valkey", lambda: valkey_ready(self.run.ip(self.name("valkey"))))

        self.start_service("store", {
            "DEJA_REDIS_URL": "redis://valkey:6379/0", "DEJA_EMBEDDER_ADDR": "embedder:50052",
            "DEJA_SESSION_ARCHIVE_DIR": "/var/lib/deja/sessions", **otel,
        }, tmpfs="/var/lib/deja/sessions")  # fmt: skip
        self.start_service("embedder", {"DEJA_EMBEDDING_CACHE_URL": "redis://valkey:6379/1",
                                        "DEJA_EMBEDDER_BACKEND": "onnx", **otel})  # fmt: skip
        self.start_service("semantic-index", {"DEJA_SEMANTIC_DATA_DIR": "/var/lib/deja/semantic", **otel},
                           tmpfs="/var/lib/deja/semantic")  # fmt: skip
        self.start_service("verifier", {"DEJA_VERIFIER_BACKEND": "onnx", **otel})
        for service in SERVICES:
            self.await_service(service)
        wait_until("mock-provider", lambda: http_ok(f"http://{self.run.ip(self.name('mock-provider'))}:8090/healthz"))

        # Semantic answers served on the verifier's word alone (no judge), as the integration tests do.
        judge_off = verifier_only_env(self.state)
        judge_off["DEJA_ERROR_PRIOR"] = "/etc/deja-e2e/trusting-prior.json"
        self.run.start("gateway", DEJA_IMAGE, ["serve", "gateway"], user="10001:10001",
                       networks=self.nets("gateway"), publish=[f"127.0.0.1:{self.gateway_port}:8080"],
                       mounts=[f"{self.state}:/etc/deja-e2e:ro"], env={
            "DEJA_GATEWAY_HOST": "0.0.0.0", "DEJA_GATEWAY_PORT": "8080",
            "DEJA_STORE_ADDR": "store:50051", "DEJA_EMBEDDER_ADDR": "embedder:50052",
            "DEJA_SEMANTIC_ADDR": "semantic-index:50053", "DEJA_VERIFIER_ADDR": "verifier:50054",
            "DEJA_UPSTREAM_URL": "http://mock-provider:8090/v1", "DEJA_ANTHROPIC_UPSTREAM_URL": "http://mock-provider:8090",
            "DEJA_ADMIN_KEY": ADMIN_KEY, "OTEL_SERVICE_NAME": "deja-gateway", **judge_off, **otel,
        })  # fmt: skip
        wait_until("gateway", lambda: http_ok(f"{self.gateway_url}/readyz"))

    def start_service(self, service: str, env: dict[str, str], tmpfs: str | None = None) -> None:
        port, metrics, prefix, _ = SERVICES[service]
        env = {f"{prefix}_HOST": "0.0.0.0", f"{prefix}_PORT": str(port), f"{prefix}_METRICS_PORT": str(metrics),
               "OTEL_SERVICE_NAME": f"deja-{service}", **env}  # fmt: skip
        self.run.start(service, DEJA_IMAGE, ["serve", service], user="10001:10001", networks=self.nets(service),
                       env=env, tmpfs=[tmpfs] if tmpfs else [])  # fmt: skip

    def await_service(self, service: str, timeout_s: float = 180) -> None:
        port, _, _, health = SERVICES[service]
        wait_until(service, lambda: grpc_ready(f"{self.run.ip(self.name(service))}:{port}", health), timeout_s)

    def stop(self) -> None:
        if self.receiver is not None:
            self.receiver.__exit__(None, None, None)
        self.run.cleanup()

    # -- helpers for the checks -------------------------------------------------------------

    def upstream_calls(self) -> int:
        stats = httpx.get(f"http://{self.run.ip(self.name('mock-provider'))}:8090/mock/stats", timeout=5).json()
        return stats.get("chat_completions", 0) + stats.get("messages", 0)

    def semantic_points(self, api_key: str) -> int:
        tenant = blake3.blake3(api_key.encode()).hexdigest()
        stats = httpx.get(f"{self.gateway_url}/v1/admin/stats", params={"tenant": tenant},
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=5).json()  # fmt: skip
        return stats["semantic_points"] or 0

    def gpt(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.gateway_url}/v1", api_key=key, max_retries=0, timeout=20)

    def claude(self, key: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.gateway_url, api_key=key, max_retries=0, timeout=20)


def ask_gpt(client: openai.OpenAI, text: str, headers: dict | None = None):
    return client.chat.completions.with_raw_response.create(
        model=GPT, messages=[{"role": "user", "content": text}], extra_headers=headers or {}
    )


def outcome(client: openai.OpenAI, text: str) -> str:
    return ask_gpt(client, text).headers["x-deja-cache"]


def ask_claude(client: anthropic.Anthropic, text: str):
    return client.messages.with_raw_response.create(
        model=CLAUDE, max_tokens=128, messages=[{"role": "user", "content": text}]
    )


def learn(cluster: ContainerCluster, key: str, ask: Callable, text: str) -> None:
    """A miss, then wait until the answer is stored (an exact hit) and indexed (both follow the response)."""
    before = cluster.semantic_points(key)
    assert ask(text).headers["x-deja-cache"] == "miss"
    wait_until("stored", lambda: ask(text).headers["x-deja-cache"] == "hit-exact", 10)
    wait_until("indexed", lambda: cluster.semantic_points(key) > before, 30)


# -- the checks ----------------------------------------------------------------------------


def check_exact_and_semantic_hits(cluster: ContainerCluster) -> dict:
    gpt, claude = cluster.gpt("sk-e2e-openai"), cluster.claude("sk-ant-e2e")
    learn(cluster, "sk-e2e-openai", lambda q: ask_gpt(gpt, q), CSS)
    learn(cluster, "sk-ant-e2e", lambda q: ask_claude(claude, q), PYTHON)
    calls = cluster.upstream_calls()
    hits = {
        "openai exact": ask_gpt(gpt, CSS),
        "openai semantic": ask_gpt(gpt, CSS_REWORDED),
        "anthropic exact": ask_claude(claude, PYTHON),
        "anthropic semantic": ask_claude(claude, PYTHON_REWORDED),
    }
    outcomes = {name: raw.headers["x-deja-cache"] for name, raw in hits.items()}
    assert outcomes == {"openai exact": "hit-exact", "openai semantic": "hit-semantic",
                        "anthropic exact": "hit-exact", "anthropic semantic": "hit-semantic"}, outcomes  # fmt: skip
    assert hits["openai semantic"].parse().choices[0].message.content
    assert hits["anthropic semantic"].parse().content[0].text
    assert cluster.upstream_calls() == calls, "a hit reached the provider"
    return outcomes


def check_one_trace_across_the_tiers(cluster: ContainerCluster) -> dict:
    gpt = cluster.gpt("sk-e2e-openai")
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    raw = ask_gpt(gpt, "How can I center a div horizontally in CSS?", {"traceparent": f"00-{trace_id}-{parent}-01"})
    assert raw.headers["x-deja-cache"] == "hit-semantic", raw.headers["x-deja-cache"]
    spans = cluster.receiver.wait_for(trace_id, lambda s: not missing_edges(s, CROSS_TIER_EDGES), timeout_s=30)
    assert not missing_edges(spans, CROSS_TIER_EDGES), missing_edges(spans, CROSS_TIER_EDGES)
    services = {s.service for s in spans}
    assert services == {"deja-gateway", "deja-store", "deja-embedder", "deja-semantic-index", "deja-verifier"}, services
    (root,) = [s for s in spans if s.parent_id == parent]
    assert root.attributes["deja.outcome"] == "hit-semantic"
    return {"trace_id": trace_id, "spans": len(spans), "services": sorted(services)}


class ClientLoop(threading.Thread):
    """Requests back to back through the openai SDK (retries off): repeated questions and new ones."""

    def __init__(self, cluster: ContainerCluster) -> None:
        super().__init__(daemon=True)
        self.client, self.stopping = cluster.gpt("sk-e2e-loop"), threading.Event()
        self.outcomes: dict[str, int] = {}
        self.errors: list[str] = []

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            text = "What does HTTP status 418 mean?" if n % 2 else f"Name a prime number above {n * 7919}."
            try:
                outcome = ask_gpt(self.client, text).headers["x-deja-cache"]
                self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            except Exception as error:  # every failure counts: the gateway must fail open
                self.errors.append(f"{type(error).__name__}: {error}")


def tiers(cluster: ContainerCluster) -> dict[str, str]:
    """The gateway's own view of each tier (its /readyz body), through its own channels."""
    return httpx.get(f"{cluster.gateway_url}/readyz", timeout=5).json()["tiers"]


def check_tier_kill_and_restart(cluster: ContainerCluster) -> dict:
    loop = ClientLoop(cluster)
    loop.start()
    timings = {}
    try:
        time.sleep(2)
        for tier, view in (("store", "exact"), ("embedder", "embedder")):
            podman("kill", cluster.name(tier))  # SIGKILL: a crash, no drain
            wait_until(f"the gateway sees {tier} down", lambda view=view: tiers(cluster)[view] == "down", 30)
            time.sleep(2)  # requests meanwhile fail open
            began = time.monotonic()
            podman("start", cluster.name(tier))
            cluster.await_service(tier)
            wait_until(f"the gateway sees {tier} up", lambda view=view: tiers(cluster)[view] == "up", 60)
            timings[f"{tier} back in s"] = round(time.monotonic() - began, 1)
            time.sleep(2)
    finally:
        loop.stopping.set()
        loop.join(30)
    assert not loop.errors, loop.errors[:5]
    assert sum(loop.outcomes.values()) > 20, loop.outcomes
    # Both tiers serve again: an exact hit (store), and a semantic hit (embedder) on a question pair
    # never asked before (a semantic hit is stored as an exact entry, so an old pair proves nothing).
    gpt = cluster.gpt("sk-e2e-openai")
    assert outcome(gpt, CSS) == "hit-exact"
    learn(cluster, "sk-e2e-openai", lambda q: ask_gpt(gpt, q), PANDAS)
    assert outcome(gpt, PANDAS_REWORDED) == "hit-semantic"
    return {"requests": loop.outcomes, "client errors": 0, **timings}


def check_valkey_restart_loses_nothing(cluster: ContainerCluster) -> dict:
    valkey = cluster.name("valkey")
    before = set(redis.Redis(host=cluster.run.ip(valkey)).keys("*"))
    assert before, "no entries to lose"
    time.sleep(1.5)  # appendfsync everysec: what a graceful stop need not even flush
    began = time.monotonic()
    podman("restart", "-t", "10", valkey)
    wait_until("valkey", lambda: valkey_ready(cluster.run.ip(valkey)), 60)
    after = set(redis.Redis(host=cluster.run.ip(valkey)).keys("*"))
    assert before <= after, f"{len(before - after)} of {len(before)} keys lost"
    volume = podman("volume", "inspect", "--format", "{{.Mountpoint}}", f"{cluster.run.prefix}-valkey-data")
    aof = sorted(p.name for p in Path(volume, "appendonlydir").iterdir())
    # Through the gateway too: the learned answers are still exact hits, without the provider.
    gpt, claude = cluster.gpt("sk-e2e-openai"), cluster.claude("sk-ant-e2e")
    calls = cluster.upstream_calls()
    wait_until("exact hit after restart", lambda: outcome(gpt, CSS) == "hit-exact", 60)
    assert ask_claude(claude, PYTHON).headers["x-deja-cache"] == "hit-exact"
    assert cluster.upstream_calls() == calls
    return {"keys before": len(before), "keys after": len(after), "back in s": round(time.monotonic() - began, 1),
            "aof files": aof}  # fmt: skip


def check_hardening(cluster: ContainerCluster) -> dict:
    """What each container actually runs as: non-root uid, read-only root, no capabilities."""
    seen = {}
    for name in cluster.run.containers:
        (info,) = json.loads(podman("inspect", name))
        config, host = info["Config"], info["HostConfig"]
        assert config["User"] in ("10001:10001", "999:999"), (name, config["User"])
        assert host["ReadonlyRootfs"] is True, name
        assert info["EffectiveCaps"] in (None, []), (name, info["EffectiveCaps"])
        assert "no-new-privileges" in " ".join(host["SecurityOpt"] or []), name
        seen[name.removeprefix(cluster.run.prefix + "-")] = config["User"]
    status = podman("exec", cluster.name("gateway"), "sh", "-c", "id -u; touch /app/x 2>&1 || true")
    assert status.startswith("10001") and "Read-only file system" in status, status
    return seen


CHECKS = [
    ("containers run as the chart runs them", check_hardening),
    ("exact and semantic hits through the openai and anthropic SDKs", check_exact_and_semantic_hits),
    ("one trace across the tiers", check_one_trace_across_the_tiers),
    ("a tier killed and restarted: no client error", check_tier_kill_and_restart),
    ("Valkey restarted: no entry lost", check_valkey_restart_loses_nothing),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-going", action="store_true", help="run every check even after one fails")
    args = parser.parse_args()
    for image in (DEJA_IMAGE, VALKEY_IMAGE):
        if podman("images", "-q", image, check=False) == "":
            print(f"e2e: no image {image}: run `make images` first", file=sys.stderr)
            return 2
    began = time.monotonic()
    failed = 0
    with tempfile.TemporaryDirectory(prefix="deja-e2e-") as tmp:
        os.chmod(tmp, 0o755)  # the gateway (uid 10001) reads its prior from here
        cluster = ContainerCluster(Path(tmp))
        try:
            cluster.start()
            print(f"e2e: cluster up in {time.monotonic() - began:.0f}s ({len(cluster.run.containers)} containers)")
            for title, check in CHECKS:
                t0 = time.monotonic()
                try:
                    result = check(cluster)
                    print(f"PASS  {title} ({time.monotonic() - t0:.1f}s): {json.dumps(result)}")
                except Exception as error:
                    failed += 1
                    print(f"FAIL  {title} ({time.monotonic() - t0:.1f}s): {type(error).__name__}: {error}")
                    if not args.keep_going:
                        break
        except Exception as error:
            failed += 1
            print(f"FAIL  start: {type(error).__name__}: {error}")
        finally:
            if failed:
                for name in cluster.run.containers:
                    print(f"--- {name} (last lines)\n{cluster.run.logs(name)}")
            cluster.stop()
    print(f"e2e: {'FAILED' if failed else 'passed'} in {time.monotonic() - began:.0f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
