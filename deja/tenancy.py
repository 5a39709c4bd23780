"""The one rule for tenant ids, shared by every service that scopes data by tenant.

Tenants are hex blake3 of an API key (see the gateway); the rule is wider so operators can
name test tenants, but never admits characters that could forge key or filter structure.
"""

from __future__ import annotations

import re

_TENANT = re.compile(r"[A-Za-z0-9_-]{1,128}")
TENANT_RULE = "tenant must be 1-128 characters of [A-Za-z0-9_-]"


def is_valid_tenant(tenant: str) -> bool:
    return _TENANT.fullmatch(tenant) is not None  # fullmatch: "$" would admit a trailing newline
