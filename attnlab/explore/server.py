"""The web app behind ``mode=serve`` (Starlette, served by uvicorn).

    GET  /               the explorer page (:mod:`attnlab.explore.page`) in serve mode
    POST /api/translate  form or JSON field ``text`` -> one page item (translation checkpoints)
    POST /api/classify   multipart field ``file`` (an image) -> one page item (vision checkpoints)

Bad input is answered with a 4xx and ``{"error": "<one line>"}``, which the page shows: an empty
or too long sentence (400, 422), a file that is not an image (415), an upload over
``serve.max_upload_mb`` (413, refused from its Content-Length or while it streams in). The models
run one request at a time (a lock: torch already uses every core for one), in a worker thread, so
the server keeps answering while it computes.
"""

from __future__ import annotations

import io
import json
import threading
from typing import Any, AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from attnlab.errors import UserError
from attnlab.explore.data import item_label, item_result, page_data
from attnlab.explore.page import render_page

MAX_TEXT_CHARS = 5000  # refused before tokenising (the token limit decides below that)
MAX_PIXELS = 40_000_000  # decoded images above this are refused (decompression bombs)


class BadInput(Exception):
    """A request the server refuses: HTTP status and a one-line message for the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def text_limit(models: Sequence[Any], max_tokens: int) -> int:
    """The longest source (subwords, eos included) every model takes: ``serve.max_tokens``,
    lowered to a model's own limit (a learned positional table)."""
    limits = [max_tokens] + [m.max_source_tokens for m in models if m.max_source_tokens]
    return int(min(limits))


def make_app(models: Sequence[Any], serve_cfg: Any, explore_cfg: Any, items: Sequence[Any] = ()) -> Starlette:
    """The app for ``models`` (one panel each); ``items`` are shown when the page opens."""
    kind = models[0].task
    lock = threading.Lock()
    n_best, decimals = int(explore_cfg.n_best), int(explore_cfg.decimals)
    max_bytes = int(float(serve_cfg.max_upload_mb) * 2**20)
    max_tokens = text_limit(models, int(serve_cfg.max_tokens)) if kind == "translation" else 0
    limits = {"max_upload_mb": float(serve_cfg.max_upload_mb), "max_tokens": max_tokens}
    with lock:
        initial = page_data(models, items, n_best=n_best, decimals=decimals, mode="serve", limits=limits)
    page = render_page(initial)

    def compute(item: Any, label: str) -> dict[str, Any]:
        with lock:
            try:
                return {"input": label, "results": [item_result(m, item, n_best, None, decimals) for m in models]}
            except UserError as err:
                raise BadInput(422, str(err)) from None

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    async def translate(request: Request) -> JSONResponse:
        if kind != "translation":
            raise BadInput(404, "this server holds a vision model: upload an image (POST /api/classify)")
        text = await _text_field(request, max_bytes)
        text = " ".join(text.split())
        if not text:
            raise BadInput(400, "the sentence is empty: type a sentence to translate")
        if len(text) > MAX_TEXT_CHARS:
            raise BadInput(422, f"the sentence has {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
        tokens = len(models[0].toks.src.encode(text)) + 1
        if tokens > max_tokens:
            raise BadInput(422, f"the sentence has {tokens} subwords; this model takes at most {max_tokens}")
        return JSONResponse(await run_in_threadpool(compute, text, text))

    async def classify(request: Request) -> JSONResponse:
        if kind != "vision":
            raise BadInput(404, "this server holds a translation model: send text (POST /api/translate)")
        name, data = await _upload(request, max_bytes)
        image = _decode_image(data)
        return JSONResponse(await run_in_threadpool(compute, image, item_label(name, 0) if name else "upload"))

    def guarded(endpoint: Any) -> Any:
        async def wrapped(request: Request) -> JSONResponse:
            try:
                return await endpoint(request)
            except BadInput as err:
                return JSONResponse({"error": err.message}, status_code=err.status)

        return wrapped

    return Starlette(routes=[
        Route("/", index),
        Route("/api/translate", guarded(translate), methods=["POST"]),
        Route("/api/classify", guarded(classify), methods=["POST"]),
    ])


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.1f} kB"


def _check_length(request: Request, max_bytes: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BadInput(413, f"the upload has {_size(int(declared))}; the limit is {_size(max_bytes)} (serve.max_upload_mb)")


async def _bounded(request: Request, max_bytes: int) -> AsyncIterator[bytes]:
    """The request body, refused with 413 as soon as it passes ``max_bytes`` (chunked uploads too)."""
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > max_bytes:
            raise BadInput(413, f"the upload is over the limit of {_size(max_bytes)} (serve.max_upload_mb)")
        yield chunk


async def _text_field(request: Request, max_bytes: int) -> str:
    """``text`` from a JSON body or a form (urlencoded or multipart)."""
    _check_length(request, max_bytes)
    ctype = request.headers.get("content-type", "")
    body = b"".join([chunk async for chunk in _bounded(request, max_bytes)])
    if ctype.startswith("application/json"):
        try:
            value = json.loads(body or b"{}").get("text", "")
        except (ValueError, AttributeError):
            raise BadInput(400, 'send JSON like {"text": "Ich habe Hunger."}') from None
    elif ctype.startswith("multipart/form-data"):
        form = await _multipart(request, _once(body))
        value = form.get("text", "")
    else:
        from urllib.parse import parse_qs

        value = parse_qs(body.decode("utf-8", "replace")).get("text", [""])[0]
    if not isinstance(value, str):
        raise BadInput(400, "the field text must be a string")
    return value


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _multipart(request: Request, stream: AsyncIterator[bytes]) -> Any:
    try:
        return await MultiPartParser(request.headers, stream, max_files=1, max_fields=4).parse()
    except MultiPartException as err:
        raise BadInput(400, f"the form could not be read ({err.message})") from None


async def _upload(request: Request, max_bytes: int) -> tuple[str, bytes]:
    """The uploaded file's name and bytes (field ``file``)."""
    _check_length(request, max_bytes)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadInput(400, "upload the image as a multipart form with the field 'file'")
    form = await _multipart(request, _bounded(request, max_bytes))
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise BadInput(400, "no file in the upload: choose an image")
    data = await upload.read()
    if not data:
        raise BadInput(400, "the uploaded file is empty: choose an image")
    return str(upload.filename or ""), data


def _decode_image(data: bytes) -> Any:
    """The upload as a PIL image, or 415 when it is not an image any reader knows."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_PIXELS:
            raise BadInput(413, f"the image has {image.width}x{image.height} pixels; the limit is {MAX_PIXELS:,} pixels")
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise BadInput(415, "the file is not an image attnlab can read (PNG, JPEG, GIF, BMP, ...)") from None
    return image
