"""A deterministic simulator of the city's camera analytics.

Every camera reads plates; a crowd gathers at Simpang Lima, smoke rises at Pasar Johar, a
collision happens at Simpang Kaligawe, and the analytics now and then report a
low-confidence "vandalism" that is nothing. The scripted incidents are in
:attr:`CctvSimulator.truth`.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel

from connectors.base import TickSource
from schemas.catalog import CAMERA_EVENTS
from schemas.cctv import CameraEvent, CameraRegistry, EventKind


@dataclass(frozen=True)
class Scripted:
    camera_id: str
    kind: EventKind
    start: float
    end: float
    confidence: tuple[float, float]


class CctvSimulator(TickSource):
    name = "cctv-simulator"
    topic = CAMERA_EVENTS

    def __init__(self, registry: CameraRegistry, seed: int = 7, interval_s: float = 30.0,
                 start: float | None = None, duration_s: float | None = None, realtime: bool = True) -> None:  # fmt: skip
        self.rng = random.Random(seed)
        self._clock(interval_s, start, duration_s, realtime)
        self.cameras = registry.cameras
        s = self.start
        self.truth = [
            Scripted("CAM-PASARJOHAR", EventKind.FIRE_SMOKE, s + 60, s + 360, (0.7, 0.95)),
            Scripted("CAM-KALIGAWE", EventKind.ACCIDENT, s + 120, s + 210, (0.88, 0.97)),
            Scripted("CAM-SIMPANGLIMA", EventKind.CROWD, s + 30, s + 900, (0.72, 0.86)),
        ]

    def key(self, event: BaseModel) -> str:
        assert isinstance(event, CameraEvent)
        return event.camera_id

    def _plate(self) -> str:
        letters = "".join(self.rng.choice(string.ascii_uppercase) for _ in range(2))
        return f"H {self.rng.randint(1, 9999)} {letters}"

    def tick(self, t: float) -> list[CameraEvent]:
        at = datetime.fromtimestamp(t, UTC)
        out = []
        for cam in self.cameras:
            for _ in range(self.rng.randint(1, 4)):
                out.append(CameraEvent(camera_id=cam.id, kind=EventKind.PLATE_READ, confidence=round(self.rng.uniform(0.8, 1.0), 2),
                                       timestamp=at, plate=self._plate(), source=self.name))  # fmt: skip
            if self.rng.random() < 0.02:
                out.append(CameraEvent(camera_id=cam.id, kind=EventKind.VANDALISM, confidence=round(self.rng.uniform(0.3, 0.45), 2),
                                       timestamp=at, source=self.name))  # fmt: skip
        for sc in self.truth:
            if sc.start <= t < sc.end:
                people = self.rng.randint(150, 600) if sc.kind is EventKind.CROWD else None
                out.append(CameraEvent(camera_id=sc.camera_id, kind=sc.kind, confidence=round(self.rng.uniform(*sc.confidence), 2),
                                       timestamp=at, people=people, source=self.name))  # fmt: skip
        return out

    def events_at(self, t: float) -> list[CameraEvent]:
        return self.tick(t)
