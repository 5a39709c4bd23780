"""The local cluster's ports: free_port() never repeats and stays out of the kernel's ephemeral
range, and readiness is only believed from our own /healthz (a CI run once found the gateway's
port answered by another process's Prometheus endpoint, and every test on it failed)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from tools.cluster import _ephemeral_range, free_port, http_ready


def test_free_ports_are_distinct_bindable_and_outside_the_ephemeral_range():
    low, high = _ephemeral_range()
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    assert all(not low <= port <= high for port in ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))


def serve(body: bytes, content_type: str) -> HTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_readiness_is_only_believed_from_a_healthz_that_says_ok():
    cases = {
        b'{"status": "ok"}': ("application/json", True),
        b"# HELP python_gc_objects_collected_total\n": ("text/plain", False),  # a metrics endpoint
        b'{"status": "starting"}': ("application/json", False),
        b"[1, 2]": ("application/json", False),
    }
    for body, (content_type, ready) in cases.items():
        server = serve(body, content_type)
        try:
            assert http_ready(f"http://127.0.0.1:{server.server_port}/healthz") is ready, body
        finally:
            server.shutdown()
            server.server_close()
    assert http_ready(f"http://127.0.0.1:{free_port()}/healthz") is False  # nothing listening
