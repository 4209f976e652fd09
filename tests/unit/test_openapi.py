"""The OpenAPI document served at /docs describes every route as it really behaves."""

from __future__ import annotations

import pytest

from stadspuls.api import create_app

OPERATIONS = [
    (path, method, operation)
    for path, methods in create_app().openapi()["paths"].items()
    for method, operation in methods.items()
]
#: Routes that read a body of their own (the @context rules need the raw body).
BODY_METHODS = {"post", "put", "patch"}


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS)
def test_every_operation_documents_its_answers(path, method, operation):
    responses = operation["responses"]
    assert "422" not in responses  # invalid parameters are answered 400, not FastAPI's 422
    assert any(code.startswith("2") for code in responses), path
    assert any(code.startswith("4") for code in responses), (method, path)
    assert operation.get("summary"), (method, path)


@pytest.mark.parametrize(
    ("path", "method", "operation"),
    [op for op in OPERATIONS if op[1] in BODY_METHODS],
)
def test_every_write_documents_its_body(path, method, operation):
    content = operation["requestBody"]["content"]
    assert {"application/json", "application/ld+json"} <= set(content), (method, path)
