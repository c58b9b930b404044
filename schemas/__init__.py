"""The contracts of sitroom: event models, the topic catalog, ClickHouse DDL, settings."""
