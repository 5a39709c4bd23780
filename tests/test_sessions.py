"""Session memory: the store's hot window + archive against a real Redis-protocol server and disk,
relevance through the real embedder service, the real store process (restart, idle archiving),
and the gateway through the real openai SDK (recording, recall, endpoints, tenants, store down)."""

from __future__ import annotations

import asyncio
import json
import struct
import uuid
from pathlib import Path

import anthropic
import httpx
import pytest
import redis
import zstandard

from deja.clients.sessions import SessionClient
from deja.redis_client import is_cluster_url
from deja.settings import ConfigError, load
from deja.v1 import sessions_pb2
from services.gateway.identity import tenant_of
from services.store.redis_store import InvalidRequest
from services.store.sessions.archive import MAGIC
from services.store.sessions.memory import SessionMemory, now_ms
from services.store.sessions.records import Ref
from services.store.sessions.settings import SessionSettings
from services.store.sessions.wiring import build_memory
from tests.helpers import make_cluster, on_every_redis, sdk, service_process, until
from tools.cluster import free_port

pytestmark = pytest.mark.integration

MODEL = "gpt-4o-mini"
WINDOW, BATCH = 4, 2  # small, so a few turns overflow into the archive
DAY_MS = 86_400_000


def settings(archive: Path, embedder_port: int | None = None, **env: str) -> SessionSettings:
    return load(
        SessionSettings,
        {
            "DEJA_SESSION_WINDOW": str(WINDOW),
            "DEJA_SESSION_SPILL_BATCH": str(BATCH),
            "DEJA_SESSION_ARCHIVE_DIR": str(archive),
            "DEJA_SESSION_RETENTION_S": "3600",
            "DEJA_EMBEDDER_ADDR": f"127.0.0.1:{embedder_port or free_port()}",  # nothing there unless given
            **env,
        },
    )


def msg(content: str, role: str = "user") -> sessions_pb2.SessionMessage:
    return sessions_pb2.SessionMessage(role=role, content=content)


def new_ref(session_id: str = "chat-1") -> Ref:
    return Ref(uuid.uuid4().hex, session_id)


@pytest.fixture
def session_redis(any_redis_url):
    """A database of its own: the idle sweep walks every tenant in it (the Valkey Cluster has only one)."""
    if is_cluster_url(any_redis_url):
        return any_redis_url
    url = any_redis_url.rsplit("/", 1)[0] + "/7"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
async def make_memory(session_redis, tmp_path):
    made: list[SessionMemory] = []

    def make(archive: Path | None = None, **kwargs) -> SessionMemory:
        memory = build_memory(
            settings(archive or tmp_path / "archive", **kwargs), session_redis, timeout_ms=1000, pool_size=16
        )
        made.append(memory)
        return memory

    yield make
    for memory in made:
        await memory.drain()
        await memory.embedder.close()
        await memory.hot.redis.aclose()


async def append_each(memory: SessionMemory, ref: Ref, contents: list[str]) -> None:
    for i, content in enumerate(contents):
        await memory.append(ref, [msg(content, "user" if i % 2 == 0 else "assistant")])


async def history(memory: SessionMemory, ref: Ref) -> list[str]:
    found = await memory.get(ref)
    assert found is not None
    _info, messages, more = found
    assert not more
    assert [m.seq for m in messages] == list(range(1, len(messages) + 1)), "gaps, doubles or disorder"
    return [m.content for m in messages]


async def hot_keys(memory: SessionMemory, ref: Ref) -> list[bytes]:
    return await memory.hot.redis.keys(f"deja:{{{ref.tenant}}}:s:{ref.key}:*")


# -- the store's session memory -------------------------------------------------------------


@on_every_redis
async def test_overflow_moves_the_oldest_to_the_archive_and_reads_cross_the_boundary(make_memory):
    memory, ref = make_memory(), new_ref()
    contents = [f"message {i}" for i in range(15)]
    await append_each(memory, ref, contents)
    await memory.drain()

    snapshot = await memory.hot.snapshot(ref)
    header = memory.archive.header(ref.tenant, ref.key)
    assert WINDOW <= len(snapshot.messages) <= WINDOW + BATCH
    assert header.turns == header.last_seq == 15 - len(snapshot.messages)
    assert snapshot.messages[0].seq == header.last_seq + 1  # the archive is the exact prefix

    assert await history(memory, ref) == contents
    assert [m.content for m in await memory.recent(ref, 3)] == contents[-3:]
    assert [m.content for m in await memory.recent(ref, 10)] == contents[-10:]  # archive + hot
    info, _, _ = await memory.get(ref)
    assert (info.turns, info.hot + info.archived) == (15, 15)


async def test_an_idle_session_moves_wholly_to_the_archive_and_comes_back(make_memory):
    memory, ref = make_memory(), new_ref()
    await append_each(memory, ref, ["one", "two", "three"])
    created = (await memory.get(ref))[0].created_at_ms

    assert await memory.archive_idle(now_ms() - 3_600_000) == 0  # not idle yet
    assert await memory.archive_idle(now_ms() + 3_600_001) == 1
    assert await hot_keys(memory, ref) == []  # nothing of it left in Redis
    assert memory.archive.header(ref.tenant, ref.key).turns == 3
    assert await history(memory, ref) == ["one", "two", "three"]

    done = await memory.append(ref, [msg("four")])  # back: numbering carries on from the archive
    assert (done.first_seq, done.hot) == (4, 1)
    assert await history(memory, ref) == ["one", "two", "three", "four"]
    assert [m.content for m in await memory.recent(ref, 2)] == ["three", "four"]
    assert (await memory.get(ref))[0].created_at_ms == created


async def test_a_lease_left_by_a_crashed_writer_does_not_stall_the_sweep_of_other_sessions(make_memory):
    memory, stuck, other = make_memory(), new_ref("stuck"), new_ref("other")
    for ref in (stuck, other):
        await memory.append(ref, [msg("hello")])
    token = await memory.hot.try_lock(stuck, 60_000)  # as a store process killed mid-move leaves it
    assert await memory.archive_idle(now_ms() + DAY_MS) == 1
    assert await hot_keys(memory, other) == [] and len(await hot_keys(memory, stuck)) == 3  # list, hash, lease
    await memory.hot.unlock(stuck, token)
    assert await memory.archive_idle(now_ms() + DAY_MS) == 1
    assert await history(memory, stuck) == ["hello"]


@on_every_redis
async def test_concurrent_appends_from_two_store_processes_lose_and_double_nothing(make_memory, tmp_path):
    # Two SessionMemory instances over one Redis and one archive directory, as two store
    # replicas would be; spills and idle sweeps run while the appends land.
    first, second = make_memory(tmp_path / "shared"), make_memory(tmp_path / "shared")
    ref = new_ref()

    async def pair(i: int) -> None:
        await (first if i % 2 else second).append(ref, [msg(f"q{i}"), msg(f"a{i}", "assistant")])

    async def sweeps() -> None:
        for _ in range(10):
            await first.archive_idle(now_ms() + DAY_MS)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(pair(i) for i in range(60)), sweeps())
    await first.drain()
    await second.drain()
    contents = await history(first, ref)
    assert len(contents) == 120 and len(set(contents)) == 120
    for q, a in zip(contents[::2], contents[1::2], strict=True):
        assert a == "a" + q[1:], "a pair appended together was split"
    assert await history(second, ref) == contents


@on_every_redis
async def test_a_crash_between_archive_write_and_release_leaves_nothing_lost_or_doubled(make_memory, monkeypatch):
    memory, ref = make_memory(), new_ref()
    contents = [f"m{i}" for i in range(7)]
    await append_each(memory, ref, contents[:6])
    await memory.drain()

    async def crash(*args, **kwargs):
        raise ConnectionError("store process died here")

    monkeypatch.setattr(memory.hot, "release", crash)
    with pytest.raises(ConnectionError):
        await memory.move_to_archive(ref, whole=True)
    monkeypatch.undo()
    # The archive file holds every message, Redis still has them too: readers see each once.
    assert memory.archive.header(ref.tenant, ref.key).turns == 6
    assert len((await memory.hot.snapshot(ref)).messages) > 0
    assert await history(memory, ref) == contents[:6]
    await memory.append(ref, [msg(contents[6])])
    assert await memory.move_to_archive(ref) == 1  # the next move clears the leftovers
    assert [m.seq for m in (await memory.hot.snapshot(ref)).messages] == [7]
    assert await history(memory, ref) == contents


@on_every_redis
async def test_sessions_are_scoped_to_their_tenant(make_memory):
    memory = make_memory()
    mine, theirs = new_ref("shared-id"), new_ref("shared-id")
    await append_each(memory, mine, ["secret plan", "noted"])
    await memory.move_to_archive(mine, whole=True)
    await memory.append(mine, [msg("more")])

    assert await memory.get(theirs) is None
    assert await memory.recent(theirs, 5) is None
    assert await memory.context(theirs, "plan", 5, 3) is None
    assert not await memory.delete(theirs)
    await memory.append(theirs, [msg("my own")])
    assert await history(memory, theirs) == ["my own"]
    assert await history(memory, mine) == ["secret plan", "noted", "more"]


async def test_delete_removes_the_session_from_redis_and_the_archive(make_memory):
    memory, ref = make_memory(), new_ref()
    await append_each(memory, ref, [f"m{i}" for i in range(12)])
    await memory.drain()
    assert memory.archive.path(ref.tenant, ref.key).exists() and await hot_keys(memory, ref)

    assert await memory.delete(ref)
    assert not memory.archive.path(ref.tenant, ref.key).exists()
    assert await hot_keys(memory, ref) == []
    assert await memory.get(ref) is None and not await memory.delete(ref)
    assert (await memory.append(ref, [msg("fresh")])).first_seq == 1  # a new session, not a continuation


@on_every_redis
async def test_purge_removes_archives_past_retention_but_not_live_sessions(make_memory):
    memory = make_memory()
    idle, live = new_ref("idle"), new_ref("live")
    for ref in (idle, live):
        await append_each(memory, ref, [f"m{i}" for i in range(8)])
        await memory.drain()
        assert memory.archive.header(ref.tenant, ref.key) is not None
    await memory.move_to_archive(idle, whole=True)

    assert await memory.purge_and_fill(now_ms()) == (0, 0)  # young: kept
    purged, _ = await memory.purge_and_fill(now_ms() + 3_600_001)
    assert purged == 1
    assert await memory.get(idle) is None
    assert memory.archive.header(live.tenant, live.key) is not None  # hot again since: part of a live session
    assert len(await history(memory, live)) == 8


async def test_contents_are_truncated_at_the_limit_and_bad_messages_refused(make_memory):
    memory, ref = make_memory(DEJA_SESSION_MAX_MESSAGE_CHARS="10"), new_ref()
    await memory.append(ref, [msg("x" * 25), msg("short", "assistant")])
    long, short = (await memory.get(ref))[1]
    assert (long.content, long.truncated, short.truncated) == ("x" * 10, True, False)
    for bad in ([msg("hi", role="wizard")], [], [msg("x")] * 101):
        with pytest.raises(InvalidRequest):
            await memory.append(ref, bad)
    with pytest.raises(InvalidRequest):
        Ref.from_proto(sessions_pb2.SessionRef(tenant="t", session_id="has space"))
    with pytest.raises(InvalidRequest):
        Ref.from_proto(sessions_pb2.SessionRef(tenant="t:x", session_id="ok"))


async def test_replies_stay_under_the_grpc_message_limit_however_long_the_messages(make_memory):
    memory, ref = make_memory(DEJA_SESSION_MAX_MESSAGE_CHARS="1000000"), new_ref()
    await append_each(memory, ref, [str(i) * 600_000 for i in range(5)])  # 3 MB of content
    assert [m.seq for m in await memory.recent(ref, 5)] == [3, 4, 5]  # the newest that fit in 2 MiB
    _, first, more = await memory.get(ref)
    _, rest, done = await memory.get(ref, after_seq=first[-1].seq)
    assert ([m.seq for m in first], more, [m.seq for m in rest], done) == ([1, 2, 3], True, [4, 5], False)


async def test_the_archive_header_is_readable_without_decompressing(make_memory):
    memory, ref = make_memory(), new_ref()
    await append_each(memory, ref, [f"message number {i}" for i in range(6)])
    await memory.move_to_archive(ref, whole=True)
    raw = memory.archive.path(ref.tenant, ref.key).read_bytes()
    magic, length = struct.unpack("<8sI", raw[:12])
    header = json.loads(raw[12 : 12 + length])
    assert magic == MAGIC
    assert header["session_id"] == ref.session_id and header["turns"] == 6
    assert header["created_at_ms"] <= header["updated_at_ms"] <= now_ms()
    body = raw[12 + length : 12 + length + header["body_bytes"]]
    lines = zstandard.ZstdDecompressor().decompress(body).splitlines()
    assert [json.loads(line)["c"] for line in lines] == [f"message number {i}" for i in range(6)]


async def test_a_corrupt_archive_file_is_moved_aside_not_half_read(make_memory):
    memory, ref = make_memory(), new_ref()
    await append_each(memory, ref, ["a", "b"])
    await memory.move_to_archive(ref, whole=True)
    path = memory.archive.path(ref.tenant, ref.key)
    path.write_bytes(MAGIC + b"\x05\x00\x00\x00{bad}")
    assert await memory.get(ref) is None
    assert [p.name.split(".corrupt-")[0] for p in path.parent.iterdir()] == [path.name]


def test_settings_refuse_an_idle_time_the_hot_ttl_would_cut_short(tmp_path):
    with pytest.raises(ConfigError, match="DEJA_SESSION_HOT_TTL_S"):
        settings(tmp_path, DEJA_SESSION_HOT_TTL_S="60", DEJA_SESSION_IDLE_AFTER_S="59")


# -- relevance through the real embedder service ------------------------------------------------


@pytest.fixture(scope="module")
def embedder_port(tmp_path_factory):
    port = free_port()
    env = {"DEJA_EMBEDDER_PORT": str(port), "DEJA_EMBEDDER_METRICS_PORT": "0"}
    with service_process("embedder", port, env, tmp_path_factory.mktemp("embedder") / "embedder.log"):
        yield port


TOPICS = [
    ("How do I reverse a list in Python?", "Use reversed(items) or the slice items[::-1]."),
    ("What's a good recipe for banana bread?", "Mash three ripe bananas, mix in flour, sugar and eggs, bake an hour."),
    ("How do I set up nginx as a reverse proxy?", "Add a location block with proxy_pass pointing at your upstream."),
    ("Which hiking trail near Seattle is good for beginners?", "Rattlesnake Ledge: four miles, great views."),
]
FILLER = [f"Short filler turn number {i} about nothing in particular." for i in range(6)]


async def test_context_adds_the_archived_turns_most_similar_to_the_query(make_memory, embedder_port, tmp_path):
    memory, ref = make_memory(embedder_port=embedder_port), new_ref()
    await append_each(memory, ref, [text for pair in TOPICS for text in pair] + FILLER)
    await memory.drain()
    assert memory.archive.header(ref.tenant, ref.key).unembedded == 0

    found = await memory.context(ref, "remind me how to bake banana bread", n=3, k=1)
    assert found.relevant_available
    assert [m.content for m in found.recent] == FILLER[-3:]
    # the best match comes with the rest of its exchange: the question and its answer, in order
    assert [m.content for m, _ in found.relevant] == list(TOPICS[1])
    assert found.relevant[0][1] == found.relevant[1][1] > 0.5
    # Only that exchange clears DEJA_SESSION_MIN_SIMILARITY; without the floor, k=2 brings a second one.
    assert (await memory.context(ref, "remind me how to bake banana bread", n=3, k=2)).relevant == found.relevant
    unfloored = make_memory(tmp_path / "archive", embedder_port=embedder_port, DEJA_SESSION_MIN_SIMILARITY="-1")
    two = await unfloored.context(ref, "remind me how to bake banana bread", n=3, k=2)
    assert len(two.relevant) == 4 and [m.content for m, _ in two.relevant[:2]] == list(TOPICS[1])
    assert two.relevant[0][1] > two.relevant[2][1]
    assert all(m.seq not in {r.seq for r in two.recent} for m, _ in two.relevant)

    everything = await memory.context(ref, "banana bread", n=1000, k=5)  # all recent: nothing left to add
    assert everything.relevant == [] and len(everything.recent) == len(TOPICS) * 2 + len(FILLER)


async def test_turns_archived_while_the_embedder_was_down_get_vectors_later(make_memory, embedder_port, tmp_path):
    down = make_memory(tmp_path / "shared")  # its embedder address has nothing behind it
    ref = new_ref()
    await append_each(down, ref, [text for pair in TOPICS for text in pair] + FILLER)
    await down.drain()
    assert down.archive.header(ref.tenant, ref.key).unembedded > 0
    found = await down.context(ref, "banana bread", n=3, k=2)
    assert (found.relevant, found.relevant_available) == ([], False)  # fails open: recent still answers
    assert [m.content for m in found.recent] == FILLER[-3:]

    up = make_memory(tmp_path / "shared", embedder_port=embedder_port)
    assert await up.purge_and_fill(now_ms()) == (0, 1)
    assert up.archive.header(ref.tenant, ref.key).unembedded == 0
    found = await up.context(ref, "how do I configure an nginx proxy", n=3, k=1)
    assert found.relevant_available and [m.content for m, _ in found.relevant] == list(TOPICS[2])


# -- the real store process ---------------------------------------------------------------------

STORE_ENV = {
    "DEJA_SESSION_WINDOW": str(WINDOW),
    "DEJA_SESSION_SPILL_BATCH": str(BATCH),
    "DEJA_SESSION_IDLE_AFTER_S": "1",
    "DEJA_SESSION_PURGE_INTERVAL_S": "0.2",
}


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """Redis, the store (small window, 1 s idle), the mock provider and the gateway."""
    tmp = tmp_path_factory.mktemp("sessions")
    with make_cluster(tmp, extra_env=STORE_ENV) as cluster:
        yield cluster


def store_client(cluster) -> SessionClient:
    return SessionClient(cluster.store_addr, timeout_s=5)


def hot_keys_in(cluster, tenant: str) -> list[bytes]:
    return redis.Redis(port=cluster.redis_port).keys(f"deja:{{{tenant}}}:s:*")


async def test_a_store_restart_and_a_store_crash_lose_nothing(running):
    ref = sessions_pb2.SessionRef(tenant=uuid.uuid4().hex, session_id="restart")
    client = store_client(running)
    for i in range(15):
        await client.append(ref, [msg(f"before {i}")])
    await client.close()
    running.restart("store")  # SIGTERM: spills in flight finish
    client = store_client(running)
    for i in range(5):
        await client.append(ref, [msg(f"between {i}")])
    await client.close()
    running.kill("store")  # SIGKILL, whatever was in flight
    running.launch(running.procs["store"])
    client = store_client(running)
    _, messages = await client.get(ref)
    assert [m.content for m in messages] == [f"before {i}" for i in range(15)] + [f"between {i}" for i in range(5)]
    assert [m.seq for m in messages] == list(range(1, 21))
    await client.close()


async def test_the_store_archives_idle_sessions_by_itself_and_they_come_back(running):
    ref = sessions_pb2.SessionRef(tenant=uuid.uuid4().hex, session_id="idle")
    client = store_client(running)
    await client.append(ref, [msg("hello"), msg("hi there", "assistant")])
    assert hot_keys_in(running, ref.tenant)
    until(lambda: not hot_keys_in(running, ref.tenant), "the idle session left Redis")
    info, messages = await client.get(ref)
    assert [m.content for m in messages] == ["hello", "hi there"] and (info.hot, info.archived) == (0, 2)
    assert (await client.append(ref, [msg("again")])).first_seq == 3
    assert [m.content for m in await client.recent(ref, 2)] == ["hi there", "again"]
    await client.close()


# -- the gateway ---------------------------------------------------------------------------------


def gateway(cluster, api_key: str = "sk-tenant-a") -> httpx.Client:
    return httpx.Client(base_url=f"{cluster.gateway_url}/v1", headers={"Authorization": f"Bearer {api_key}"})


def session_history(cluster, session_id: str, api_key: str = "sk-tenant-a") -> list[tuple[str, str]]:
    with gateway(cluster, api_key) as http:
        reply = http.get(f"/sessions/{session_id}")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert [m["seq"] for m in body["messages"]] == list(range(1, len(body["messages"]) + 1))
    return [(m["role"], m["content"]) for m in body["messages"]]


def test_the_gateway_records_each_turn_streamed_or_not_cached_or_not(running):
    client, session_id = sdk(running), f"chat-{uuid.uuid4().hex[:8]}"
    headers = {"X-Session-ID": session_id}
    question = f"How do I center a div? {uuid.uuid4().hex[:6]}"
    first = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": question}], extra_headers=headers
    )
    assert first.headers["x-deja-cache"] == "miss"
    answer = first.parse().choices[0].message.content
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "And vertically?"}], stream=True, extra_headers=headers
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    again = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": question}], extra_headers=headers
    )
    until(lambda: len(session_history(running, session_id)) == 6, "three turns were recorded")
    assert again.headers["x-deja-cache"] == "hit-exact"  # answers from the cache are recorded too
    assert session_history(running, session_id) == [
        ("user", question), ("assistant", answer), ("user", "And vertically?"), ("assistant", streamed),
        ("user", question), ("assistant", answer),
    ]  # fmt: skip


def test_recall_puts_recent_turns_in_front_and_the_cache_key_sees_them(running):
    client, session_id = sdk(running), f"recall-{uuid.uuid4().hex[:8]}"
    system = {"role": "system", "content": "You are terse."}
    remember = [{"role": "user", "content": "My name is Ada."}]
    client.chat.completions.create(model=MODEL, messages=remember, extra_headers={"X-Session-ID": session_id})
    question = [system, {"role": "user", "content": f"What is my name? {uuid.uuid4().hex[:6]}"}]
    plain = client.chat.completions.with_raw_response.create(model=MODEL, messages=question)
    recalled = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=question, extra_headers={"X-Session-ID": session_id, "X-Deja-Memory": "recall"}
    )
    assert recalled.headers["x-deja-memory"] == "recalled=2"
    # A hit would mean the key ignored the recalled turns; the provider saw more prompt tokens.
    assert recalled.headers["x-deja-cache"] == "miss"
    assert recalled.parse().usage.prompt_tokens > plain.parse().usage.prompt_tokens
    # Only the client's own new turn is recorded, not the recalled ones again.
    until(lambda: len(session_history(running, session_id)) == 4, "the recall turn was recorded")
    assert [role for role, _ in session_history(running, session_id)] == ["user", "assistant"] * 2


def test_a_long_conversation_overflows_into_the_archive_through_the_gateway(running):
    client, session_id = sdk(running), f"long-{uuid.uuid4().hex[:8]}"
    for i in range(6):
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"turn {i}"}], extra_headers={"X-Session-ID": session_id}
        )
    until(lambda: len(session_history(running, session_id)) == 12, "six turns were recorded")
    users = [content for role, content in session_history(running, session_id) if role == "user"]
    assert users == [f"turn {i}" for i in range(6)]
    tenant_dir = running.state_dir / "sessions" / tenant_of("sk-tenant-a")
    assert any(p.suffix == ".session" for p in tenant_dir.iterdir())
    with gateway(running) as http:
        recent = http.get(f"/sessions/{session_id}/recent", params={"n": 3}).json()
        context = http.post(f"/sessions/{session_id}/context", json={"query": "turn 0", "n": 2, "k": 3}).json()
    assert [m["content"] for m in recent["messages"]][-1].startswith("Mock answer to 'turn 5'")
    assert len(recent["messages"]) == 3 and len(context["recent"]) == 2
    # This cluster runs no embedder: relevance fails open, recent still answers.
    assert (context["relevant"], context["relevant_available"]) == ([], False)


def test_anthropic_messages_are_recorded_and_recalled_in_the_same_sessions(running):
    claude = anthropic.Anthropic(base_url=running.gateway_url, api_key="sk-tenant-a", max_retries=0, timeout=10)
    session_id, model = f"claude-{uuid.uuid4().hex[:8]}", "claude-haiku-4-5"
    memory = {"X-Session-ID": session_id}
    said = claude.messages.create(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "My name is Ada."}], extra_headers=memory
    )
    with claude.messages.stream(
        model=model,
        max_tokens=64,
        messages=[{"role": "user", "content": [{"type": "text", "text": "I like tea."}]}],
        extra_headers=memory,
    ) as stream:
        streamed = stream.get_final_text()
    until(lambda: len(session_history(running, session_id)) == 4, "both turns were recorded")
    # the same key as a bearer token on the endpoints: one key, one tenant, whichever API wrote the turns
    assert session_history(running, session_id) == [
        ("user", "My name is Ada."), ("assistant", said.content[0].text),
        ("user", "I like tea."), ("assistant", streamed),
    ]  # fmt: skip

    question = [{"role": "user", "content": f"What is my name? {uuid.uuid4().hex[:6]}"}]
    plain = claude.messages.create(model=model, max_tokens=64, messages=question)
    raw = claude.messages.with_raw_response.create(
        model=model, max_tokens=64, messages=question, extra_headers={**memory, "X-Deja-Memory": "recall"}
    )
    assert raw.headers["x-deja-memory"] == "recalled=4" and raw.headers["x-deja-cache"] == "miss"
    assert raw.parse().usage.input_tokens > plain.usage.input_tokens
    with httpx.Client(base_url=f"{running.gateway_url}/v1", headers={"x-api-key": "sk-tenant-a"}) as http:
        assert len(http.get(f"/sessions/{session_id}").json()["messages"]) == 6
    with pytest.raises(anthropic.BadRequestError) as bad:  # errors in the route's own shape
        claude.messages.create(model=model, max_tokens=8, messages=question, extra_headers={"X-Session-ID": "a b"})
    assert bad.value.body["type"] == "error" and "X-Session-ID" in bad.value.body["error"]["message"]


def test_session_endpoints_validate_input_and_hide_other_tenants_sessions(running):
    client, session_id = sdk(running), f"mine-{uuid.uuid4().hex[:8]}"
    client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "private"}], extra_headers={"X-Session-ID": session_id}
    )
    until(lambda: len(session_history(running, session_id)) == 2, "the turn was recorded")
    with gateway(running, "sk-tenant-b") as other:
        for reply in (
            other.get(f"/sessions/{session_id}"),
            other.get(f"/sessions/{session_id}/recent"),
            other.post(f"/sessions/{session_id}/context", json={"query": "private"}),
            other.delete(f"/sessions/{session_id}"),
        ):
            assert reply.status_code == 404 and reply.json()["error"]["code"] == "session_not_found"
            assert "private" not in reply.text
    with httpx.Client(base_url=f"{running.gateway_url}/v1") as anonymous:
        assert anonymous.get(f"/sessions/{session_id}").status_code == 401
    with gateway(running) as http:
        for reply, param in (
            (http.get("/sessions/bad%20id"), "session_id"),
            (http.get(f"/sessions/{session_id}/recent", params={"n": 0}), "n"),
            (http.get(f"/sessions/{session_id}/recent", params={"n": "many"}), "n"),
            (http.get(f"/sessions/{session_id}/recent", params={"n": 5000}), "n"),
            (http.post(f"/sessions/{session_id}/context", json={"n": 2}), "query"),
            (http.post(f"/sessions/{session_id}/context", json={"query": "x", "k": -1}), "k"),
        ):
            assert reply.status_code == 400, reply.text
            assert reply.json()["error"]["param"] == param
        assert http.post(f"/sessions/{session_id}/context", content=b"{not json").status_code == 400
        chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        for headers, code in (
            ({"X-Deja-Memory": "recall"}, "missing_session_id"),
            ({"X-Session-ID": "no spaces allowed"}, "invalid_session_id"),
            ({"X-Session-ID": "ok", "X-Deja-Memory": "forget"}, "invalid_memory_mode"),
        ):
            reply = http.post("/chat/completions", json=chat, headers=headers)
            assert (reply.status_code, reply.json()["error"]["code"]) == (400, code)
        deleted = http.delete(f"/sessions/{session_id}")
        assert deleted.json() == {"id": session_id, "object": "session.deleted", "deleted": True}
        assert http.get(f"/sessions/{session_id}").status_code == 404


def test_with_the_store_down_chat_still_works_and_the_endpoints_say_503(running):
    client, session_id = sdk(running), f"down-{uuid.uuid4().hex[:8]}"
    running.kill("store")
    try:
        for mode in ({}, {"X-Deja-Memory": "recall"}):
            raw = client.chat.completions.with_raw_response.create(
                model=MODEL,
                messages=[{"role": "user", "content": f"still there? {uuid.uuid4().hex[:6]}"}],
                extra_headers={"X-Session-ID": session_id, **mode},
            )
            assert raw.parse().choices[0].message.content
        assert raw.headers["x-deja-memory"] == "unavailable"
        with gateway(running) as http:
            reply = http.get(f"/sessions/{session_id}")
        assert reply.status_code == 503 and reply.json()["error"]["code"] == "session_store_unavailable"
    finally:
        running.launch(running.procs["store"])


@pytest.mark.parametrize("text", ["²", "1\x00", "six", "-", "99"])
def test_count_parameters_outside_their_rule_are_a_400_never_a_crash(text):
    from services.gateway.errors import ApiError
    from services.gateway.session_api import _count

    with pytest.raises(ApiError) as refused:
        _count(text, "n", 1, 50)
    assert refused.value.status == 400


def test_count_parameters_accept_decimal_text_with_space_around():
    from services.gateway.session_api import _count

    assert _count(" 7 ", "n", 1, 50) == 7 and _count(7, "n", 1, 50) == 7
    assert _count("\x1f6", "n", 1, 50) == 6  # str.strip() counts "\x1f" as space; int() did not (a 500)
