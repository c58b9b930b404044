"""Topic creation from the catalog, cluster identity and a reachability probe."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas.catalog import CATALOG, TopicSpec

log = logging.getLogger(__name__)


async def _admin(bootstrap: str, timeout_ms: int = 10_000) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    await admin.start()
    return admin


async def create_topics(
    bootstrap: str, replication: int = 1, catalog: tuple[TopicSpec, ...] = CATALOG
) -> list[str]:
    """Create every catalog topic that is missing; return the names created."""
    admin = await _admin(bootstrap)
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in catalog if spec.name not in existing]
        created = []
        for spec in missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            spec.name, spec.partitions, replication, topic_configs=spec.configs()
                        )
                    ]
                )
                created.append(spec.name)
                log.info("topic created", extra={"topic": spec.name, "partitions": spec.partitions})
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        await admin.close()


async def cluster_id(bootstrap: str) -> str:
    admin = await _admin(bootstrap)
    try:
        return str((await admin.describe_cluster())["cluster_id"])
    finally:
        await admin.close()


async def broker_reachable(bootstrap: str, timeout_s: float = 3.0) -> bool:
    try:
        await asyncio.wait_for(cluster_id(bootstrap), timeout_s)
        return True
    except Exception:
        return False
