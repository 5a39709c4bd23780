"""JSON answers from the mock, as a model asked for structured output gives them.

    OpenAI: response_format {"type": "json_object" | "json_schema"}  -> the content is one JSON object
    either API: a last user turn that says "in JSON" (any case)       -> the object in one ```json
                                                                        fenced block, as chat models write it

The object (search results: a list of records, a total) is derived from the request, so the same
request always gets the same JSON.
"""

from __future__ import annotations

import blake3
import orjson

from services.mock_provider.answers import VOCABULARY

_TAGS = ("cache", "latency", "tokens", "agents", "verify", "stream")


def json_text(body: dict, prompt: str) -> str | None:
    """The answer's text when the request asks for JSON, else None."""
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema"):
        return orjson.dumps(_results(body, prompt)).decode()
    if "in json" in prompt.lower():
        return "```json\n" + orjson.dumps(_results(body, prompt), option=orjson.OPT_INDENT_2).decode() + "\n```"
    return None


def _results(body: dict, prompt: str) -> dict:
    digest = blake3.blake3(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).digest(64)
    records = [
        {
            "id": 1000 + digest[i],
            "title": " ".join(VOCABULARY[b % len(VOCABULARY)] for b in digest[i + 1 : i + 4]).capitalize(),
            "score": round(digest[i + 4] / 255, 3),
            "tags": [_TAGS[digest[i + 5] % len(_TAGS)], _TAGS[digest[i + 6] % len(_TAGS)]],
            "verified": digest[i + 7] % 2 == 0,
        }
        for i in range(0, 40, 8)
    ]
    return {"query": prompt[:80], "results": records, "total": len(records), "next_page": None}
