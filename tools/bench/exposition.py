"""Reading a service's /metrics page: the one Prometheus text parser the benches use.

prometheus_client's own parser (already a runtime dependency), so labels, escapes and histogram
series are read as Prometheus reads them rather than by splitting lines.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def samples(text: str, *names: str) -> list[Sample]:
    """Every sample with one of these names (`x_total`, `x_sum`, `x_count`, ...), in page order."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name in names]
