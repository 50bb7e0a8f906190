"""The transport demo: a producer and a consumer process joined by a ring and a wake-up topic."""
