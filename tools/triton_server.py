"""A real Triton Inference Server on this host: the `tritonserver` binary of nvidia-pytriton.

`.venv-triton` (made by the Makefile from deploy/triton/requirements-server.txt) holds the binary,
its python backend, numpy < 2 and onnxruntime. `TritonServer` builds the command line and the
environment that binary needs here, starts it on `deploy/triton/model_repository`, waits until
every model is ready and stops it with SIGTERM. Used by tests/test_triton.py, `make triton`
(`python -m tools.triton_server`) and `deja cluster --backend triton` (through `command()`).

What the binary needs on a host without NVIDIA's image (each one found the hard way):
- a backend directory that joins the wheel's python backend (`python/`: libtriton_python.so, the
  stub built for this Python, triton_python_backend_utils.py) with our Python-based stand-in for
  the onnxruntime backend (`onnxruntime/model.py`). Triton refuses backend files that resolve
  outside the backend directory, so they are copied, not linked, into a fresh directory per start;
- the venv interpreter's LIBDIR first in LD_LIBRARY_PATH (the stub embeds libpython) and the
  venv's `bin` first on PATH (the stub takes its Python environment from there: numpy < 2);
- `--model-config-name=cpu`: the production configs ask for KIND_GPU;
- a unique shared-memory prefix per server, or two servers on one host share regions;
- SIGTERM to stop, with `--exit-timeout-secs` >= 2 (lower and the models cannot unload in time).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from deja.endpoints import TRITON_GRPC_PORT, TRITON_HTTP_PORT

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv-triton"
MODEL_REPOSITORY = REPO / "deploy" / "triton" / "model_repository"
OUR_BACKENDS = REPO / "deploy" / "triton" / "backends"


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3.*/site-packages/pytriton/tritonserver"))
    if not found:
        raise RuntimeError(f"no tritonserver in {venv}: `make test`, `make triton`, `make run BACKEND=triton` make it")
    return found[-1].parents[1]


def _interpreter(venv: Path) -> tuple[str, str]:
    """(LIBDIR, "3.x") of the venv's Python: where libpython lives and which stub to use."""
    code = "import sys, sysconfig; print(sysconfig.get_config_var('LIBDIR')); print(*sys.version_info[:2], sep='.')"
    out = subprocess.run([venv / "bin" / "python", "-c", code], capture_output=True, text=True, check=True).stdout
    libdir, version = out.split()
    return libdir, version


@dataclass
class TritonServer:
    """One tritonserver process. Port 0 for `http_port` / `metrics_port` turns that endpoint off."""

    grpc_port: int = TRITON_GRPC_PORT
    http_port: int = TRITON_HTTP_PORT
    metrics_port: int = 8002
    config_name: str | None = "cpu"  # None: the production config.pbtxt (needs a GPU)
    model_repository: Path = MODEL_REPOSITORY
    venv: Path = VENV
    workdir: Path | None = None  # backend directory goes here; None: a temporary directory
    models: tuple[str, ...] = ()  # load only these (explicit model control); empty: every model
    exit_timeout_s: int = 2
    popen: subprocess.Popen | None = field(default=None, repr=False)
    _tmp: Path | None = field(default=None, repr=False)

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def _backend_directory(self, python_version: str) -> Path:
        root = self.workdir or self._tmp or Path(tempfile.mkdtemp(prefix="deja-triton-"))
        if self.workdir is None:
            self._tmp = root
        backends = root / "backends"
        shutil.rmtree(backends, ignore_errors=True)
        wheel = _site_packages(self.venv) / "pytriton" / "tritonserver"
        (backends / "python").mkdir(parents=True)
        for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
            shutil.copy2(wheel / "backends" / "python" / name, backends / "python" / name)
        stub = wheel / "python_backend_stubs" / python_version / "triton_python_backend_stub"
        if not stub.is_file():
            raise RuntimeError(f"nvidia-pytriton has no python backend stub for Python {python_version}")
        shutil.copy2(stub, backends / "python" / stub.name)
        shutil.copytree(OUR_BACKENDS, backends, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        return backends

    def command(self, base_env: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
        """argv and environment of the server (assembles the backend directory as a side effect)."""
        libdir, python_version = _interpreter(self.venv)
        site = _site_packages(self.venv)
        backends = self._backend_directory(python_version)
        argv = [
            str(site / "pytriton" / "tritonserver" / "bin" / "tritonserver"),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends}",
            f"--grpc-port={self.grpc_port}",
            "--grpc-address=127.0.0.1",
            f"--exit-timeout-secs={max(self.exit_timeout_s, 2)}",
            f"--backend-config=python,shm-region-prefix-name=deja-{uuid.uuid4().hex[:12]}-",
            "--allow-gpu-metrics=false",
            "--strict-readiness=true",
            "--log-verbose=0",
        ]
        if self.config_name:
            argv.append(f"--model-config-name={self.config_name}")
        if self.models:
            argv += ["--model-control-mode=explicit", *(f"--load-model={name}" for name in self.models)]
        argv += (
            [f"--http-port={self.http_port}", "--http-address=127.0.0.1"] if self.http_port else ["--allow-http=false"]
        )
        argv += [f"--metrics-port={self.metrics_port}"] if self.metrics_port else ["--allow-metrics=false"]
        env = dict(os.environ if base_env is None else base_env)
        libs = [libdir, str(site / "nvidia_pytriton.libs")]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libs + [p for p in [env.get("LD_LIBRARY_PATH", "")] if p])
        env["PATH"] = os.pathsep.join([str(self.venv / "bin"), env.get("PATH", "")])
        env.pop("PYTHONHOME", None)
        return argv, env

    def ready(self) -> bool:
        """Every model loaded and the server accepting inference (strict readiness)."""
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        client = grpcclient.InferenceServerClient(self.grpc_url)
        try:
            return bool(client.is_server_ready(client_timeout=0.5))
        except InferenceServerException:
            return False
        finally:
            client.close()

    def start(self, timeout_s: float = 60.0, log_path: Path | None = None) -> TritonServer:
        argv, env = self.command()
        log = log_path.open("ab") if log_path else subprocess.DEVNULL
        self.popen = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not self.ready():
            if self.popen.poll() is not None or time.monotonic() > deadline:
                code = self.popen.poll()
                self.stop()
                where = f"; its log: {log_path}" if log_path else ""
                state = f"exited with status {code}" if code is not None else f"not ready after {timeout_s:.0f}s"
                raise RuntimeError(f"tritonserver {state}{where}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        """SIGTERM: in-flight requests finish, models unload; SIGKILL only if that overruns."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(self.exit_timeout_s + 10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """`make triton`: the model repository on a local Triton in the foreground; Ctrl-C stops it."""
    parser = argparse.ArgumentParser(prog="python -m tools.triton_server", description=main.__doc__)
    parser.add_argument("--grpc-port", type=int, default=TRITON_GRPC_PORT)
    parser.add_argument("--http-port", type=int, default=TRITON_HTTP_PORT, help="0: off")
    parser.add_argument("--metrics-port", type=int, default=8002, help="0: off")
    parser.add_argument("--gpu", action="store_true", help="the production configs (KIND_GPU) instead of configs/cpu")
    args = parser.parse_args(argv)
    server = TritonServer(args.grpc_port, args.http_port, args.metrics_port, None if args.gpu else "cpu")
    command, env = server.command()
    proc = subprocess.Popen(command, env=env)

    def forward(signum, frame) -> None:
        proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    code = proc.wait()
    server.stop()  # the temporary backend directory
    sys.exit(code)


if __name__ == "__main__":
    main()
