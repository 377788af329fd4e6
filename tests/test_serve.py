"""mode=serve: the explorer behind a local Starlette server; typed sentences, uploaded images, bad
input answered with a 4xx and a message on the page, 20 concurrent requests, the real CLI."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from omegaconf import OmegaConf

import attnlab
from attnlab.config import ExploreConfig, ServeConfig

pytestmark = pytest.mark.usefixtures("one_thread")

LIMIT_MB = 0.05  # 50 kB uploads at most in these tests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    """A uvicorn server for an app, in a thread of this process, on a free loopback port."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            assert time.time() < deadline, "the server did not start"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def servers(tiny_runs):
    from attnlab.explore.server import make_app

    serve_cfg = OmegaConf.structured(ServeConfig(max_upload_mb=LIMIT_MB, max_tokens=40))
    out = {}
    for name in ("transformer", "vit"):
        model = attnlab.load(tiny_runs[name] / "checkpoints" / "best.pt")
        out[name] = (model, Running(make_app([model], serve_cfg, OmegaConf.structured(ExploreConfig()))))
    yield out
    for _, running in out.values():
        running.stop()


def post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def multipart(filename: str, data: bytes, field: str = "file") -> tuple[bytes, str]:
    boundary = "attnlabtestboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def png_bytes(digit: int = 4, size: int = 8) -> bytes:
    from PIL import Image
    from attnlab.data.digits import load_digits

    pixels = (load_digits().images[digit] * 255 / 16).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").resize((size, size)).save(buffer, format="PNG")
    return buffer.getvalue()


def translate(url: str, text: str) -> tuple[int, dict]:
    return post(url + "/api/translate", json.dumps({"text": text}).encode(), "application/json")


def test_a_typed_sentence_gets_the_same_data_as_the_page_file(servers):
    model, running = servers["transformer"]
    status, item = translate(running.url, "Ich habe Hunger.")
    assert status == 200 and item["input"] == "Ich habe Hunger."
    result = item["results"][0]
    att = model.attention("Ich habe Hunger.", n_best=3)
    assert [h["text"] for h in result["hypotheses"]] == [h.text for h in att.hypotheses]
    np.testing.assert_allclose(np.array(result["hypotheses"][0]["cross"]) / 1e4, att.best.cross, atol=1e-4)
    status, form_item = post(running.url + "/api/translate", b"text=Ich+habe+Hunger.", "application/x-www-form-urlencoded")
    assert status == 200 and form_item == item


def test_an_uploaded_image_gets_its_attention_and_top_classes(servers):
    model, running = servers["vit"]
    status, item = post(running.url + "/api/classify", *multipart("four.png", png_bytes(4)))
    assert status == 200 and item["input"] == "four.png"
    result = item["results"][0]
    from PIL import Image

    att = model.attention(Image.open(io.BytesIO(png_bytes(4))))
    np.testing.assert_allclose(np.array(result["weights"]) / 1e4, att.weights, atol=1e-4)
    assert [c for c, _ in result["top"]] == [c for c, _ in att.top]


@pytest.mark.parametrize("case,status,message", [
    ("empty text", 400, "empty"),
    ("text over the limit", 422, "at most 40"),
    ("not an image", 415, "not an image"),
    ("oversized upload", 413, "limit"),
    ("no file", 400, "no file"),
    ("text to the image model", 404, "vision model"),
])
def test_bad_input_is_a_4xx_with_a_message_and_the_server_keeps_serving(servers, case, status, message):
    text_url, image_url = servers["transformer"][1].url, servers["vit"][1].url
    if case == "empty text":
        answer = translate(text_url, "   ")
    elif case == "text over the limit":
        answer = translate(text_url, "Das ist ein sehr langer Satz " * 10)
    elif case == "not an image":
        answer = post(image_url + "/api/classify", *multipart("notes.png", b"just some text, not pixels"))
    elif case == "oversized upload":
        answer = post(image_url + "/api/classify", *multipart("big.png", png_bytes(4, size=400) + b"\0" * 60_000))
    elif case == "no file":
        answer = post(image_url + "/api/classify", *multipart("x.txt", b"hello", field="other"))
    else:
        answer = translate(image_url, "Hallo")
    assert answer[0] == status and message in answer[1]["error"]
    assert translate(text_url, "Hallo.")[0] == 200  # still serving
    assert post(image_url + "/api/classify", *multipart("ok.png", png_bytes(1)))[0] == 200


def test_a_chunked_upload_without_length_is_cut_off_at_the_limit(servers):
    """No Content-Length to refuse early: the body is counted while it streams in."""
    import http.client

    running = servers["vit"][1]
    body, content_type = multipart("big.png", b"\0" * 200_000)
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=60)
    conn.putrequest("POST", "/api/classify")
    conn.putheader("Content-Type", content_type)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    try:
        for start in range(0, len(body), 16_384):
            chunk = body[start:start + 16_384]
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may answer and close before the whole body is sent
    response = conn.getresponse()
    assert response.status == 413 and "limit" in json.loads(response.read())["error"]
    conn.close()
    assert post(running.url + "/api/classify", *multipart("ok.png", png_bytes(2)))[0] == 200


def test_twenty_concurrent_requests_are_all_answered(servers):
    text_url, image_url = servers["transformer"][1].url, servers["vit"][1].url
    sentences = [f"Ich habe {n} Katzen." for n in range(10)]

    def one(i: int) -> tuple[int, str]:
        if i % 2:
            status, item = post(image_url + "/api/classify", *multipart(f"d{i}.png", png_bytes(i % 10)))
            return status, item["input"] == f"d{i}.png"
        status, item = translate(text_url, sentences[i // 2])
        return status, item["input"] == sentences[i // 2]

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(one, range(20)))
    assert answers == [(200, True)] * 20


def test_the_served_page_answers_a_typed_sentence_an_upload_and_shows_errors(browser, servers, tmp_path):
    model, running = servers["transformer"]
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(running.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#text", "Das ist gut.")
    page.click("#go")
    page.wait_for_selector("#panel-0 table.weights td.w")
    att = model.attention("Das ist gut.", n_best=3)
    page.click('#panel-0 .row-token[data-row="1"]')
    shown = page.eval_on_selector_all("#panel-0 table.weights td.w", "c => c.map(x => Number(x.dataset.weight))")
    np.testing.assert_allclose(shown, att.best.cross[-1].mean(0)[1], atol=1e-3)
    page.fill("#text", "")
    page.click("#go")
    page.wait_for_selector("#message.error")
    assert "empty" in page.text_content("#message")
    page.close()

    vit, vit_running = servers["vit"]
    page = browser.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(vit_running.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    image = tmp_path / "seven.png"
    image.write_bytes(png_bytes(7))
    page.set_input_files("#file", str(image))
    page.click("#go")
    page.wait_for_selector("#panel-0 table.top5 td")
    assert page.eval_on_selector("#item", "s => s.options[s.selectedIndex].textContent") == "1. seven.png"
    not_image = tmp_path / "fake.png"
    not_image.write_text("not an image")
    page.set_input_files("#file", str(not_image))
    page.click("#go")
    page.wait_for_selector("#message.error")
    assert "not an image" in page.text_content("#message")
    page.close()
    assert errors == []


def test_cli_serve_answers_on_the_loopback_port(tiny_runs, tmp_path):
    port = free_port()
    env = {**os.environ, "HYDRA_FULL_ERROR": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "attnlab", "mode=serve", f"checkpoint={tiny_runs['rnn_attn'] / 'checkpoints' / 'best.pt'}",
         f"serve.port={port}", "trainer.num_threads=1", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.time() + 90
        while True:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                assert time.time() < deadline, "mode=serve did not answer within 90 s"
                time.sleep(0.3)
        assert '"mode":"serve"' in page and '"kind":"translation"' in page
        status, item = translate(f"http://127.0.0.1:{port}", "Ich habe Hunger.")
        assert status == 200 and item["results"][0]["hypotheses"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
