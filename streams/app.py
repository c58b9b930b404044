"""The faust app factory. Settings come in; nothing is read at import time."""

from __future__ import annotations

import faust

from schemas.settings import Settings


def create_app(settings: Settings, bootstrap: str) -> faust.App:
    return faust.App(
        settings.app_id,
        broker=f"kafka://{bootstrap}",
        # No faust tables: state is checkpointed with the rows it produced (see streams/pipeline.py).
        store="memory://",
        web_enabled=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        # tansu answers JoinGroup after half the session timeout; 6 s keeps a worker's start
        # quick and is the smallest value Apache Kafka accepts by default.
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=max(4096, settings.sink_batch_messages * 2),
        producer_acks=-1,
    )
