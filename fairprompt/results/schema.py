"""The JSON Schema of results.json, generated from :class:`~fairprompt.results.Results` and checked in beside it.

``python -m fairprompt.results.schema`` rewrites ``fairprompt/results/results.schema.json``; a test fails when the
file and the models drift apart, so a change to the record shows up in review as a schema diff (and, when it
changes the layout, with a new ``schema_version``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fairprompt.results.run import SCHEMA, SCHEMA_VERSION, Results

SCHEMA_FILE = Path(__file__).with_name("results.schema.json")


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the current results.json layout."""
    schema = Results.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{SCHEMA}/{SCHEMA_VERSION}",
            "title": f"{SCHEMA} version {SCHEMA_VERSION}", **{k: v for k, v in schema.items() if k != "title"}}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def main() -> None:
    SCHEMA_FILE.write_text(schema_text(), encoding="utf-8")


if __name__ == "__main__":
    main()
