"""The admin API (DEJA_ADMIN_KEY) and the tenants' own cache endpoints, end to end through the
gateway and the store (exact tier; the semantic side is in test_semantic_gateway.py)."""

import blake3
import httpx
import pytest

from tests.helpers import make_cluster, sdk, unique_prompt, upstream_calls, wait_for_hit

pytestmark = pytest.mark.integration

ADMIN_KEY = "test-admin-key-0123456789"
MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def admin_cluster(tmp_path_factory):
    with make_cluster(tmp_path_factory.mktemp("admin"), extra_env={"DEJA_ADMIN_KEY": ADMIN_KEY}) as running:
        yield running


def tenant_of(key: str) -> str:
    return blake3.blake3(key.encode()).hexdigest()


def admin(cluster, method: str, path: str, key: str = ADMIN_KEY, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, f"{cluster.gateway_url}{path}", headers=headers, **kwargs)


def own(cluster, method: str, path: str, key: str, **kwargs) -> httpx.Response:
    return httpx.request(method, f"{cluster.gateway_url}{path}", headers={"Authorization": f"Bearer {key}"}, **kwargs)


def cache(cluster, key: str, text: str, model: str = MODEL, namespace: str = "") -> str:
    """Ask once and wait until cached; returns the entry id."""
    client, messages = sdk(cluster, key), [{"role": "user", "content": text}]
    headers = {"X-Deja-Namespace": namespace} if namespace else {}
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, extra_headers=headers)
    wait_for_hit(client, model=model, messages=messages, extra_headers=headers)
    return raw.headers["x-deja-entry"]


def outcome(cluster, key: str, text: str, model: str = MODEL, namespace: str = "") -> str:
    headers = {"X-Deja-Namespace": namespace} if namespace else {}
    raw = sdk(cluster, key).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], extra_headers=headers
    )
    return raw.headers["x-deja-cache"]


# -- authentication -----------------------------------------------------------------------


def test_the_admin_api_is_off_without_a_configured_key(cluster):
    calls = upstream_calls(cluster)
    response = admin(cluster, "GET", "/v1/admin/stats", params={"tenant": tenant_of("x")})
    assert response.status_code == 404 and response.json()["error"]["code"] == "admin_api_disabled"
    assert upstream_calls(cluster) == calls  # never forwarded to the provider


@pytest.mark.parametrize(("key", "status"), [("", 401), ("wrong-key-0123456789", 403), ("sk-tenant-a", 403)])
def test_a_missing_or_wrong_admin_key_is_refused(admin_cluster, key, status):
    for method, path, kwargs in (
        ("GET", "/v1/admin/entries", {"params": {"tenant": tenant_of("a")}}),
        ("DELETE", f"/v1/admin/entries/{'0' * 64}", {"params": {"tenant": tenant_of("a")}}),
        ("POST", "/v1/admin/invalidate", {"json": {"all_tenants": True}}),
        ("GET", "/v1/admin/stats", {"params": {"tenant": tenant_of("a")}}),
        ("GET", "/v1/admin/anything-else", {}),
    ):
        response = admin(admin_cluster, method, path, key=key, **kwargs)
        assert response.status_code == status, path
        assert response.json()["error"]["code"] in ("missing_admin_key", "invalid_admin_key")


# -- admin operations ---------------------------------------------------------------------


def test_list_delete_and_stats_of_a_tenant(admin_cluster):
    key = "sk-admin-list"
    first = cache(admin_cluster, key, "How do I center a div? [admin-list-1]")
    second = cache(admin_cluster, key, "How do I sort a list? [admin-list-2]", namespace="docs")
    listed = admin(admin_cluster, "GET", "/v1/admin/entries", params={"tenant": tenant_of(key)}).json()
    assert [e["entry_id"] for e in listed["data"]] == [second, first] and listed["matched"] == 2
    assert listed["data"][0] | {"created_at": 0, "expires_at": 0, "size_bytes": 0} == {
        "tenant": tenant_of(key), "entry_id": second, "namespace": "docs", "api_format": "openai.chat.completions",
        "model": MODEL, "prompt": "How do I sort a list? [admin-list-2]", "created_at": 0, "expires_at": 0,
        "size_bytes": 0,
    }  # fmt: skip
    only_docs = admin(admin_cluster, "GET", "/v1/admin/entries", params={"tenant": tenant_of(key), "namespace": "docs"})
    assert [e["entry_id"] for e in only_docs.json()["data"]] == [second]

    deleted = admin(admin_cluster, "DELETE", f"/v1/admin/entries/{first}", params={"tenant": tenant_of(key)})
    assert deleted.status_code == 200 and deleted.json()["deleted"] == 1
    assert outcome(admin_cluster, key, "How do I center a div? [admin-list-1]") == "miss"
    again = admin(admin_cluster, "DELETE", f"/v1/admin/entries/{first}", params={"tenant": tenant_of("sk-nobody")})
    assert again.status_code == 404

    stats = admin(admin_cluster, "GET", "/v1/admin/stats", params={"tenant": tenant_of(key)}).json()
    assert stats["tenant"] == tenant_of(key) and stats["entries"] >= 1 and stats["hits"]["exact"] >= 2
    assert stats["semantic_points"] is None  # this cluster runs without the semantic tier
    assert stats["feedback"] == {"correct": 0, "incorrect": 0, "false_hit_rate": None}


@pytest.mark.parametrize(
    ("selector", "gone"),
    [
        ({}, {"a", "b", "docs", "other-model"}),
        ({"namespace": "docs"}, {"docs"}),
        ({"model": "gpt-4o"}, {"other-model"}),
        ({"prompt": "PYTHON"}, {"a", "docs"}),
    ],
)
def test_invalidate_by_tenant_namespace_model_or_prompt(admin_cluster, selector, gone):
    key = f"sk-admin-invalidate-{sorted(selector)}"
    texts = {"a": "How do I parse JSON in Python?", "b": "How do I parse JSON in Go?",
             "docs": "How do I parse JSON in Python?", "other-model": "How do I parse YAML?"}  # fmt: skip
    salt = unique_prompt("")[0]["content"]
    where = {"a": ("", MODEL), "b": ("", MODEL), "docs": ("docs", MODEL), "other-model": ("", "gpt-4o")}
    for name, text in texts.items():
        cache(admin_cluster, key, text + salt, model=where[name][1], namespace=where[name][0])
    bystander = cache(admin_cluster, "sk-admin-bystander", texts["a"] + salt)
    dry = admin(admin_cluster, "POST", "/v1/admin/invalidate", json={"tenant": tenant_of(key), **selector,
                                                                      "dry_run": True}).json()  # fmt: skip
    assert dry["dry_run"] and dry["matched"] == len(gone) and dry["deleted"] == 0
    done = admin(admin_cluster, "POST", "/v1/admin/invalidate", json={"tenant": tenant_of(key), **selector}).json()
    assert done["deleted"] == len(gone) and done["semantic_points_deleted"] is None
    for name, text in texts.items():
        expected = "miss" if name in gone else "hit-exact"
        assert outcome(admin_cluster, key, text + salt, model=where[name][1], namespace=where[name][0]) == expected
    assert outcome(admin_cluster, "sk-admin-bystander", texts["a"] + salt) == "hit-exact"
    assert bystander


def test_invalidate_a_model_across_every_tenant(admin_cluster):
    salt = unique_prompt("")[0]["content"]
    keys = ["sk-admin-all-1", "sk-admin-all-2"]
    for key in keys:
        cache(admin_cluster, key, "Old model question" + salt, model="mock-1")
        cache(admin_cluster, key, "Current model question" + salt)
    done = admin(admin_cluster, "POST", "/v1/admin/invalidate", json={"all_tenants": True, "model": "mock-1"}).json()
    assert {e["tenant"] for e in done["entries"]} >= {tenant_of(k) for k in keys}
    for key in keys:
        assert outcome(admin_cluster, key, "Old model question" + salt, model="mock-1") == "miss"
        assert outcome(admin_cluster, key, "Current model question" + salt) == "hit-exact"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "param"),
    [
        ("POST", "/v1/admin/invalidate", {"content": b"{nope"}, None),
        ("POST", "/v1/admin/invalidate", {"json": ["not", "an", "object"]}, None),
        ("POST", "/v1/admin/invalidate", {"json": {}}, "tenant"),
        ("POST", "/v1/admin/invalidate", {"json": {"tenant": "a", "all_tenants": True}}, "tenant"),
        ("POST", "/v1/admin/invalidate", {"json": {"tenant": "has space"}}, "tenant"),
        ("POST", "/v1/admin/invalidate", {"json": {"tenant": "t", "tenat": "typo"}}, "tenat"),
        ("POST", "/v1/admin/invalidate", {"json": {"tenant": "t", "entry_ids": ["xyz"]}}, "entry_ids"),
        ("POST", "/v1/admin/invalidate", {"json": {"tenant": "t", "namespace": "a b"}}, "namespace"),
        ("POST", "/v1/admin/invalidate", {"json": {"tenant": "t", "dry_run": "yes"}}, "dry_run"),
        ("POST", "/v1/admin/invalidate", {"json": {"tenant": "t", "prompt": ""}}, "prompt"),
        ("GET", "/v1/admin/entries", {}, "tenant"),
        ("GET", "/v1/admin/entries", {"params": {"tenant": "t", "limit": "0"}}, "limit"),
        ("GET", "/v1/admin/entries", {"params": {"tenant": "t", "sort": "x"}}, "sort"),
        ("DELETE", "/v1/admin/entries/not-an-id", {"params": {"tenant": "t"}}, "entry_id"),
    ],
)
def test_bad_admin_requests_get_a_clear_4xx(admin_cluster, method, path, kwargs, param):
    response = admin(admin_cluster, method, path, **kwargs)
    assert response.status_code == 400 and "Traceback" not in response.text
    error = response.json()["error"]
    assert error["message"] and error["param"] == param


# -- a tenant's own cache -----------------------------------------------------------------


def test_a_tenant_lists_and_deletes_only_its_own_entries(admin_cluster):
    alice, bob = "sk-self-alice", "sk-self-bob"
    salt = unique_prompt("")[0]["content"]
    mine = cache(admin_cluster, alice, "Alice asks" + salt)
    theirs = cache(admin_cluster, bob, "Bob asks" + salt)
    listed = own(admin_cluster, "GET", "/v1/cache/entries", alice).json()["data"]
    assert mine in [e["entry_id"] for e in listed] and theirs not in [e["entry_id"] for e in listed]
    assert all("tenant" not in e for e in listed)
    # Bob's id means nothing to Alice: 404, and Bob keeps his entry
    assert own(admin_cluster, "DELETE", f"/v1/cache/entries/{theirs}", alice).status_code == 404
    assert outcome(admin_cluster, bob, "Bob asks" + salt) == "hit-exact"
    assert own(admin_cluster, "DELETE", f"/v1/cache/entries/{mine}", alice).json()["deleted"] == 1
    assert outcome(admin_cluster, alice, "Alice asks" + salt) == "miss"
    # invalidating "everything" is everything of Alice's, never Bob's
    cache(admin_cluster, alice, "Alice again" + salt)
    assert own(admin_cluster, "POST", "/v1/cache/invalidate", alice, json={}).json()["deleted"] >= 1
    assert outcome(admin_cluster, bob, "Bob asks" + salt) == "hit-exact"
    assert httpx.get(f"{admin_cluster.gateway_url}/v1/cache/entries").status_code == 401


def test_feedback_is_counted_and_validated(admin_cluster):
    key = "sk-self-feedback"
    entry = cache(admin_cluster, key, "Feedback question" + unique_prompt("")[0]["content"])
    for correct in (True, False):
        response = own(admin_cluster, "POST", "/v1/cache/feedback", key, json={"entry_id": entry, "correct": correct})
        assert response.status_code == 200 and response.json()["correct"] is correct
    stats = admin(admin_cluster, "GET", "/v1/admin/stats", params={"tenant": tenant_of(key)}).json()
    assert (stats["feedback"]["correct"], stats["feedback"]["incorrect"]) == (1, 1)
    assert stats["feedback"]["false_hit_rate"] is None  # no semantic hits served: no rate to measure
    for body, status, param in (
        ({"entry_id": entry}, 400, "correct"),
        ({"entry_id": "abc", "correct": False}, 400, "entry_id"),
        ({"entry_id": entry, "correct": "no"}, 400, "correct"),
        ({"entry_id": entry, "correct": False, "extra": 1}, 400, "extra"),
        ({"entry_id": "f" * 64, "correct": False}, 404, None),
    ):
        response = own(admin_cluster, "POST", "/v1/cache/feedback", key, json=body)
        assert response.status_code == status and response.json()["error"]["param"] == param
    # another tenant's feedback on this entry is "not found" and counts nothing
    assert own(admin_cluster, "POST", "/v1/cache/feedback", "sk-other",
               json={"entry_id": entry, "correct": False}).status_code == 404  # fmt: skip
