"""`GET /openapi.json`: the gateway's OpenAPI 3.1 description, written by hand next to the routes.

Hand-written because the gateway's inputs are validated by hand (`openai/request`, `anthropic/request`,
`cache_headers`, the admin and session handlers), not by a framework that could generate it; the
schemas below state the same rules. tests/test_openapi_fuzz.py keeps it honest: every route of
the app is described with its methods (and nothing else is), and a property-based run throws
requests that break these schemas at every operation.

The provider's own endpoints that the gateway passes through uncached (`/v1/models`,
`/v1/embeddings`, `/v1/messages/count_tokens`, ...) are not described beyond `GET /v1/models`:
their contract is the provider's.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from deja.ids import ENTRY_ID_PATTERN, NAMESPACE_PATTERN, SESSION_ID_PATTERN, TENANT_PATTERN

SESSION_ID = f"^{SESSION_ID_PATTERN}$"  # the rules of deja/ids.py, anchored as JSON Schema patterns
ENTRY_ID = f"^{ENTRY_ID_PATTERN}$"
TENANT = f"^{TENANT_PATTERN}$"
NAMESPACE = f"^{NAMESPACE_PATTERN}$"

OPENAI_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
ANTHROPIC_ERROR = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}
INT = {"type": "integer"}
NUMBER = {"type": "number"}
TEXT_PARTS = {"type": "array", "items": {"type": "object"}}

CHAT_REQUEST = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role"],
                "properties": {
                    "role": {"enum": ["system", "developer", "user", "assistant", "tool", "function"]},
                    "content": {"type": ["string", "array", "null"], "items": {"type": "object"}},
                },
            },
        },
        "stream": {"type": ["boolean", "null"]},
        "stream_options": {"type": ["object", "null"]},
        "temperature": {"type": ["number", "null"]},
        "top_p": {"type": ["number", "null"]},
        "presence_penalty": {"type": ["number", "null"]},
        "frequency_penalty": {"type": ["number", "null"]},
        "n": {"type": ["integer", "null"]},
        "max_tokens": {"type": ["integer", "null"]},
        "max_completion_tokens": {"type": ["integer", "null"]},
        "seed": {"type": ["integer", "null"]},
        "top_logprobs": {"type": ["integer", "null"]},
        "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
        "tools": {"type": ["array", "null"], "items": {"type": "object"}},
        "functions": {"type": ["array", "null"], "items": {"type": "object"}},
    },
    "additionalProperties": True,  # unknown provider parameters are forwarded (and keyed)
}
MESSAGES_REQUEST = {
    "type": "object",
    "required": ["model", "max_tokens", "messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "max_tokens": {"type": "integer", "minimum": 1},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {
                    "role": {"enum": ["user", "assistant"]},
                    "content": {
                        "oneOf": [
                            {"type": "string"},
                            {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["type"],
                                    "properties": {"type": {"type": "string"}},
                                },
                            },
                        ]
                    },
                },
            },
        },
        "system": {"type": ["string", "array", "null"], "items": {"type": "object"}},
        "stream": {"type": ["boolean", "null"]},
        "temperature": {"type": ["number", "null"]},
        "top_p": {"type": ["number", "null"]},
        "top_k": {"type": ["integer", "null"]},
        "stop_sequences": {"type": ["array", "null"], "items": {"type": "string"}},
        "tools": {"type": ["array", "null"], "items": {"type": "object"}},
        "tool_choice": {"type": ["object", "null"]},
        "metadata": {"type": ["object", "null"]},
        "thinking": {"type": ["object", "null"]},
    },
    "additionalProperties": True,
}
ENTRY = {
    "type": "object",
    "properties": {
        "tenant": {"type": "string"},
        "entry_id": {"type": "string"},
        "namespace": {"type": "string"},
        "api_format": {"type": "string"},
        "model": {"type": "string"},
        "prompt": {"type": "string"},
        "created_at": INT,
        "expires_at": INT,
        "size_bytes": INT,
    },
}
FILTER_PROPERTIES = {
    "namespace": {"type": "string", "pattern": f"^$|{NAMESPACE}"},
    "model": {"type": "string", "minLength": 1, "maxLength": 1000},
    "prompt": {"type": "string", "minLength": 1, "maxLength": 1000},
    "entry_ids": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"type": "string", "pattern": ENTRY_ID}},
    "dry_run": {"type": "boolean"},
}
INVALIDATION = {
    "type": "object",
    "properties": {
        "object": {"const": "cache.invalidation"},
        "dry_run": {"type": "boolean"},
        "deleted": INT,
        "matched": INT,
        "semantic_points_deleted": {"type": ["integer", "null"]},
        "entries": {"type": "array", "items": ENTRY},
    },
}
SESSION_MESSAGE = {
    "type": "object",
    "properties": {"seq": INT, "role": {"type": "string"}, "content": {"type": "string"}, "created_at": INT},
}


def _json(schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"description": description or "OK", "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int, anthropic: bool = False) -> dict[str, Any]:
    schema = ANTHROPIC_ERROR if anthropic else OPENAI_ERROR
    return {str(status): _json(schema, "error") for status in statuses}


def _header(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "schema": schema, "description": description}


def _query(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def _path(name: str, pattern: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": pattern}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


CACHE_HEADERS = [
    _header("Cache-Control", {"type": "string"}, "no-store, no-cache, max-age=N (the entry's TTL and freshness)"),
    _header("X-Deja-TTL", {"type": "string", "pattern": "^[0-9]*[1-9][0-9]*$"}, "the entry's TTL in seconds"),
    _header("X-Deja-Namespace", {"type": "string", "pattern": NAMESPACE}, "a partition inside the tenant"),
    _header("X-Deja-Semantic", {"enum": ["on", "off"]}, "off: exact tier only"),
    _header(
        "X-Deja-Threshold",
        {"type": "string", "pattern": r"^(0(\.[0-9]+)?|1(\.0+)?)$"},
        "a stricter verifier threshold for this request (a looser one is ignored)",
    ),
    _header(
        "X-Deja-Max-Error",
        {"type": "string", "pattern": r"^(0(\.[0-9]+)?|1(\.0+)?)$"},
        "a smaller error budget for this request (a larger one is ignored)",
    ),
    _header("X-Deja-Judge", {"enum": ["on", "off"]}, "off: no judge call, the uncertain band is a miss"),
    _header(
        "X-Deja-Format",
        {"enum": ["tauq"]},
        "JSON in the answer (tool-call arguments, JSON content) in Tauq notation; a stream is a 400",
    ),
]
SESSION_HEADERS = [
    _header("X-Session-ID", {"type": "string", "pattern": SESSION_ID}, "record this turn in the session"),
    _header("X-Deja-Memory", {"enum": ["recall"]}, "put the session's recent turns in front of the request"),
]
CACHE_RESPONSE_HEADERS = {
    "X-Deja-Cache": {"schema": {"enum": ["hit-exact", "hit-semantic", "hit-judged", "miss", "bypass", "refresh"]}},
    "X-Deja-Judge": {
        "schema": {"enum": ["yes", "no", "timeout", "error", "unclear", "expired"]},
        "description": "the judge was asked: yes on hit-judged, otherwise why the match was not served",
    },
    "X-Deja-Entry": {"schema": {"type": "string"}, "description": "the entry id, on hits and stores"},
    "Age": {"schema": {"type": "string"}, "description": "seconds since the answer was cached (hits)"},
    "X-Deja-Semantic": {
        "schema": {"enum": ["shed"]},
        "description": "shed: a miss not looked up semantically, the tier was saturated (its answer is not indexed)",
    },
    "X-Deja-Format": {"schema": {"enum": ["tauq"]}, "description": "JSON in this answer was converted to Tauq"},
}


def _cached_operation(summary: str, request: dict, answer: dict, *, anthropic: bool, headers: list) -> dict:
    ok = {
        "description": "the provider's answer, or a cached one (JSON, or server-sent events when stream is true)",
        "headers": CACHE_RESPONSE_HEADERS,
        "content": {"application/json": {"schema": answer}, "text/event-stream": {"schema": {"type": "string"}}},
    }
    return {
        "summary": summary,
        "parameters": headers,
        "requestBody": _body(request),
        "security": [{"apiKey": []}, {"bearer": []}] if anthropic else [{"bearer": []}],
        "responses": {"200": ok, **_errors(400, 401, 413, 429, 500, 502, 504, anthropic=anthropic)},
    }


def _admin(summary: str, **operation: Any) -> dict[str, Any]:
    responses = operation.pop("responses")
    return {
        "summary": summary,
        "security": [{"admin": []}],
        "responses": {**responses, **_errors(400, 401, 403, 404)},
        **operation,
    }


def _tenant(summary: str, **operation: Any) -> dict[str, Any]:
    responses = operation.pop("responses")
    return {
        "summary": summary,
        "security": [{"bearer": []}, {"apiKey": []}],
        "responses": {**responses, **_errors(400, 401, 404, 503)},
        **operation,
    }


def build_spec() -> dict[str, Any]:
    filters = [
        _query("namespace", {"type": "string", "pattern": NAMESPACE}, "only this namespace"),
        _query("model", {"type": "string", "minLength": 1, "maxLength": 1000}, "only this model"),
        _query("prompt", {"type": "string", "minLength": 1, "maxLength": 1000}, "prompt contains (any case)"),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "newest first; default 100"),
    ]
    tenant_query = _query("tenant", {"type": "string", "pattern": TENANT}, "tenant id: hex blake3 of its key", True)
    entry_list = _json(
        {
            "type": "object",
            "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": ENTRY}, "matched": INT},
        }
    )
    rate = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
    stats_schema = {
        "type": "object",
        "properties": {
            "tenant": {"type": "string", "description": "first 16 hex of the tenant hash"},
            "hits": {"type": "object", "properties": {"exact": INT, "semantic": INT, "judged": INT, "total": INT}},
            "judged_share": rate,
            "misses": INT,
            "hit_rate": rate,
            "entries": INT,
            "bytes": INT,
            "tokens_saved": INT,
            "tokens_saved_net_of_judge": {"type": "integer"},
            "judge": {
                "type": "object",
                "properties": {k: INT for k in ("calls", "yes", "no", "failed", "input_tokens", "output_tokens")},
            },
            "audits": {
                "type": "object",
                "properties": {"judged": INT, "wrong": INT, "error_rate": rate, "error_rate_upper95": rate},
            },
            "feedback": {"type": "object", "properties": {"correct": INT, "incorrect": INT, "false_hit_rate": rate}},
            "error_budget": {
                "type": "object",
                "description": "the tenant's error budget, the thresholds its evidence gives, what it measured",
                "properties": {
                    "max_error": rate,
                    "judge_floor": rate,
                    "judge": {"type": "boolean"},
                    "audit_rate": rate,
                    "serve_threshold": {**rate, "description": "null: no score is backed by enough evidence yet"},
                    "observations": INT,
                    "error_rate": rate,
                    "error_rate_upper95": rate,
                },
            },
        },
    }
    session_ops_headers = [_path("session_id", SESSION_ID)]
    paths: dict[str, Any] = {
        "/v1/chat/completions": {
            "post": _cached_operation(
                "OpenAI chat completions, cached",
                CHAT_REQUEST,
                {"type": "object"},
                anthropic=False,
                headers=CACHE_HEADERS + SESSION_HEADERS,
            )
        },
        "/v1/messages": {
            "post": _cached_operation(
                "Anthropic Messages, cached",
                MESSAGES_REQUEST,
                {"type": "object"},
                anthropic=True,
                headers=[
                    *CACHE_HEADERS,
                    _header("anthropic-version", {"type": "string"}, "passed through"),
                    _header("anthropic-beta", {"type": "string"}, "passed through (and part of the key)"),
                ],
            )
        },
        "/v1/models": {
            "get": {
                "summary": "the provider's model list, passed through uncached",
                "responses": {"200": _json({"type": "object"})},
            }
        },
        "/v1/cache/stats": {"get": _tenant("the caller's cache statistics", responses={"200": _json(stats_schema)})},
        "/v1/cache/entries": {
            "get": _tenant("the caller's recent entries", parameters=filters, responses={"200": entry_list})
        },
        "/v1/cache/entries/{entry_id}": {
            "delete": _tenant(
                "delete one of the caller's entries from both tiers",
                parameters=[_path("entry_id", ENTRY_ID), filters[0]],
                responses={"200": _json(INVALIDATION)},
            )
        },
        "/v1/cache/invalidate": {
            "post": _tenant(
                "delete the caller's entries matching a filter, in both tiers",
                requestBody=_body({"type": "object", "properties": FILTER_PROPERTIES, "additionalProperties": False}),
                responses={"200": _json(INVALIDATION)},
            )
        },
        "/v1/cache/feedback": {
            "post": _tenant(
                "say whether a served answer was right; a wrong one leaves the semantic tier at once",
                requestBody=_body(
                    {
                        "type": "object",
                        "required": ["entry_id", "correct"],
                        "additionalProperties": False,
                        "properties": {
                            "entry_id": {"type": "string", "pattern": ENTRY_ID},
                            "correct": {"type": "boolean"},
                            "namespace": FILTER_PROPERTIES["namespace"],
                        },
                    }
                ),
                responses={"200": _json({"type": "object"})},
            )
        },
        "/v1/admin/entries": {
            "get": _admin(
                "a tenant's recent entries", parameters=[tenant_query, *filters], responses={"200": entry_list}
            )
        },
        "/v1/admin/entries/{entry_id}": {
            "delete": _admin(
                "delete one entry of a tenant from both tiers",
                parameters=[_path("entry_id", ENTRY_ID), tenant_query, filters[0]],
                responses={"200": _json(INVALIDATION)},
            )
        },
        "/v1/admin/invalidate": {
            "post": _admin(
                "delete the entries matching a filter in a tenant (or every tenant), in both tiers",
                requestBody=_body(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            **FILTER_PROPERTIES,
                            "tenant": {"type": "string", "pattern": TENANT},
                            "all_tenants": {"const": True},
                        },
                        "oneOf": [{"required": ["tenant"]}, {"required": ["all_tenants"]}],
                    }
                ),
                responses={"200": _json(INVALIDATION)},
            )
        },
        "/v1/admin/stats": {
            "get": _admin(
                "a tenant's statistics, with feedback and the measured false-hit rate",
                parameters=[tenant_query],
                responses={"200": _json(stats_schema)},
            )
        },
        "/v1/sessions/{session_id}": {
            "get": _tenant(
                "a session's whole history",
                parameters=session_ops_headers,
                responses={
                    "200": _json(
                        {"type": "object", "properties": {"messages": {"type": "array", "items": SESSION_MESSAGE}}}
                    )
                },
            ),
            "delete": _tenant(
                "delete a session everywhere",
                parameters=session_ops_headers,
                responses={"200": _json({"type": "object"})},
            ),
        },
        "/v1/sessions/{session_id}/recent": {
            "get": _tenant(
                "a session's last n messages",
                parameters=[*session_ops_headers, _query("n", {"type": "integer", "minimum": 1, "maximum": 1000}, "")],
                responses={"200": _json({"type": "object"})},
            )
        },
        "/v1/sessions/{session_id}/context": {
            "post": _tenant(
                "recent messages and the archived ones most relevant to a query",
                parameters=session_ops_headers,
                requestBody=_body(
                    {
                        "type": "object",
                        "required": ["query"],
                        "properties": {
                            "query": {"type": "string", "minLength": 1, "maxLength": 8192},
                            "n": {"type": "integer", "minimum": 1, "maximum": 1000},
                            "k": {"type": "integer", "minimum": 0, "maximum": 100},
                        },
                    }
                ),
                responses={"200": _json({"type": "object"})},
            )
        },
        "/healthz": {"get": {"summary": "the process is alive", "responses": {"200": _json({"type": "object"})}}},
        "/readyz": {
            "get": {
                "summary": "which cache tiers are up (stays 200: the gateway fails open)",
                "responses": {"200": _json({"type": "object", "required": ["status", "tiers"]})},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}},
            }
        },
        "/openapi.json": {"get": {"summary": "this document", "responses": {"200": _json({"type": "object"})}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Deja gateway",
            "version": "1",
            "description": (
                "A cache in front of OpenAI- and Anthropic-compatible providers. Every other /v1 path is "
                "passed through to the provider uncached (to the Anthropic upstream when the request carries "
                "anthropic-version or is under /v1/messages/). Errors use the API's own shape: OpenAI's "
                "{error: {message, type, param, code}}, Anthropic's {type: error, error: {type, message}} "
                "on /v1/messages."
            ),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the provider key; its hash is the tenant",
                },
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key", "description": "Anthropic-style key"},
                "admin": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "DEJA_ADMIN_KEY (the admin API is off without it)",
                },
            }
        },
    }


SPEC = build_spec()


async def _openapi_json(request: Request) -> Response:
    return JSONResponse(SPEC)


def openapi_routes() -> list[Route]:
    return [Route("/openapi.json", _openapi_json, methods=["GET"])]
