"""The gateway's miss tally: misses reach the tenant's stats in batches, through the real store service."""

from __future__ import annotations

import uuid

import pytest

from deja.clients import StoreClient
from services.gateway.miss_tally import MissTally
from services.store.main import SERVICE_NAME
from tests.helpers import in_process, serving, store_service, until_async
from tools.cluster import free_port

pytestmark = pytest.mark.integration

LIMITS = {"default_ttl_s": 3600, "max_ttl_s": 86_400, "max_entry_bytes": 1 << 20}


async def test_misses_are_sent_per_tenant_in_one_call_each_and_the_rest_on_close(redis_url):
    port = free_port()
    client = StoreClient(f"127.0.0.1:{port}", timeout_s=1.0)
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    async with in_process(store_service(redis_url, port, **LIMITS)):
        await serving(client, SERVICE_NAME)
        tally = MissTally(client, interval_s=0.05)
        for _ in range(5):
            tally.add(a)
        tally.add(b)

        async def counted() -> bool:
            return (await client.stats(a)).misses == 5 and (await client.stats(b)).misses == 1

        await until_async(counted, "the flusher sent both tenants' misses")
        tally.interval_s = 3600.0  # the flusher sleeps now: only close() can send what follows
        await tally.flush()
        tally.add(a)
        tally.add(a)
        await tally.close()
        assert (await client.stats(a)).misses == 7
        assert (await client.stats(b)).misses == 1
    await client.close()


async def test_a_store_that_is_down_loses_the_counts_but_never_raises():
    client = StoreClient(f"127.0.0.1:{free_port()}", timeout_s=0.2)  # nothing listens there
    tally = MissTally(client, interval_s=0.01)
    tally.add("tenant-a")
    await tally.flush()  # fails open: logged at debug, no exception
    await tally.close()
    await client.close()
