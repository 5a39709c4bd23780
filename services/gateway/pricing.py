"""Estimated cost of an answer served from cache, from a configurable price table.

`DEJA_PRICES` is JSON: model name -> [input, output] US dollars per million tokens. A model
matches its own name or the longest table name it starts with ("gpt-4o-mini-2024-07-18"
-> "gpt-4o-mini"), so dated snapshots are priced without listing each. Unknown models are
counted as tokens but priced at zero (and labelled "other" in metrics, which keeps the label
set bounded whatever model strings clients send). The defaults are list prices at the time of
writing; set your own contract prices.
"""

from __future__ import annotations

import orjson

from deja.settings import ConfigError

DEFAULT_PRICES = {
    "gpt-4o": [2.50, 10.00],
    "gpt-4o-mini": [0.15, 0.60],
    "gpt-4.1": [2.00, 8.00],
    "gpt-4.1-mini": [0.40, 1.60],
    "gpt-4.1-nano": [0.10, 0.40],
    "o3": [2.00, 8.00],
    "o4-mini": [1.10, 4.40],
    "claude-sonnet-4": [3.00, 15.00],
    "claude-opus-4": [15.00, 75.00],
    "claude-3-5-haiku": [0.80, 4.00],
}


class PriceTable:
    def __init__(self, prices: dict[str, list[float]]) -> None:
        self._prices = prices
        self._by_length = sorted(prices, key=len, reverse=True)

    @classmethod
    def parse(cls, text: str) -> PriceTable:
        """From DEJA_PRICES ("" = the defaults); malformed tables fail at start-up, naming the variable."""
        if not text.strip():
            return cls(dict(DEFAULT_PRICES))
        try:
            table = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"DEJA_PRICES: not JSON ({exc})") from None
        ok = isinstance(table, dict) and all(
            isinstance(v, list) and len(v) == 2 and all(isinstance(p, int | float) and p >= 0 for p in v)
            for v in table.values()
        )
        if not ok:
            raise ConfigError('DEJA_PRICES: expected {"model": [input_usd_per_1M, output_usd_per_1M], ...}')
        return cls({str(k): [float(p) for p in v] for k, v in table.items()})

    def match(self, model: str) -> str | None:
        if model in self._prices:
            return model
        return next((name for name in self._by_length if model.startswith(name)), None)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> tuple[str, float]:
        """(metrics label, US dollars) for one answer."""
        name = self.match(model)
        if name is None:
            return "other", 0.0
        per_input, per_output = self._prices[name]
        return name, (prompt_tokens * per_input + completion_tokens * per_output) / 1_000_000
