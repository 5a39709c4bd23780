"""The mock provider's ground truth and judge, in process (no network): the gateway's judge
fallbacks and `deja eval --workload` are only as trustworthy as these verdicts and faults."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import orjson
import pytest
from starlette.testclient import TestClient

from deja.settings import ConfigError, load
from services.mock_provider import truth as ground_truth
from services.mock_provider.app import create_app
from services.mock_provider.judge import GARBAGE, flipped
from services.mock_provider.main import MockSettings

MODELS = ["gpt-4o-mini", "claude-haiku-4-5"]
SYSTEM = "You are the Deja cache judge. Answer yes or no only."
WORKLOAD = [
    {"question": "How do I learn Python fast?", "cluster": "c1"},
    {"question": "What is the quickest way to learn Python?", "cluster": "c1"},
    {"question": "How do I cook rice?", "cluster": "c2"},
]


def judge_prompt(a: str, b: str) -> str:
    return (
        f"Request A:\n<request>\n{a}\n</request>\n\nRequest B:\n<request>\n{b}\n</request>\n\n"
        "Would one answer serve both requests? Answer yes or no."
    )


class OpenAI:
    name, counter = "openai", "chat_completions"
    headers = {"authorization": "Bearer k"}

    @staticmethod
    def judge_body(a: str, b: str) -> dict:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": judge_prompt(a, b)}]
        return {"model": "gpt-4o-mini", "messages": messages, "max_tokens": 3, "temperature": 0}

    @staticmethod
    def plain_body(question: str) -> dict:
        return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]}

    @staticmethod
    def post(client: TestClient, body: dict, headers: dict | None = None) -> httpx.Response:
        return client.post("/v1/chat/completions", json=body, headers=OpenAI.headers if headers is None else headers)

    @staticmethod
    def text(response: httpx.Response) -> str:
        return response.json()["choices"][0]["message"]["content"]


class Anthropic:
    name, counter = "anthropic", "messages"
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}

    @staticmethod
    def judge_body(a: str, b: str) -> dict:
        messages = [{"role": "user", "content": judge_prompt(a, b)}]
        return {"model": "claude-haiku-4-5", "max_tokens": 3, "temperature": 0, "system": SYSTEM, "messages": messages}

    @staticmethod
    def plain_body(question: str) -> dict:
        return {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": question}]}

    @staticmethod
    def post(client: TestClient, body: dict, headers: dict | None = None) -> httpx.Response:
        return client.post("/v1/messages", json=body, headers=Anthropic.headers if headers is None else headers)

    @staticmethod
    def text(response: httpx.Response) -> str:
        return response.json()["content"][-1]["text"]


@pytest.fixture(params=[OpenAI, Anthropic], ids=lambda api: api.name)
def api(request):
    return request.param


@pytest.fixture
def truth_file(tmp_path):
    path = tmp_path / "workload.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(row) for row in WORKLOAD) + b"\n\n")
    return path


def make_client(truth=None, **options) -> TestClient:
    return TestClient(create_app(latency_ms=0, models=MODELS, truth=truth, **options))


@pytest.fixture
def client(truth_file):
    return make_client(ground_truth.load(str(truth_file)))


def verdict(client: TestClient, api, a: str, b: str) -> str:
    response = api.post(client, api.judge_body(a, b))
    assert response.status_code == 200, response.text
    return api.text(response)


def test_truth_file_indexes_exact_and_stripped_questions(tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_text('{"question": "  padded? ", "cluster": 7}\n')
    truth = ground_truth.load(str(path))
    assert truth == {"  padded? ": "7", "padded?": "7"}
    assert ground_truth.cluster_of(truth, "padded?") == "7"


def test_judge_follows_the_ground_truth(client, api):
    a, b, c = (row["question"] for row in WORKLOAD)
    assert verdict(client, api, a, b) == "yes"
    assert verdict(client, api, b, a) == "yes"
    assert verdict(client, api, a, c) == "no"
    assert verdict(client, api, a, "Never seen before?") == "no"
    assert verdict(client, api, "Unknown one?", "Unknown two?") == "no"
    # Not in the truth, but the same words: any sane judge says yes.
    assert verdict(client, api, "What  is Deja?", "what is deja?") == "yes"


def test_judge_reply_is_a_normal_completion(client):
    a, b = WORKLOAD[0]["question"], WORKLOAD[1]["question"]
    body = OpenAI.post(client, OpenAI.judge_body(a, b)).json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "yes", "refusal": None}
    usage = body["usage"]
    assert usage["completion_tokens"] == 1
    assert usage["prompt_tokens"] > 0 and usage["total_tokens"] == usage["prompt_tokens"] + 1

    message = Anthropic.post(client, Anthropic.judge_body(a, b)).json()
    assert message["type"] == "message" and message["stop_reason"] == "end_turn"
    assert message["content"] == [{"type": "text", "text": "yes"}]
    assert message["usage"]["output_tokens"] == 1 and message["usage"]["input_tokens"] > 0


def test_judge_streams_in_the_api_format(client, api):
    a, b = WORKLOAD[0]["question"], WORKLOAD[1]["question"]
    response = api.post(client, {**api.judge_body(a, b), "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    if api is OpenAI:
        deltas = [
            orjson.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            for line in response.text.splitlines()
            if line.startswith("data: {")
        ]
        assert "".join(deltas) == "yes" and "data: [DONE]" in response.text
    else:
        assert "event: message_stop" in response.text and '"text":"yes"' in response.text.replace(" ", "")


def test_judge_calls_are_counted_apart_from_answers(client, api):
    a, b, c = (row["question"] for row in WORKLOAD)
    verdict(client, api, a, b)
    verdict(client, api, a, c)
    verdict(client, api, c, "Elsewhere?")
    assert client.get("/mock/stats").json() == {"judge": 3, "judge_yes": 1, "judge_no": 2}
    api.post(client, api.plain_body(a))
    assert client.get("/mock/stats").json()[api.counter] == 1


def test_judge_honours_the_existing_checks(client, api):
    body = api.judge_body("a?", "b?")
    assert api.post(client, body, headers={}).status_code == 401
    assert api.post(client, {**body, "model": "no-such-model"}).status_code == 404
    assert api.post(client, body, headers={**api.headers, "x-mock-status": "429"}).status_code == 429
    if api is Anthropic:
        assert api.post(client, body, headers={"x-api-key": "k"}).status_code == 400
    assert client.get("/mock/stats").json() == {"judge": 4 if api is Anthropic else 3}


def test_noise_flips_a_reproducible_share_of_pairs(client):
    assert client.post("/mock/judge", json={"noise": 0.5}).json()["noise"] == 0.5
    pairs = [(f"Unrelated question {i}?", f"Another topic {i}?") for i in range(200)]
    first = [verdict(client, OpenAI, a, b) for a, b in pairs]
    assert 70 <= first.count("yes") <= 130  # every "yes" is a flipped "no"
    # Same pair, either order, again: the same verdict, so a replayed evaluation is reproducible.
    assert [verdict(client, OpenAI, b, a) for a, b in pairs[:20]] == first[:20]
    assert all(flipped(a, b, 0.5) == (v == "yes") for (a, b), v in zip(pairs, first, strict=True))
    # Noise 1 flips every verdict, a true "yes" included.
    client.post("/mock/judge", json={"noise": 1})
    assert verdict(client, OpenAI, WORKLOAD[0]["question"], WORKLOAD[1]["question"]) == "no"


def test_fault_500_has_the_api_error_shape(client, api):
    client.post("/mock/judge", json={"fault": "500"})
    response = api.post(client, api.judge_body("a?", "b?"))
    assert response.status_code == 500
    if api is OpenAI:
        assert response.json()["error"]["type"] == "server_error"
    else:
        assert response.json()["type"] == "error" and response.json()["error"]["type"] == "api_error"
    # Faults hit judge calls only: an ordinary request is still answered.
    assert api.post(client, api.plain_body("Still fine?")).status_code == 200


def test_fault_garbage_answers_neither_yes_nor_no(client, api):
    client.post("/mock/judge", json={"fault": "garbage"})
    assert verdict(client, api, "a?", "a?") == GARBAGE
    stats = client.get("/mock/stats").json()
    assert stats["judge"] == 1 and "judge_yes" not in stats and "judge_no" not in stats


async def test_fault_timeout_outlasts_a_judge_deadline(api):
    app = create_app(latency_ms=0, models=MODELS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mock") as client:
        await client.post("/mock/judge", json={"fault": "timeout"})
        path = "/v1/chat/completions" if api is OpenAI else "/v1/messages"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.post(path, json=api.judge_body("a?", "b?"), headers=api.headers), 0.3)
        assert (await client.post("/mock/judge", json={"fault": None})).json()["fault"] is None
        response = await client.post(path, json=api.judge_body("a?", "a?"), headers=api.headers)
        assert api.text(response) == "yes"


def test_normal_answers_name_the_cluster_of_a_known_question(client, api):
    question = WORKLOAD[2]["question"]
    text = api.text(api.post(client, api.plain_body(question)))
    assert text.startswith("[cluster c2] Mock answer to 'How do I cook rice?': ")
    assert api.text(api.post(client, api.plain_body(question))) == text  # still deterministic
    assert "[cluster c2]" in api.text(api.post(client, api.plain_body(f"  {question}\n")))
    # An unknown question is answered exactly as a mock without ground truth answers it.
    unknown = api.plain_body("Nobody asked this?")
    assert api.text(api.post(client, unknown)) == api.text(api.post(make_client(), unknown))
    assert "[cluster" not in api.text(api.post(client, unknown))


def test_runtime_truth_merges_and_reset_restores_the_file(client, api):
    size = client.get("/mock/judge").json()["truth_size"]
    config = client.post("/mock/judge", json={"truth": {"Is it late?": "t1", "What time is it?": "t1"}}).json()
    assert config["truth_size"] == size + 2
    assert verdict(client, api, "Is it late?", "What time is it?") == "yes"
    assert api.text(api.post(client, api.plain_body("Is it late?"))).startswith("[cluster t1] ")
    client.post("/mock/judge", json={"noise": 0.3, "fault": "garbage", "latency_ms": 5})
    config = client.post("/mock/judge", json={"reset": True}).json()
    assert config == {"truth_size": size, "noise": 0.0, "fault": None, "latency_ms": 0}
    assert verdict(client, api, "Is it late?", "What time is it?") == "no"
    assert verdict(client, api, WORKLOAD[0]["question"], WORKLOAD[1]["question"]) == "yes"


@pytest.mark.parametrize(
    "body", [{"noise": 2}, {"noise": "x"}, {"fault": "boom"}, {"latency_ms": -5}, {"truth": [1]}, {"what": 1}]
)
def test_bad_judge_config_is_rejected_whole(client, body):
    before = client.get("/mock/judge").json()
    response = client.post("/mock/judge", json={"fault": "garbage", **body})
    assert response.status_code == 400 and "error" in response.json()
    assert client.get("/mock/judge").json() == before


def test_judge_latency_is_its_own_unless_minus_one(api):
    # Judge calls skip the (slow) answer latency by default: a judge is a small, fast model.
    fast = TestClient(create_app(latency_ms=2000, models=MODELS))
    started = time.perf_counter()
    assert verdict(fast, api, "a?", "b?") == "no"
    assert time.perf_counter() - started < 1.5
    slow = TestClient(create_app(latency_ms=300, models=MODELS, judge_latency_ms=-1))
    started = time.perf_counter()
    assert verdict(slow, api, "a?", "b?") == "no"
    assert time.perf_counter() - started >= 0.3


def test_settings(truth_file):
    settings = load(MockSettings, {"DEJA_MOCK_TRUTH": str(truth_file), "DEJA_MOCK_JUDGE_NOISE": "0.25"})
    assert (settings.truth, settings.judge_noise, settings.judge_latency_ms) == (str(truth_file), 0.25, 0)
    with pytest.raises(ConfigError, match="DEJA_MOCK_JUDGE_NOISE"):
        load(MockSettings, {"DEJA_MOCK_JUDGE_NOISE": "1.5"})


def test_rows_with_a_tenant_are_that_tenants_truth(tmp_path):
    # The same question in two tenants' workloads, a duplicate in one and not in the other.
    path = tmp_path / "w.jsonl"
    rows = [
        {"question": "Is it hot?", "cluster": "t1-a", "tenant": "t1"},
        {"question": "Is it warm?", "cluster": "t1-a", "tenant": "t1"},
        {"question": "Is it hot?", "cluster": "t2-a", "tenant": "t2"},
        {"question": "Is it warm?", "cluster": "t2-b", "tenant": "t2"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    app = create_app(latency_ms=0, models=MODELS, truth=ground_truth.load(str(path)))
    with TestClient(app) as client:
        for key, expected in (("sk-x/t1", "yes"), ("sk-x/t2", "no")):
            headers = {"authorization": f"Bearer {key}"}
            response = OpenAI.post(client, OpenAI.judge_body("Is it hot?", "Is it warm?"), headers)
            assert OpenAI.text(response) == expected
            answer = OpenAI.text(OpenAI.post(client, OpenAI.plain_body("Is it warm?"), headers))
            assert f"[cluster {'t1-a' if expected == 'yes' else 't2-b'}]" in answer
    assert (
        ground_truth.tenant_of({"x-api-key": "abc/t9"}) == "t9" and ground_truth.tenant_of({"x-api-key": "abc"}) == ""
    )
