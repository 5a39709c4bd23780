"""Cache-wide gauges for Prometheus: tenants, live entries and bytes, refreshed in the background.

Per-tenant numbers are served by the Stats RPC (and the gateway's /v1/cache/stats); these
totals are for dashboards, so a scan every `interval_s` is fresh enough and keeps the cost
of a scrape at zero.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Gauge

from deja.logs import get_logger
from services.store.redis_store import RedisExactStore, totals

log = get_logger("deja.store")

TENANTS = Gauge("deja_store_tenants", "tenants with an exact-cache index")
ENTRIES = Gauge("deja_store_entries", "live exact-cache entries, all tenants")
BYTES = Gauge("deja_store_bytes", "stored bytes of exact-cache entries, all tenants")


async def refresh_totals(store: RedisExactStore, interval_s: float = 15.0) -> None:
    while True:
        try:
            tenants, entries, nbytes = await totals(store.redis)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis down: the gauges keep their last values; health says the rest
            log.debug("totals_refresh_failed", error=repr(exc))
        else:
            TENANTS.set(tenants)
            ENTRIES.set(entries)
            BYTES.set(nbytes)
        await asyncio.sleep(interval_s)
