"""Shared by the repository's Python models: the repository's ``cascade.json`` and error responses.

Errors are returned per request as ``TritonError`` responses (never raised out of ``execute``): Triton
answers that request with the message and the model keeps serving the next ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CASCADE_JSON = "cascade.json"


def read_cascade_json(args: dict[str, Any]) -> dict[str, Any]:
    """The repository's ``cascade.json`` (one level above each model's folder)."""
    return json.loads((Path(args["model_repository"]).parent / CASCADE_JSON).read_text())


def error_response(pb_utils, message: str):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))


def answer_each(pb_utils, requests, one) -> list:
    """``one(request)`` for every request; a ``UserError`` (bad input) becomes that request's error response."""
    from mtnet.errors import UserError

    responses = []
    for request in requests:
        try:
            responses.append(one(request))
        except UserError as e:
            responses.append(error_response(pb_utils, str(e)))
    return responses
