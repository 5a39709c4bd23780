import subprocess
import sys
from dataclasses import dataclass

import pytest

from deja.settings import ConfigError, describe, load, setting
from services.gateway.settings import GatewaySettings
from services.store.settings import StoreSettings


@dataclass(frozen=True)
class Example:
    name: str = setting("DEJA_X_NAME", None, "a required name")
    count: int = setting("DEJA_X_COUNT", 3, "a count", minimum=1)
    ratio: float = setting("DEJA_X_RATIO", 0.5, "a ratio")
    flag: bool = setting("DEJA_X_FLAG", False, "a flag")


def test_parses_each_type_and_keeps_defaults():
    loaded = load(Example, {"DEJA_X_NAME": "n", "DEJA_X_RATIO": "0.25", "DEJA_X_FLAG": "yes"})
    assert loaded == Example(name="n", count=3, ratio=0.25, flag=True)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "DEJA_X_NAME is required"),
        ({"DEJA_X_NAME": "n", "DEJA_X_COUNT": "many"}, "DEJA_X_COUNT: expected an integer, got 'many'"),
        ({"DEJA_X_NAME": "n", "DEJA_X_COUNT": "0"}, "DEJA_X_COUNT: must be >= 1"),
        ({"DEJA_X_NAME": "n", "DEJA_X_RATIO": "half"}, "DEJA_X_RATIO: expected a number"),
        ({"DEJA_X_NAME": "n", "DEJA_X_FLAG": "maybe"}, "DEJA_X_FLAG: expected a boolean"),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        load(Example, env)


def test_service_level_validation():
    with pytest.raises(ConfigError, match="DEJA_STORE_ADDR: expected host:port"):
        load(GatewaySettings, {"DEJA_STORE_ADDR": "store-without-port"})
    with pytest.raises(ConfigError, match="DEJA_UPSTREAM_URL"):
        load(GatewaySettings, {"DEJA_UPSTREAM_URL": "ftp://example"})
    with pytest.raises(ConfigError, match="DEJA_CACHE_TTL_S"):
        load(StoreSettings, {"DEJA_CACHE_TTL_S": "100", "DEJA_CACHE_MAX_TTL_S": "10"})
    assert load(GatewaySettings, {}).store_addr == "127.0.0.1:50051"


def test_a_service_with_bad_config_exits_at_once_naming_the_variable():
    result = subprocess.run(
        [sys.executable, "-m", "services", "serve", "store"],
        env={"DEJA_REDIS_TIMEOUT_MS": "soon", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "DEJA_REDIS_TIMEOUT_MS: expected an integer" in result.stderr
    assert "Traceback" not in result.stderr


def test_readme_documents_every_setting():
    readme = open("README.md").read()
    from services.launcher import settings_classes

    for cls in settings_classes():
        for env, _default, _doc in describe(cls):
            assert f"`{env}`" in readme, f"{env} missing from the README's configuration table"
