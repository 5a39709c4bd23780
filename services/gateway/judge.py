"""The judge: for a semantic match the verifier is unsure of, ask the provider itself — with the
client's own key and a cheap model (DEJA_JUDGE_MODEL_OPENAI / DEJA_JUDGE_MODEL_ANTHROPIC) — a strict
yes/no question: would one answer serve both requests?

The call goes out in the API format the client used (its key belongs to that provider), as an
ordinary non-streaming request. Only "yes" serves the cached answer; "no", a timeout
(DEJA_JUDGE_TIMEOUT_MS), a provider error or any other answer is "no verdict" and the request is a
miss forwarded as usual — the client never sees an error from the judge.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from deja.logs import get_logger
from services.gateway.api_format import ApiFormat
from services.gateway.errors import ApiError
from services.gateway.upstream import Upstream

log = get_logger("deja.gateway.judge")

# The provider's mock recognises a judge call by "Deja cache judge"; keep it in the text.
SYSTEM = (
    "You are the Deja cache judge. A cache holds an answer that was written for request A and may reuse it "
    "for request B. Both requests were sent in the same context: the same system prompt, model, tools and "
    "earlier conversation. Be strict: answer yes only if one answer would serve both requests equally well — "
    "the same task, the same language, library and version, the same direction, order, numbers, units and "
    "constraints. If they differ in anything that would change the answer, answer no. "
    "Reply with exactly one word: yes or no."
)
_USER = (
    "Request A:\n<request>\n{a}\n</request>\n\nRequest B:\n<request>\n{b}\n</request>\n\n"
    "Would one answer serve both requests? Reply yes or no."
)
MAX_TOKENS = 3
MAX_QUESTION_CHARS = 4000  # the judge needs the questions, not whole documents
# Only what authenticates and versions the call; nothing else of the client's request goes along.
_PASSED_HEADERS = ("authorization", "x-api-key", "anthropic-version", "openai-organization", "openai-project")
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Verdict:
    same: bool | None  # None: no verdict (timeout, provider error, an answer that is neither yes nor no)
    outcome: str  # "yes", "no", "timeout", "error", "unclear"
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0


def user_prompt(question: str, cached_question: str) -> str:
    def clean(text: str) -> str:
        return text[:MAX_QUESTION_CHARS].replace("</request>", "</ request>").strip()

    return _USER.format(a=clean(cached_question), b=clean(question))


def request_body(api_format: str, model: str, question: str, cached_question: str) -> dict:
    user = user_prompt(question, cached_question)
    if api_format.startswith("anthropic"):
        return {"model": model, "max_tokens": MAX_TOKENS, "temperature": 0, "system": SYSTEM,
                "messages": [{"role": "user", "content": user}]}  # fmt: skip
    return {"model": model, "max_tokens": MAX_TOKENS, "temperature": 0,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]}  # fmt: skip


def read_answer(api_format: str, body: dict) -> tuple[str, int, int]:
    """(text, input tokens, output tokens) of a non-streaming answer in either format."""
    usage = body.get("usage") or {}
    if api_format.startswith("anthropic"):
        blocks = [b for b in body.get("content") or [] if isinstance(b, dict) and b.get("type") == "text"]
        texts = [str(b.get("text", "")) for b in blocks]
        return " ".join(texts), int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    message = ((body.get("choices") or [{}])[0] or {}).get("message") or {}
    text = message.get("content") if isinstance(message.get("content"), str) else ""
    return text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def verdict_of(text: str) -> bool | None:
    """'yes' / 'Yes.' / 'no' -> True / False; anything else (hedging, an essay) -> None."""
    words = _WORD.findall(text.lower())
    if len(words) != 1:
        return None
    return {"yes": True, "no": False}.get(words[0])


class Judge:
    def __init__(self, upstreams: Mapping[str, Upstream], models: Mapping[str, str], timeout_s: float) -> None:
        self.upstreams = upstreams  # by API format name
        self.models = models  # by API format name
        self.timeout_s = timeout_s

    async def ask(
        self, fmt: ApiFormat, client_headers: Mapping[str, str], question: str, cached_question: str
    ) -> Verdict:
        started = time.perf_counter()
        headers = {k: v for k, v in client_headers.items() if k.lower() in _PASSED_HEADERS}
        headers["content-type"] = "application/json"
        body = orjson.dumps(request_body(fmt.name, self.models[fmt.name], question, cached_question))
        try:
            response = await asyncio.wait_for(
                self.upstreams[fmt.name].send("POST", fmt.upstream_path, headers, body, stream=False), self.timeout_s
            )
        except TimeoutError:
            return Verdict(None, "timeout", seconds=time.perf_counter() - started)
        except ApiError as exc:
            log.warning("judge_unreachable", status=exc.status)
            return Verdict(None, "error", seconds=time.perf_counter() - started)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            log.warning("judge_error", status=response.status_code)
            return Verdict(None, "error", seconds=elapsed)
        try:
            answer = orjson.loads(response.content)
            text, tokens_in, tokens_out = read_answer(fmt.name, answer if isinstance(answer, dict) else {})
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError, IndexError):
            return Verdict(None, "unclear", seconds=elapsed)
        same = verdict_of(text)
        outcome = "unclear" if same is None else ("yes" if same else "no")
        return Verdict(same, outcome, tokens_in, tokens_out, elapsed)
