"""The optional LLM labeller against a local OpenAI-compatible server on 127.0.0.1."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest
from steerrec.training.interpret.llm import LLMConfig, LLMError, llm_label, parse_label


class FakeChat(BaseHTTPRequestHandler):
    requests: ClassVar[list] = []
    status = 200
    answer = '{"label": "80s slasher films"}'

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeChat.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        payload = {"choices": [{"message": {"role": "assistant", "content": FakeChat.answer}}]}
        data = json.dumps(payload if FakeChat.status == 200 else {"error": "boom"}).encode()
        self.send_response(FakeChat.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    FakeChat.requests, FakeChat.status = [], 200
    httpd = HTTPServer(("127.0.0.1", 0), FakeChat)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def records():
    top = [{"index": 0, "item": "a", "title": "Halloween (1978)", "activation": 3.0},
           {"index": 1, "item": "b", "title": "Friday the 13th (1980)", "activation": 2.0}]
    return [{"id": 0, "label": "Horror", "slug": "horror", "confidence": 0.9, "prefix": 0, "status": "ok",
             "top_items": top, "concepts": [{"facet": "genre", "concept": "Horror", "share": 1.0}]},
            {"id": 1, "label": "mixed #1", "slug": "n1", "confidence": 0.2, "prefix": 1, "status": "low_confidence",
             "top_items": top[::-1], "concepts": []},
            {"id": 2, "label": "dead #2", "slug": "n2", "confidence": 0.0, "prefix": 1, "status": "dead",
             "top_items": [], "concepts": []}]


FACETS = [{"genre": ["Horror"], "decade": ["1970s"]}, {"genre": ["Horror"], "decade": ["1980s"]}]


def test_labels_neurons_through_the_chat_endpoint(server):
    recs = records()
    n = llm_label(recs, FACETS, LLMConfig(url=server, model="tiny-model", api_key="k123"))
    assert n == 2  # the dead neuron is not asked about
    assert [r.get("llm_label") for r in recs] == ["80s slasher films", "80s slasher films", None]
    # A verified metadata label stays; an unlabelled neuron shows the suggestion, marked; slugs never change.
    assert recs[0]["label"] == "Horror" and recs[1]["label"] == "80s slasher films (LLM)"
    assert [r["slug"] for r in recs] == ["horror", "n1", "n2"]
    req = FakeChat.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer k123"
    assert req["body"]["model"] == "tiny-model"
    prompt = req["body"]["messages"][1]["content"]
    assert "Halloween (1978)" in prompt and "genre: Horror" in prompt and "decade: 1970s" in prompt


def test_http_errors_name_the_endpoint(server):
    FakeChat.status = 500
    with pytest.raises(LLMError, match=r"127\.0\.0\.1.*/chat/completions: HTTP 500"):
        llm_label(records(), FACETS, LLMConfig(url=server, model="m"))


def test_unreachable_endpoint_is_a_clear_error():
    with pytest.raises(LLMError, match="unreachable"):
        llm_label(records(), FACETS, LLMConfig(url="http://127.0.0.1:9/v1", model="m", timeout=2))


def test_off_by_default_and_configurable_from_the_environment(monkeypatch):
    for key in ("STEERREC_LLM_URL", "STEERREC_LLM_MODEL", "STEERREC_LLM_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    assert LLMConfig.resolve() is None
    monkeypatch.setenv("STEERREC_LLM_URL", "http://127.0.0.1:8000/v1/chat/completions")
    monkeypatch.setenv("STEERREC_LLM_MODEL", "m")
    cfg = LLMConfig.resolve()
    assert cfg.endpoint == "http://127.0.0.1:8000/v1/chat/completions" and cfg.api_key is None
    assert LLMConfig.resolve(model="other").model == "other"  # arguments beat the environment
    monkeypatch.delenv("STEERREC_LLM_MODEL")
    with pytest.raises(ValueError, match="model"):
        LLMConfig.resolve()


@pytest.mark.parametrize("content,label", [('{"label": "Space operas"}', "Space operas"),
                                           ('Sure! {"label": "Jazz"} hope it helps', "Jazz"),
                                           ('"Film noir."\nBecause...', "Film noir")])
def test_parse_label(content, label):
    assert parse_label(content) == label
