"""HTTP front: OpenAI- and Anthropic-compatible API, cache orchestration and the upstream proxy.

The rooms, from the door inwards:

    main.py, app.py        settings -> the ASGI app: route table, lifespan, error handlers
    tiers.py               the clients and tiers the routes call (store, semantic tier, memory, upstreams, ...)
    pipeline.py            the cache pipeline of a chat route, step by step (one per API format)
    body.py                a request body read once: size limit, JSON, the format's request object
    identity.py            API key -> tenant (bearer token or x-api-key); the admin key check
    cache_headers.py       the request's cache policy and cache control (Cache-Control, X-Deja-*)
    session_memory.py      session memory as a pipeline step: recall before keying, record after
    api_format.py          what the pipeline asks of an API format, and what both formats share
    openai/, anthropic/    one folder per API: request (parse, keys), sse, memory, format (the ApiFormat)
    semantic*.py, admission.py, error_budget.py, evidence.py, judge.py   the semantic tier and its budget
    upstream.py, compact_answers.py, observe.py, pricing.py              provider, Tauq answers, metrics, prices
    miss_tally.py          the tenants' miss counts, sent to the store in batches
    session_api.py         /v1/sessions endpoints
    cache_api/             /v1/cache (tenant.py) and /v1/admin (admin.py) over shared operations.py
    probes.py, openapi.py, namespaces.py, passthrough.py   /healthz /readyz /metrics, /openapi.json,
                           Deja's own 404s, and every other /v1 path to the provider
"""
