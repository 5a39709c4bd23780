"""A fake OpenAI-compatible provider in the real wire format, for tests, demos and benchmarks (never a default)."""
