"""Anthropic Messages (`POST /v1/messages`): `request` (parsing, validation, the exact and semantic keys),
`sse` (stream assembly and replay), `memory` (its piece of session memory) and `format` (the ApiFormat
that binds them to the cache pipeline, and Anthropic's error shape)."""
