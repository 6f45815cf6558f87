"""The client's endpoints and models against the server's OpenAPI schema, generated in-process.

Every entry of `vtp_client.endpoints` must name a real route with the method, status, query
parameters and form fields the client uses; every field of its request and response models must
exist on the server with the same JSON type, and be present whenever the client requires it.
So a renamed, retyped or removed field fails here, not in a user's notebook.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field
from vtp_client import endpoints as ep
from vtp_client import models as m

pytestmark = pytest.mark.client

PREFIX = "/api/v1"
# Answers the server leaves free-form (`dict[str, Any]`), so there is nothing to compare yet. If
# one gains a schema, `test_free_form_answers_are_still_free_form` asks for a client model.
FREE_FORM = {ep.GET_REPORT, ep.PLUGINS, ep.ARTIFACTS, ep.EXPORT, ep.PREDICT, ep.BATCH_RESULTS}


@pytest.fixture(scope="module")
def server() -> dict[str, Any]:
    from app.api.main import api

    return api.openapi()


def _components(doc: dict[str, Any]) -> dict[str, Any]:
    return doc.get("components", {}).get("schemas", {})


def _deref(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _variants(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return schema.get("anyOf") or schema.get("oneOf") or [schema]


def agree(
    client: dict[str, Any],
    cdefs: dict[str, Any],
    server: dict[str, Any],
    sdefs: dict[str, Any],
    where: str,
    *,
    answer: bool,
) -> list[str]:
    """Differences between a client schema and the server's at `where` (empty when they agree).

    `answer`: the server produces it (server fields must cover the client's required ones); else
    the client sends it (the server must know every field and get all it requires).
    """
    client, server = _deref(client, cdefs), _deref(server, sdefs)
    free_form = server == {} or server.get("additionalProperties") is True and "properties" not in server
    if free_form and (client == {} or client.get("type") == "object"):
        return []
    cvars, svars = _variants(client), _variants(server)
    if len(cvars) > 1 or len(svars) > 1:
        cnull = any(v.get("type") == "null" for v in cvars)
        snull = any(v.get("type") == "null" for v in svars)
        if answer and snull and not cnull:
            return [f"{where}: the server may send null; the client does not accept it"]
        if not answer and cnull and not snull:
            return [f"{where}: the client may send null; the server refuses it"]
        creal = [v for v in cvars if v.get("type") != "null"]
        sreal = [v for v in svars if v.get("type") != "null"]
        if len(creal) != 1 or len(sreal) != 1:
            return [] if creal == sreal else [f"{where}: unions differ: {creal} vs {sreal}"]
        return agree(creal[0], cdefs, sreal[0], sdefs, where, answer=answer)
    ctype, stype = client.get("type"), server.get("type")
    if ctype != stype:
        return [f"{where}: client type {ctype!r}, server type {stype!r}"]
    if ctype == "string" and client.get("format") != server.get("format"):
        return [f"{where}: format {client.get('format')!r} vs {server.get('format')!r}"]
    if ("enum" in client or "enum" in server) and set(client.get("enum", [])) != set(server.get("enum", [])):
        return [f"{where}: choices {client.get('enum')} vs {server.get('enum')}"]
    if ctype == "array":
        return agree(
            client.get("items", {}), cdefs, server.get("items", {}), sdefs, where + "[]", answer=answer
        )
    if ctype != "object":
        return []
    if "properties" not in client and "properties" not in server:
        cvalues, svalues = client.get("additionalProperties", {}), server.get("additionalProperties", {})
        if cvalues is True or svalues is True:
            return [] if cvalues == svalues else [f"{where}: map values {cvalues} vs {svalues}"]
        return agree(cvalues, cdefs, svalues, sdefs, where + "{}", answer=answer)
    problems: list[str] = []
    cprops, sprops = client.get("properties", {}), server.get("properties", {})
    crequired, srequired = set(client.get("required", [])), set(server.get("required", []))
    for name, schema in cprops.items():
        if name not in sprops:
            problems.append(f"{where}.{name}: the server has no such field")
            continue
        problems += agree(schema, cdefs, sprops[name], sdefs, f"{where}.{name}", answer=answer)
    if answer:
        problems += [
            f"{where}.{n}: the client requires it, the server may omit it" for n in crequired - srequired
        ]
    else:
        problems += [
            f"{where}.{n}: the server requires it, the client never sends it" for n in srequired - set(cprops)
        ]
    return problems


def model_agrees(
    model: type[BaseModel], server: dict[str, Any], sdefs: dict[str, Any], *, answer: bool
) -> list[str]:
    schema = model.model_json_schema(mode="validation" if answer else "serialization")
    return agree(schema, schema.get("$defs", {}), server, sdefs, model.__name__, answer=answer)


def _operation(doc: dict[str, Any], endpoint: ep.Endpoint) -> dict[str, Any]:
    path = doc["paths"].get(PREFIX + endpoint.path)
    assert path is not None, f"{endpoint.method} {endpoint.path}: no such path on the server"
    operation = path.get(endpoint.method.lower())
    assert operation is not None, f"{endpoint.method} {endpoint.path}: the server has no such method"
    return operation


@pytest.mark.parametrize("endpoint", ep.ALL, ids=lambda e: f"{e.method} {e.path}")
def test_endpoint_matches_the_server(endpoint: ep.Endpoint, server: dict[str, Any]) -> None:
    operation = _operation(server, endpoint)
    defs = _components(server)
    answers = operation["responses"]
    assert str(endpoint.status) in answers, (
        f"server answers {sorted(answers)}, client expects {endpoint.status}"
    )
    declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    assert set(endpoint.query) <= declared, f"query parameters {set(endpoint.query) - declared} unknown"

    content = (operation.get("requestBody") or {}).get("content", {})
    if endpoint.body is not None:
        assert "application/json" in content, "the server takes no JSON body here"
        problems = model_agrees(endpoint.body, content["application/json"]["schema"], defs, answer=False)
        assert not problems, "\n".join(problems)
    elif endpoint.form:
        form = _deref(content["multipart/form-data"]["schema"], defs)
        assert set(endpoint.form) <= set(form["properties"]), f"form fields: {sorted(form['properties'])}"
        assert set(form.get("required", [])) <= set(endpoint.form)
    else:
        assert not (operation.get("requestBody") or {}).get("required"), "the server requires a body"

    schema = answers[str(endpoint.status)].get("content", {}).get("application/json", {}).get("schema", {})
    if endpoint.response is None:
        return
    if endpoint.many:
        assert schema.get("type") == "array", f"the server answers {schema}, not a list"
        schema = schema["items"]
    problems = model_agrees(endpoint.response, schema, defs, answer=True)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "endpoint", sorted(FREE_FORM, key=lambda e: e.path), ids=lambda e: f"{e.method} {e.path}"
)
def test_free_form_answers_are_still_free_form(endpoint: ep.Endpoint, server: dict[str, Any]) -> None:
    """The server documents no shape for these; when it does, the client should type them."""
    schema = _operation(server, endpoint)["responses"][str(endpoint.status)]["content"]["application/json"][
        "schema"
    ]
    items = schema.get("items", schema)
    assert "$ref" not in items and "properties" not in items, f"now typed on the server: {schema}"


def test_every_client_call_is_in_the_table() -> None:
    """The client only sends requests through `vtp_client.endpoints`, so the table is complete."""
    import inspect

    from vtp_client import client as module

    source = inspect.getsource(module)
    used = {name for name in dir(ep) if isinstance(getattr(ep, name), ep.Endpoint) and f"ep.{name}" in source}
    table = {name for name in dir(ep) if isinstance(getattr(ep, name), ep.Endpoint)}
    assert used == table, f"unused entries: {table - used}"
    assert ".request(" in source and source.count(".request(") == 1, "one request site: Client._send"
    assert len(ep.ALL) == len(table)


def test_the_check_catches_drift(server: dict[str, Any]) -> None:
    """The comparison itself fails on a renamed field, a retyped field and a lost null."""
    defs = _components(server)
    schema = _operation(server, ep.GET_JOB)["responses"]["200"]["content"]["application/json"]["schema"]

    class Renamed(m.JobDetail):
        epochs_total: int

    class Retyped(m.Job):
        attempt: str  # type: ignore[assignment]

    class NotNull(m.Job):
        error_message: str  # type: ignore[assignment]

    class Extra(m.JobCreate):
        priority: int = Field(default=0)

    assert any("epochs_total" in p for p in model_agrees(Renamed, schema, defs, answer=True))
    assert any("attempt" in p for p in model_agrees(Retyped, schema, defs, answer=True))
    assert any("error_message" in p for p in model_agrees(NotNull, schema, defs, answer=True))
    body = _operation(server, ep.CREATE_JOB)["requestBody"]["content"]["application/json"]["schema"]
    assert any("priority" in p for p in model_agrees(Extra, body, defs, answer=False))
    assert model_agrees(m.JobCreate, body, defs, answer=False) == []
