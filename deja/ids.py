"""The one rule for each id the services and the gateway accept: tenant, namespace, entry, session.

Each rule is a pattern (for the OpenAPI document), a check (fullmatch: "$" would admit a trailing
newline) and the sentence a client reads when it breaks the rule.
"""

from __future__ import annotations

import re

# Tenants are hex blake3 of an API key (see the gateway); the rule is wider so operators can name test
# tenants, but never admits characters that could forge key or filter structure.
TENANT_PATTERN = r"[A-Za-z0-9_-]{1,128}"
TENANT_RULE = "tenant must be 1-128 characters of [A-Za-z0-9_-]"

# A namespace narrows a tenant's cache (X-Deja-Namespace); "/" and ":" let teams nest them.
NAMESPACE_PATTERN = r"[A-Za-z0-9._:/-]{1,64}"
NAMESPACE_RULE = "1-64 characters of [A-Za-z0-9._:/-]"

# An entry id is the hex blake3 of the entry's exact key.
ENTRY_ID_PATTERN = r"[0-9a-f]{64}"
ENTRY_ID_RULE = "entry id must be 64 lowercase hex characters"

SESSION_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
SESSION_ID_RULE = "session id must be 1-128 characters of [A-Za-z0-9._:-], starting with a letter or digit"

_TENANT = re.compile(TENANT_PATTERN)
_NAMESPACE = re.compile(NAMESPACE_PATTERN)
_ENTRY_ID = re.compile(ENTRY_ID_PATTERN)
_SESSION_ID = re.compile(SESSION_ID_PATTERN)


def is_valid_tenant(tenant: str) -> bool:
    return _TENANT.fullmatch(tenant) is not None


def is_valid_namespace(namespace: str) -> bool:
    return _NAMESPACE.fullmatch(namespace) is not None


def is_valid_entry_id(entry_id: str) -> bool:
    return _ENTRY_ID.fullmatch(entry_id) is not None


def is_valid_session_id(session_id: str) -> bool:
    return _SESSION_ID.fullmatch(session_id) is not None
