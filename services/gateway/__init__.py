"""HTTP front: OpenAI-compatible API, cache orchestration and the upstream proxy."""
