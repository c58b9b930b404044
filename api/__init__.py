"""The HTTP API: REST queries over ClickHouse, health, metrics."""
