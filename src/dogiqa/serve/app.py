"""The HTTP application: routes, authentication, caps and JSON errors over a ``Service``.

POST /v1/score          one image (multipart field ``file`` or the raw body) -> its result record
POST /v1/score/batch    several images (multipart fields ``files``) -> {"results": [record, ...]}
POST /v1/overlay        one image -> the region overlay as PNG (score in the X-DogIQA-Score header)
GET  /v1/config         the pipeline configuration and the service settings
GET  /healthz           200 once the model is loaded, 503 before (or when loading failed)
GET  /                  a page to drop an image on;  /docs, /openapi.json: the API description
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from dogiqa.serve.batching import BatcherClosed, QueueFull
from dogiqa.serve.service import BadImage, Service, TooLarge, Upload, overlay_png
from dogiqa.serve.settings import ServeSettings

log = logging.getLogger("dogiqa.serve")

IMAGE_BODY = {
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
        },
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
    "required": True,
}
BATCH_BODY = {
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
            }
        }
    },
    "required": True,
}
ERRORS = {
    code: {"description": text}
    for code, text in {
        400: "not an image, or a malformed request",
        401: "missing or wrong bearer token",
        413: "body over the size cap, image over the pixel cap, or too many images",
        415: "not an image body (URLs are never fetched: send the bytes)",
        429: "queue full; retry after the Retry-After header's seconds",
        503: "model still loading (or failed to load), or shutting down",
    }.items()
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: ERRORS[code] for code in codes}


class HTTPError(HTTPException):
    """An HTTP error with extra JSON fields (``record``) and headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(status, message, headers)
        self.extra = extra


def error_body(status: int, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"status": status, "message": message}, **extra}


def create_app(
    factory: Callable[[], Any],
    settings: ServeSettings | None = None,
    on_load_failure: Callable[[str], None] | None = None,
) -> FastAPI:
    """The service as an ASGI app. ``factory`` builds the pipeline (a ``DogIQA``); it runs once, in a background
    thread started with the app, so that ``/healthz`` answers 503 while the model loads."""
    settings = settings or ServeSettings()
    service = Service(factory, settings, on_load_failure)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start_loading()
        yield
        await run_in_threadpool(service.close, settings.shutdown_timeout_s)  # queued images are still scored

    app = FastAPI(
        title="dogiqa",
        summary="Image quality scores (Dog-IQA) over HTTP, with dynamic batching",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    _add_error_handlers(app)
    bearer = HTTPBearer(auto_error=False, description="the token from the server's --token-env variable")

    def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if settings.token is None:
            return
        given = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else ""
        if not hmac.compare_digest(given.encode(), settings.token.encode()):
            raise HTTPError(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_page_html())

    @app.get("/healthz", summary="Readiness: 200 once the model is loaded", responses={503: ERRORS[503]})
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": service.state}, status_code=200 if service.state == "ready" else 503)

    @app.get("/v1/config", summary="Pipeline configuration and service settings", dependencies=[Depends(authorised)],
             responses=_errors(401, 503))  # fmt: skip
    async def config() -> dict[str, Any]:
        iqa = _ready(service)
        return {"pipeline": dict(iqa.config), "service": settings.public(), "batching": service.batch_stats()}

    @app.post("/v1/score", summary="Score one image", dependencies=[Depends(authorised)], openapi_extra={
        "requestBody": IMAGE_BODY}, responses=_errors(400, 401, 413, 415, 429, 503))  # fmt: skip
    async def score(
        request: Request,
        overlay: bool = Query(False, description="also return the region overlay (PNG, base64) as `overlay_png`"),
        name: str | None = Query(None, description="name recorded as the record's `path` (raw bodies)"),
    ) -> JSONResponse:
        _ready(service)
        upload = await _one_upload(request, name, settings)
        (result,), batch = await _score(service, [upload])
        record = result.to_dict()
        if result.error is not None:
            raise HTTPError(422, result.error, record=record)
        if overlay:
            png = await run_in_threadpool(overlay_png, upload.image, result)
            record["overlay_png"] = base64.b64encode(png).decode("ascii")
        return JSONResponse(record, headers={"X-DogIQA-Batch": str(batch[0])})

    @app.post("/v1/score/batch", summary="Score several images", dependencies=[Depends(authorised)],
              openapi_extra={"requestBody": BATCH_BODY},
              responses=_errors(400, 401, 413, 415, 429, 503))  # fmt: skip
    async def score_batch(request: Request) -> dict[str, Any]:
        _ready(service)
        items = await _many_uploads(request, settings)
        good = [u for u in items if isinstance(u, Upload)]
        results = iter((await _score(service, good))[0]) if good else iter(())
        records = [next(results).to_dict() if isinstance(u, Upload) else u.record() for u in items]
        return {"results": records}

    @app.post("/v1/overlay", summary="Score one image and draw its regions (PNG)", dependencies=[Depends(authorised)],
              openapi_extra={"requestBody": IMAGE_BODY}, response_class=Response,
              responses={200: {"content": {"image/png": {}}}, **_errors(400, 401, 413, 429, 503)})  # fmt: skip
    async def overlay(request: Request, name: str | None = Query(None)) -> Response:
        _ready(service)
        upload = await _one_upload(request, name, settings)
        (result,), _ = await _score(service, [upload])
        if result.error is not None:
            raise HTTPError(422, result.error, record=result.to_dict())
        png = await run_in_threadpool(overlay_png, upload.image, result)
        return Response(png, media_type="image/png", headers={"X-DogIQA-Score": repr(result.score)})

    return app


def _ready(service: Service) -> Any:
    if service.state == "loading":
        raise HTTPError(503, "the model is still loading", {"Retry-After": "5"})
    if service.state != "ready":
        raise HTTPError(503, f"the model failed to load: {service.error}")
    return service.iqa


async def _score(service: Service, uploads: list[Upload]) -> tuple[list[Any], list[int]]:
    """Queue the uploads, wait for their records (and the size of the batch each was scored in)."""
    try:
        futures = service.batcher.submit(uploads)
    except QueueFull as exc:
        raise HTTPError(429, str(exc), {"Retry-After": str(exc.retry_after)}) from exc
    except BatcherClosed as exc:
        raise HTTPError(503, str(exc)) from exc
    done = await asyncio.gather(*futures)
    return [r for r, _ in done], [n for _, n in done]


async def _one_upload(request: Request, name: str | None, settings: ServeSettings) -> Upload:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=8)
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        if not files:
            raise HTTPError(400, "multipart body without a file: send the image as the field `file`")
        upload = files[0]
        data, name = await upload.read(), name or upload.filename
    else:
        _check_raw_type(ctype)
        data = await request.body()
    return await run_in_threadpool(_decode, data, name, settings)


async def _many_uploads(request: Request, settings: ServeSettings) -> list[Upload | BadImage]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise HTTPError(415, "send the images as multipart/form-data fields named `files`")
    form = await request.form(max_files=settings.max_files + 1, max_fields=settings.max_files + 8)
    files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
    if not files:
        raise HTTPError(400, "no files in the request: send the images as multipart fields `files`")
    if len(files) > settings.max_files:
        raise HTTPError(413, f"{len(files)} images in one request, over the cap of {settings.max_files}")
    out: list[Upload | BadImage] = []
    for i, f in enumerate(files):
        data = await f.read()
        try:
            out.append(await run_in_threadpool(Upload.decode, data, f.filename or f"file{i}", settings.max_pixels))
        except TooLarge as exc:
            raise HTTPError(413, str(exc)) from exc
        except BadImage as exc:
            out.append(exc)  # recorded as this image's error; the others are scored
    return out


def _check_raw_type(ctype: str) -> None:
    if ctype.startswith("image/") or ctype in ("application/octet-stream", ""):
        return
    raise HTTPError(
        415,
        f"unsupported content type {ctype!r}: send the image bytes (image/*, application/octet-stream or a "
        "multipart field `file`); URLs are never fetched",
    )


def _decode(data: bytes, name: str | None, settings: ServeSettings) -> Upload:
    try:
        return Upload.decode(data, name, settings.max_pixels)
    except TooLarge as exc:
        raise HTTPError(413, str(exc)) from exc
    except BadImage as exc:
        raise HTTPError(400, str(exc)) from exc


# -- caps and errors -----------------------------------------------------------------------------------------
class BodyLimit:
    """Refuses request bodies over ``max_bytes``: by Content-Length up front, and by counting streamed bytes."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            response = JSONResponse(error_body(413, self._message()), status_code=413, headers={"Connection": "close"})
            return await response(scope, receive, send)
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPError(413, self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"request body over the cap of {self.max_bytes:,} bytes"


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        extra = getattr(exc, "extra", {})
        return JSONResponse(error_body(exc.status_code, str(exc.detail), **extra), exc.status_code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return JSONResponse(error_body(422, f"invalid request: {problems}"), 422)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return JSONResponse(error_body(500, f"internal error: {type(exc).__name__}: {exc}"), 500)


def _page_html() -> str:
    return resources.files("dogiqa.serve").joinpath("page.html").read_text(encoding="utf-8")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("dogiqa")
    except Exception:  # noqa: BLE001 - not installed (a source checkout)
        return "0"
