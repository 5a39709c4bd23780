"""A thin layer over the podman CLI for deploy/containers/e2e.py: networks, volumes and containers of
one run, all labelled with the run's id so that cleanup finds exactly them (and nothing else)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# podman/buildah settings this machine needs (runtime, ulimits): see containers.conf.
CONF = Path(__file__).with_name("containers.conf")
# How every Deja container runs, as the chart's securityContext has it: non-root, read-only root
# filesystem, no capabilities, no privilege escalation; /tmp is the pod's emptyDir.
HARDENED = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--tmpfs", "/tmp:rw,size=64m,mode=1777"]  # fmt: skip


def podman(*args: str, check: bool = True, timeout: float = 120) -> str:
    env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONF))}
    done = subprocess.run(["podman", *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


@dataclass
class Run:
    """One run's resources; `prefix` names them, the label `deja-e2e=<prefix>` finds them."""

    prefix: str
    containers: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"deja-e2e={self.prefix}"

    def network(self, name: str) -> str:
        full = f"{self.prefix}-{name}"
        podman("network", "create", "--label", self.label, full)
        return full

    def network_gateway(self, network: str) -> str:
        """The host's address on a network (its bridge), where containers reach the host."""
        (info,) = json.loads(podman("network", "inspect", network))
        return info["subnets"][0]["gateway"]

    def volume(self, name: str) -> str:
        full = f"{self.prefix}-{name}"
        podman("volume", "create", "--label", self.label, full)
        return full

    def start(self, name: str, image: str, args: list[str], *, user: str, networks: list[str],
              env: dict[str, str] | None = None, mounts: list[str] = (), tmpfs: list[str] = (),
              publish: list[str] = ()) -> str:  # fmt: skip
        """A detached, hardened container whose DNS name on each of its networks is `name`."""
        full = f"{self.prefix}-{name}"
        argv = ["run", "-d", "--name", full, "--label", self.label, "--user", user, *HARDENED,
                "--network", ",".join(networks), "--network-alias", name]  # fmt: skip
        for key, value in (env or {}).items():
            argv += ["--env", f"{key}={value}"]
        for mount in mounts:
            argv += ["--volume", mount]
        for directory in tmpfs:  # U: owned by the container's user (the chart's emptyDir + fsGroup)
            argv += ["--tmpfs", f"{directory}:rw,size=256m,mode=0700,U"]
        for port in publish:
            argv += ["--publish", port]
        podman(*argv, image, *args)
        self.containers.append(full)
        return full

    def ip(self, container: str) -> str:
        """One of the container's addresses; the host routes to every podman bridge."""
        (info,) = json.loads(podman("inspect", container))
        addresses = [n["IPAddress"] for n in info["NetworkSettings"]["Networks"].values() if n["IPAddress"]]
        if not addresses:
            state = info["State"]
            raise RuntimeError(f"{container} is {state['Status']} (exit code {state['ExitCode']})")
        return addresses[0]

    def logs(self, container: str, tail: int = 40) -> str:
        done = subprocess.run(["podman", "logs", "--tail", str(tail), container], capture_output=True, text=True)
        return done.stdout + done.stderr

    def cleanup(self) -> None:
        """Containers, then networks and volumes with this run's label; errors ignored (best effort)."""
        for kind in ("container", "network", "volume"):
            listing = ["ps", "-a"] if kind == "container" else [kind, "ls"]
            field = "{{.Names}}" if kind == "container" else "{{.Name}}"
            names = podman(*listing, "--filter", f"label={self.label}", "--format", field, check=False)
            for name in names.split():
                removal = ["rm", "-f", "-t", "0"] if kind == "container" else [kind, "rm", "-f"]
                podman(*removal, name, check=False)
