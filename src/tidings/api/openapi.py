"""The OpenAPI 3.1 document of the management API, built from its operation list."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tidings import __version__

if TYPE_CHECKING:
    from tidings.api.management import Op

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


def _operation(op: Op) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    out: dict[str, Any] = {
        "operationId": op.op_id,
        "summary": op.summary,
        "tags": [op.tag] if op.tag else [],
        "responses": {
            str(op.status): {
                "description": "success",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "default": {
                "description": "refused: a stable error code",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    }
    if params:
        out["parameters"] = params
    if op.auth == "public":
        out["security"] = []
    if op.method in ("POST", "PUT", "PATCH"):
        props = {}
        for name, f in op.fields.items():
            schema: dict[str, Any] = {"type": f.type, "description": f.help}
            if f.max_length is not None:
                schema["maxLength"] = f.max_length
            props[name] = schema
        schema_obj: dict[str, Any] = {
            "type": "object",
            "properties": props,
            "additionalProperties": False,
        }
        required = [n for n, f in op.fields.items() if f.required]
        if required:
            schema_obj["required"] = required
        out["requestBody"] = {
            "required": bool(required),
            "content": {"application/json": {"schema": schema_obj}},
        }
    return out


def document(ops: list[Op], prefix: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(prefix + op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tidings management API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "tidings_session"},
            },
        },
        "security": [{"token": []}, {"session": []}],
    }
