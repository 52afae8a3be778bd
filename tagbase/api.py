"""The REST API at /api/v1: one NinjaAPI; each app contributes routers (see docs/api.md).

This module owns what is common to every endpoint: authentication (``accounts.auth``), the
JSON body parser, and the error format. Every error — bad input, a refused write, a missing
object, an unknown URL, a wrong method, a bug — answers
``{"error": {"code": "...", "message": "...", "field": "..." | null}}`` (a campaign graph's
errors add ``"node"``) and never a traceback or an HTML page.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404, HttpRequest, HttpResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.urls import URLPattern, re_path
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError, ValidationErrorContext
from ninja.parser import Parser

from tagbase.accounts.audit.api import router as audit_router
from tagbase.accounts.auth import ApiError, api_auth, not_authenticated
from tagbase.audiences.api import customer_router as customer_audiences_router
from tagbase.audiences.api import operations_router
from tagbase.audiences.api import router as audiences_router
from tagbase.audiences.services import (
    AudienceError,
    AudienceNameTaken,
    AudienceNotFound,
    CannotUndo,
)
from tagbase.campaigns.api import router as campaigns_router
from tagbase.campaigns.nodes import GraphError
from tagbase.campaigns.services import CampaignError, CampaignNameTaken, CampaignNotFound
from tagbase.customers.api import customers_router, events_router, receipts_router
from tagbase.customers.queries import AmbiguousIdentifier
from tagbase.customers.reports import FileRejected
from tagbase.imports.api import router as imports_router
from tagbase.imports.services import ImportError_, UploadTooLarge
from tagbase.lib.identifiers import InvalidIdentifier
from tagbase.segments.api import router as segments_router
from tagbase.segments.rules import RuleError
from tagbase.segments.services import (
    SegmentError,
    SegmentInUse,
    SegmentNameTaken,
    SegmentNotFound,
)
from tagbase.sets.api import router as sets_router
from tagbase.sets.services import SetError

logger = logging.getLogger("tagbase.api")


# --- Request bodies ---------------------------------------------------------------------------


class BodyError(ValueError):
    """The body could not be read as a JSON object (raised inside ninja, which wraps it)."""

    def __init__(
        self, status: int, code: str, message: str, field: str | None = None, detail: str = ""
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.detail = detail  # for validation errors: the code of the one entry in details

    def details(self) -> list[dict[str, Any]] | None:
        if not self.detail:
            return None
        return [{"field": self.field, "code": self.detail, "message": self.message}]


# Text that no database column can hold can only be written in JSON as an escape: \u0000, or a
# \uD800-\uDFFF surrogate (paired ones are fine). Bodies without either skip the walk.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89abAB])")


class JsonObjectParser(Parser):
    """Bodies are JSON objects; anything else is refused with a message saying where."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        try:
            data = json.loads(request.body)
            if _SUSPECT_ESCAPE.search(request.body):
                _refuse_unstorable_text(data, "")
        except json.JSONDecodeError as exc:
            raise BodyError(
                400,
                "malformed_json",
                f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
            ) from None
        except UnicodeDecodeError:
            raise BodyError(400, "malformed_json", "The body is not UTF-8 text.") from None
        except (ValueError, RecursionError) as exc:
            if isinstance(exc, BodyError):
                raise
            # Python refuses integers of more than 4300 digits and very deep nesting.
            raise BodyError(
                400, "malformed_json", "The body is not JSON this API can read."
            ) from None
        if not isinstance(data, dict):
            message = "The body must be a JSON object."
            raise BodyError(422, "validation_error", message, detail="not_an_object")
        return data


def _refuse_unstorable_text(value: Any, path: str) -> None:
    """Refuse NUL characters and unpaired surrogates anywhere in the body, keys included:
    PostgreSQL cannot store the first and no UTF-8 column the second, and both engines must
    give the same answer."""
    if isinstance(value, str):
        problem = _unstorable(value)
        if problem:
            field = path or None
            where = f"{path}: " if path else ""
            message = f"{where}The text {problem}."
            raise BodyError(422, "validation_error", message, field, "text_unstorable")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_unstorable_text(key, path)
            _refuse_unstorable_text(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_unstorable_text(item, f"{path}.{index}" if path else str(index))


def _unstorable(text: str) -> str | None:
    if "\x00" in text:
        return "contains the NUL character (U+0000), which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired surrogate (U+D800-U+DFFF), which is not valid Unicode"
    return None


# --- The API ----------------------------------------------------------------------------------


class TagbaseAPI(NinjaAPI):
    def get_openapi_operation_id(self, operation: Any) -> str:
        # Handler names are unique and read well in generated clients (audience_list…).
        return str(operation.view_func.__name__)

    def validation_error_from_error_contexts(
        self, error_contexts: list[ValidationErrorContext]
    ) -> ValidationError:
        """Locations without ninja's wrapper: ``ids.3`` rather than ``body.payload.ids.3``."""
        errors = []
        for context in error_contexts:
            model = context.model
            single = getattr(model, "__read_from_single_attr__", None)
            flat = getattr(model, "__ninja_flatten_map_reverse__", {})
            for error in context.pydantic_validation_error.errors(include_url=False):
                loc = tuple(flat.get(error["loc"], error["loc"]))
                if single and loc[:1] == (single,):
                    loc = loc[1:]
                errors.append(
                    {
                        "source": model.__ninja_param_source__,
                        "loc": loc,
                        "type": error["type"],
                        "msg": error["msg"],
                    }
                )
        return ValidationError(errors)

    def _get_urls(self) -> list[Any]:
        urls = super()._get_urls()
        for pattern in urls:
            if isinstance(pattern, URLPattern):
                pattern.callback = _json_method_not_allowed(pattern.callback, self)
        # Last: any other path under /api/v1/ is a JSON 404, not Django's HTML page.
        urls.append(re_path(r"^.*$", csrf_exempt(functools.partial(_unknown_path, api=self))))
        return urls


def _json_method_not_allowed(view: Callable[..., HttpResponse], api: NinjaAPI) -> Callable:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and not response.get("Content-Type", "").startswith(
            "application/json"
        ):
            allowed = response["Allow"]
            response = error_response(
                api,
                request,
                405,
                "method_not_allowed",
                f"{request.method} is not allowed here; use {allowed}.",
            )
            response["Allow"] = allowed
        return response

    return wrapper


def _unknown_path(request: HttpRequest, api: NinjaAPI) -> HttpResponse:
    return error_response(
        api, request, 404, "not_found", "No such endpoint; see /api/v1/docs for the list."
    )


api = TagbaseAPI(
    title="Tagbase API",
    version="1",
    description=(
        "Customers, target audiences, memberships and file imports for partner systems. "
        "Authenticate with `Authorization: Bearer <token>`. Every error answers "
        '`{"error": {"code", "message", "field"}}`; see docs/api.md.'
    ),
    urls_namespace="api",
    auth=api_auth(),
    parser=JsonObjectParser(),
)

# Order matters where paths share a prefix: /customers/bulk and /customers/lookup are declared
# before /customers/{sc_id} inside the customers router.
api.add_router("/customers", customers_router, tags=["customers"])
api.add_router("/customers", customer_audiences_router, tags=["customers"])
api.add_router("/receipts", receipts_router, tags=["receipts"])
api.add_router("/events", events_router, tags=["events"])
api.add_router("/audiences", audiences_router, tags=["audiences"])
api.add_router("/operations", operations_router, tags=["operations"])
api.add_router("/imports", imports_router, tags=["imports"])
api.add_router("/segments", segments_router, tags=["segments"])
api.add_router("/sets", sets_router, tags=["sets"])
api.add_router("/campaigns", campaigns_router, tags=["campaigns"])
api.add_router("/audit", audit_router, tags=["audit"])


# --- Errors -----------------------------------------------------------------------------------


def error_response(
    api: NinjaAPI,
    request: HttpRequest,
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> HttpResponse:
    body: dict[str, Any] = {"code": code, "message": message, "field": field}
    if details is not None:
        body["details"] = details
    return api.create_response(request, {"error": body}, status=status)


_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    429: "rate_limited",
}


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc, ApiError):
        response = error_response(api, request, exc.status_code, exc.code, exc.message, exc.field)
        for name, value in exc.headers.items():  # Retry-After with 429 rate_limited
            response[name] = value
        return response
    if isinstance(exc.__cause__, BodyError):
        cause = exc.__cause__
        return error_response(
            api, request, cause.status, cause.code, cause.message, cause.field, cause.details()
        )
    if isinstance(exc, AuthenticationError):
        refusal = not_authenticated()
        return error_response(api, request, 401, refusal.code, refusal.message)
    code = _HTTP_CODES.get(exc.status_code, "error")
    return error_response(api, request, exc.status_code, code, str(exc))


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    details = [_validation_detail(error) for error in exc.errors]
    first: dict[str, Any] = details[0] if details else {"field": None, "message": "Invalid."}
    message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    if len(details) > 1:
        message += f" ({len(details) - 1} more problem(s) in details)"
    return error_response(api, request, 422, "validation_error", message, first["field"], details)


_MESSAGES = {
    "missing": "This field is required.",
    "extra_forbidden": "Unknown field; see the API schema for the accepted fields.",
}


def _validation_detail(error: dict[str, Any]) -> dict[str, Any]:
    loc = [str(part) for part in error.get("loc", ())]
    field = ".".join(loc) or None
    kind = error.get("type", "invalid")
    if kind == "missing" and not loc and error.get("source") == "body":
        text = "A JSON body is required."
    else:
        text = _MESSAGES.get(kind) or _sentence(str(error.get("msg", "Invalid value.")))
    return {"field": field, "code": kind, "message": text}


def _sentence(msg: str) -> str:
    msg = msg.removeprefix("Value error, ")
    msg = msg[:1].upper() + msg[1:]
    return msg if msg.endswith(".") else msg + "."


_AUDIENCE_STATUS: dict[type[AudienceError], int] = {
    AudienceNotFound: 404,
    AudienceNameTaken: 409,
    CannotUndo: 409,
}


@api.exception_handler(AudienceError)
def _audience_error(request: HttpRequest, exc: AudienceError) -> HttpResponse:
    status = next((s for cls, s in _AUDIENCE_STATUS.items() if isinstance(exc, cls)), 422)
    return error_response(api, request, status, exc.code, exc.message, exc.field)


# Imports: a state that forbids the action is a conflict (409); anything else about the request
# — options, the audience named in the form, a reused Idempotency-Key — is a 422 naming the
# field. audience_not_found is 422 here, not 404: the URL exists, a form value is wrong.
_IMPORT_CONFLICTS = {"not_previewed", "already_finished", "cannot_undo", "idempotency_key_in_use"}


@api.exception_handler(ImportError_)
def _import_error(request: HttpRequest, exc: ImportError_) -> HttpResponse:
    if isinstance(exc, UploadTooLarge):
        return error_response(api, request, 413, "payload_too_large", exc.message, exc.field)
    status = 409 if exc.code in _IMPORT_CONFLICTS else 422
    return error_response(api, request, status, exc.code, exc.message, exc.field)


# Segments: a missing segment or job is 404; a name taken or a segment other segments use is a
# conflict (409); a reused Idempotency-Key is 422 and one still in progress 409, as for imports;
# anything else about the request (audience_not_found included: a body value) is 422.
_SEGMENT_STATUS: dict[type[SegmentError], int] = {
    SegmentNotFound: 404,
    SegmentNameTaken: 409,
    SegmentInUse: 409,
}
_SEGMENT_CODES = {"job_not_found": 404, "idempotency_key_in_use": 409}


@api.exception_handler(SegmentError)
def _segment_error(request: HttpRequest, exc: SegmentError) -> HttpResponse:
    status = next((s for cls, s in _SEGMENT_STATUS.items() if isinstance(exc, cls)), None)
    status = status or _SEGMENT_CODES.get(exc.code, 422)
    return error_response(api, request, status, exc.code, exc.message, exc.field)


@api.exception_handler(RuleError)
def _rule_error(request: HttpRequest, exc: RuleError) -> HttpResponse:
    # field is the place in the rule tree (rules[2].value); a problem with the whole tree
    # names the body field.
    return error_response(api, request, 422, exc.code, exc.message, exc.field or "rules")


# Campaigns: a missing campaign is 404, a name taken 409, anything else about the request 422.
_CAMPAIGN_STATUS: dict[type[CampaignError], int] = {
    CampaignNotFound: 404,
    CampaignNameTaken: 409,
}


@api.exception_handler(CampaignError)
def _campaign_error(request: HttpRequest, exc: CampaignError) -> HttpResponse:
    status = next((s for cls, s in _CAMPAIGN_STATUS.items() if isinstance(exc, cls)), 422)
    return error_response(api, request, status, exc.code, exc.message, exc.field)


@api.exception_handler(GraphError)
def _graph_error(request: HttpRequest, exc: GraphError) -> HttpResponse:
    # A campaign graph that cannot be saved or activated. Besides `field` (the parameter), the
    # error names the `node` at fault (or null), so the editor can mark it on the canvas.
    body = {"code": exc.code, "message": exc.message, "field": exc.field, "node": exc.node}
    return api.create_response(request, {"error": body}, status=422)


# Set operations: a missing job is 404, an Idempotency-Key still in progress 409; anything else
# about the request (an operand or target audience that does not exist: body values) is 422.
_SET_CODES = {"job_not_found": 404, "idempotency_key_in_use": 409}


@api.exception_handler(SetError)
def _set_error(request: HttpRequest, exc: SetError) -> HttpResponse:
    status = _SET_CODES.get(exc.code, 422)
    return error_response(api, request, status, exc.code, exc.message, exc.field)


@api.exception_handler(MultiPartParserError)
@api.exception_handler(UnreadablePostError)
def _unreadable_upload(request: HttpRequest, exc: Exception) -> HttpResponse:
    # A broken multipart body, or a client that went away mid-upload.
    return error_response(
        api,
        request,
        400,
        "malformed_multipart",
        "The body could not be read as multipart/form-data; send the file as the 'file' part.",
    )


@api.exception_handler(TooManyFieldsSent)
@api.exception_handler(TooManyFilesSent)
def _too_many_fields(request: HttpRequest, exc: Exception) -> HttpResponse:
    # Django's limits on the number of form fields / files (and query parameters).
    return error_response(
        api, request, 400, "bad_request", "The request has too many fields or files."
    )


@api.exception_handler(InvalidIdentifier)
def _invalid_identifier(request: HttpRequest, exc: InvalidIdentifier) -> HttpResponse:
    return error_response(
        api,
        request,
        422,
        "invalid_identifier",
        exc.message,
        "value",
        [{"field": "value", "code": exc.code, "message": exc.message}],
    )


@api.exception_handler(AmbiguousIdentifier)
def _ambiguous_identifier(request: HttpRequest, exc: AmbiguousIdentifier) -> HttpResponse:
    return error_response(api, request, 409, "ambiguous_identifier", str(exc), "value")


@api.exception_handler(FileRejected)
def _rows_rejected(request: HttpRequest, exc: FileRejected) -> HttpResponse:
    # Raised by a bulk load before anything is written (unknown or missing columns).
    return error_response(api, request, 422, exc.code, exc.message)


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(api, request, 404, "not_found", "Not found.")


@api.exception_handler(PermissionDenied)
def _permission_denied(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return error_response(api, request, 403, "forbidden", "You may not do this.")


@api.exception_handler(RequestDataTooBig)
def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return error_response(
        api,
        request,
        413,
        "payload_too_large",
        f"The body is larger than {limit} bytes; send fewer rows per request.",
    )


@api.exception_handler(Exception)
def _internal_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    # Logged with the traceback for the operator; the caller learns nothing about internals.
    logger.exception("API error on %s %s", request.method, request.path)
    return error_response(
        api,
        request,
        500,
        "internal_error",
        "Something went wrong on our side; it has been logged. Try again later.",
    )
