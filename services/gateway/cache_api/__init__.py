"""Correcting and reading what is cached, outside the chat path: `tenant` (a tenant's own cache by its
API key, `/v1/cache/...`), `admin` (any tenant's, by the operator's key, `/v1/admin/...`), the
operations and checks both share (`operations`) and the statistics' JSON (`stats`)."""
