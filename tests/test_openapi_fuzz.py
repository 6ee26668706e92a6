"""Property-based run of the whole OpenAPI schema (schemathesis): no input may cause a server error.

Runs in-process against the real app, the real model and a private copy of the demo index, with
valid (positive) and invalid (negative) inputs for every operation; the default checks also hold
the responses to the documented status codes and schemas (except that schema-valid input must be
accepted: random bytes are schema-valid upload content but no document).
"""

from __future__ import annotations

import shutil

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from api.app import create_app

EXAMPLES_PER_OPERATION = 25


def test_no_input_causes_a_server_error(tmp_path, demo_index_dir, encoder):
    from policyqa.settings import Settings

    shutil.copytree(demo_index_dir, tmp_path / "index")
    app = create_app(Settings(index_dir=tmp_path / "index", upload_dir=tmp_path / "uploads"), encoder)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    # Schema-valid bytes are not always a document: an upload of random bytes is a documented 422.
    excluded = [schemathesis.checks.positive_data_acceptance]
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
            def run(case):
                case.call_and_validate(excluded_checks=excluded)

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.label  # no parameters: no invalid input exists
        tested.append(operation.label)
    assert {"GET /api/search", "POST /api/documents", "POST /v1/chat/completions"} <= set(tested)


def test_the_schema_shows_the_refusals_each_route_gives(live_server):
    """What /docs and /redoc show: the security refusals, and /v1's OpenAI-shaped 400s instead of 422s."""
    import httpx

    paths = httpx.get(live_server + "/openapi.json").json()["paths"]
    writes = [paths["/api/documents"]["post"], paths["/api/documents/{doc_id}"]["delete"],
              paths["/v1/chat/completions"]["post"]]
    assert all("cross_site" in w["responses"]["403"]["description"] for w in writes)
    operations = [op for path in paths.values() for op in path.values()]
    assert all("bad_host" in op["responses"]["400"]["description"] for op in operations)
    chat = paths["/v1/chat/completions"]["post"]["responses"]
    assert "422" not in chat and chat["400"]["content"]["application/json"]["schema"]["$ref"].endswith("OpenAIErrorBody")
    assert "422" in paths["/api/search"]["get"]["responses"]
