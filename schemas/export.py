"""JSON Schema export of every event type in the catalog."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.catalog import CATALOG


def export_json_schemas(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for spec in CATALOG:
        if spec.schema is None:
            continue
        schema = spec.schema.model_json_schema()
        schema["$id"] = f"urn:sitroom:topic:{spec.name}"
        schema["description"] = spec.description
        schema["x-topic"] = {
            "name": spec.name,
            "key": spec.key,
            "partitions": spec.partitions,
            "retention_ms": spec.retention_ms,
            "department": spec.department,
        }
        path = out_dir / f"{spec.name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written
