"""Session memory in the store process.

`hot` keeps the last messages of each session in Redis, `archive` keeps the rest in one
zstandard file per session, `memory` moves messages between them (overflow, idle sessions,
retention, delete) and answers reads, `relevance` ranks archived messages against a query,
`servicer` is the gRPC face and `wiring` builds it all from settings.
"""
