"""OpenAI chat completions (`POST /v1/chat/completions`): `request` (parsing, validation, the exact and
semantic keys), `sse` (stream assembly and replay), `memory` (its piece of session memory) and `format`
(the ApiFormat that binds them to the cache pipeline)."""
