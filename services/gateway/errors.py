"""OpenAI-style error bodies: every failure the gateway itself produces looks like this, and the app's
handlers that turn an exception into one (never a stack trace). The chat routes answer in their
own API's shape (`ApiFormat.error_response`)."""

from __future__ import annotations

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from deja.logs import get_logger

log = get_logger("deja.gateway")


class ApiError(Exception):
    """An error answered to the client as {"error": {message, type, param, code}}."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> bytes:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)

    def response(self, headers: dict[str, str] | None = None) -> Response:
        return Response(self.body(), status_code=self.status, media_type="application/json", headers=headers)


def error_body(message: str, *, type: str, param: str | None = None, code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type, "param": param, "code": code}})


async def _api_error(request: Request, exc: ApiError) -> Response:
    return exc.response()


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return ApiError(exc.status_code, exc.detail, code=f"http_{exc.status_code}").response()


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled_error", path=request.url.path, error=repr(exc))
    return ApiError(500, "internal error in the Deja gateway", type="server_error").response()


EXCEPTION_HANDLERS = {ApiError: _api_error, HTTPException: _http_error, Exception: _unexpected}
