"""Stream state checkpoints in ClickHouse, keyed by Kafka cluster, group, topic, partition.

The cluster id is part of the key because the embedded broker starts empty on every run:
offsets from an earlier broker must never be applied to a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from schemas.clickhouse_ddl import CHECKPOINT_COLUMNS, CHECKPOINTS
from schemas.warehouse import Warehouse


@dataclass(frozen=True)
class Checkpoint:
    topic: str
    partition: int
    offset: int
    state: bytes


class Checkpoints(Protocol):
    async def load(self, topic: str, partition: int) -> Checkpoint | None: ...

    async def save(self, checkpoints: list[Checkpoint]) -> None: ...


class CheckpointStore:
    def __init__(self, warehouse: Warehouse, cluster_id: str, group_id: str) -> None:
        self.warehouse = warehouse
        self.cluster_id = cluster_id
        self.group_id = group_id

    async def load(self, topic: str, partition: int) -> Checkpoint | None:
        rows = await self.warehouse.query(
            f"SELECT offset, state FROM {CHECKPOINTS} FINAL "
            "WHERE cluster_id = {c:String} AND group_id = {g:String} "
            "AND topic = {t:String} AND partition = {p:UInt32}",
            {"c": self.cluster_id, "g": self.group_id, "t": topic, "p": partition},
        )
        if not rows:
            return None
        state = rows[0]["state"]
        raw = state.encode() if isinstance(state, str) else bytes(state)
        return Checkpoint(topic, partition, int(rows[0]["offset"]), raw)

    async def save(self, checkpoints: list[Checkpoint]) -> None:
        now = datetime.now(UTC)
        rows = [
            (self.cluster_id, self.group_id, c.topic, c.partition, c.offset, c.state.decode(), now)
            for c in checkpoints
        ]
        await self.warehouse.insert(CHECKPOINTS, rows, CHECKPOINT_COLUMNS)
