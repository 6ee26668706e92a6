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
