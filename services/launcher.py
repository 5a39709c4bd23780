"""Run one service: `python -m services serve NAME` (what the image and the Helm chart run).

Each service reads its DEJA_* settings from the environment; `python -m services config` prints them
all as the README's configuration table.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from deja.settings import ConfigError, describe

# `serve NAME` -> the module whose main() runs that service.
SERVICES = {
    "store": "services.store.main",
    "embedder": "services.embedder.main",
    "semantic-index": "services.semantic_index.main",
    "verifier": "services.verifier.main",
    "gateway": "services.gateway.main",
    "mock-provider": "services.mock_provider.main",
}


def serve(name: str) -> None:
    importlib.import_module(SERVICES[name]).main()


def settings_classes() -> list[type]:
    """Every service's settings, in the order the README's configuration table lists them."""
    from services.embedder.settings import EmbedderSettings
    from services.gateway.settings import GatewaySettings, MemorySettings
    from services.mock_provider.main import MockSettings
    from services.semantic_index.settings import SemanticIndexSettings
    from services.store.sessions.settings import SessionSettings
    from services.store.settings import StoreSettings
    from services.verifier.settings import VerifierSettings

    return [
        GatewaySettings, MemorySettings, StoreSettings, SessionSettings, EmbedderSettings, SemanticIndexSettings,
        VerifierSettings, MockSettings,
    ]  # fmt: skip


def print_config() -> None:
    """Every DEJA_* setting once, as a Markdown table: variable, default, meaning."""
    print("| variable | default | meaning |\n| --- | --- | --- |")
    seen = set()
    for cls in settings_classes():
        for env, default, doc in describe(cls):
            if env not in seen:
                seen.add(env)
                print(f"| `{env}` | `{default}` | {doc} |")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The runtime's own commands, shared by `python -m services` and the `deja` CLI."""
    serve_cmd = sub.add_parser("serve", help="run one service (configured by DEJA_* environment variables)")
    serve_cmd.add_argument("service", choices=list(SERVICES))
    sub.add_parser("config", help="print every DEJA_* setting as a Markdown table")


def run_command(args: argparse.Namespace) -> bool:
    """Run `serve` or `config`; False when the command is not one of the runtime's."""
    if args.command == "serve":
        serve(args.service)
    elif args.command == "config":
        print_config()
    else:
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services", description="Run one Deja service.")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        run_command(args)
    except ConfigError as exc:
        print(f"deja: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
