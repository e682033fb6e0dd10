"""The optional LLM mapper against a local stand-in for an OpenAI-compatible endpoint
(http.server on 127.0.0.1, a random port, in a thread) speaking /v1/chat/completions."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.importer.helpers import nothing_written, write
from vigil.importer import ImportRefused, import_path

API_KEY = "sk-test-0123456789abcdef"
DOC = {
    "name": "partner-model",
    "metrics": {"accuracy": 0.9},
    "holdout_auc_score_v2": 0.91,            # no rule knows it
    "blurb": "A partner's churn model.",      # no rule knows it
    "knob_alpha": 3,                         # no rule knows it
    "cafeteria_menu": "soup",                # no rule knows it; the endpoint says ignore
}


class StandIn:
    """Records each request; answers with ``reply(request_json)`` as the message content."""

    def __init__(self, reply, status=200):
        self.reply, self.status, self.requests = reply, status, []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stand_in.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                if stand_in.status != 200:
                    payload = json.dumps({"error": f"bad key {self.headers.get('Authorization')}"}).encode()
                else:
                    content = stand_in.reply(json.loads(body["messages"][-1]["content"]))
                    payload = json.dumps({"id": "x", "object": "chat.completion", "model": body["model"],
                                          "choices": [{"index": 0, "finish_reason": "stop",
                                                       "message": {"role": "assistant", "content": content}}]}).encode()
                self.send_response(stand_in.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @property
    def host(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"


def good_reply(asked):
    keys = {k["key"].split(":", 1)[1]: k["key"] for k in asked["keys"]}
    return json.dumps({"mappings": [
        {"key": keys["holdout_auc_score_v2"], "target": "metrics.roc_auc"},
        {"key": keys["blurb"], "target": "description"},
        {"key": keys["knob_alpha"], "target": "params.alpha"},
        {"key": keys["cafeteria_menu"], "target": "ignore"},
    ]})


def connect(monkeypatch, server, model="stand-in-1"):
    monkeypatch.setenv("AIRFLOW_CONN_VIGIL_LLM_MAPPER", json.dumps(
        {"conn_type": "http", "host": server.host, "password": API_KEY, "extra": {"model": model}}))


def test_unknown_keys_are_mapped_through_the_same_rules_and_schema(registry, vigil_env, monkeypatch):
    path = write(vigil_env / "m.json", DOC)
    with StandIn(good_reply) as server:
        connect(monkeypatch, server)
        result = import_path(path, registry, llm_mapper=True)
    v = registry.get(result.ref)
    assert v.metrics == {"accuracy": 0.9, "roc_auc": 0.91}
    assert v.params == {"alpha": 3}
    assert result.plan.record.description == "A partner's churn model."
    rep = result.plan.report
    assert rep["llm_mapper"]["asked"] == 4 and rep["llm_mapper"]["accepted"] == 3
    by_target = {m["target"]: m for m in rep["mapped"]}
    assert by_target["metrics.roc_auc"] == {"target": "metrics.roc_auc", "source": "m.json:holdout_auc_score_v2",
                                            "rule": "llm:stand-in-1"}
    assert [i["source"] for i in rep["ignored"]] == ["m.json:cafeteria_menu"]
    # What was sent: only the unknown keys and their value types; never values, never known keys.
    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions" and req["auth"] == f"Bearer {API_KEY}"
    assert req["body"]["model"] == "stand-in-1"
    sent = json.loads(req["body"]["messages"][-1]["content"])
    assert sorted(k["key"] for k in sent["keys"]) == ["m.json:blurb", "m.json:cafeteria_menu", "m.json:holdout_auc_score_v2",
                                                     "m.json:knob_alpha"]
    text = json.dumps(req["body"])
    for secret in ("0.91", "partner's churn", "soup", "partner-model", "accuracy"):
        assert secret not in text


def test_percent_rules_apply_to_what_the_mapper_suggests(registry, vigil_env, monkeypatch):
    path = write(vigil_env / "m.json", {"name": "p", "holdout_acc_v2": 88.0})
    def reply(asked):
        return json.dumps({"mappings": [{"key": asked["keys"][0]["key"], "target": "metrics.accuracy"}]})

    with StandIn(reply) as server:
        connect(monkeypatch, server)
        result = import_path(path, registry, llm_mapper=True)
    assert registry.get(result.ref).metrics == {"accuracy": 0.88}


@pytest.mark.parametrize("reply,match", [
    pytest.param(lambda a: "Sure! accuracy is the AUC.", r"rejected by validation", id="not-json"),
    pytest.param(lambda a: json.dumps({"mappings": [{"key": "m.json:blurb", "target": "metrics.Bad Name!"}]}),
                 r"rejected by validation.*target", id="target-outside-schema"),
    pytest.param(lambda a: json.dumps({"mappings": [{"key": "m.json:name", "target": "description"}]}),
                 r"mapped key 'm\.json:name', which was not asked about", id="key-not-asked"),
    pytest.param(lambda a: json.dumps({"mappings": [{"key": "m.json:blurb", "target": "metrics.roc_auc"}]}),
                 r"rejected by validation.*is not a number", id="text-as-metric"),
    pytest.param(lambda a: json.dumps({"mappings": [{"key": "m.json:knob_alpha", "target": "metrics.recall_fraction"}]}),
                 r"rejected by validation.*the key says it is a fraction", id="3-as-a-fraction"),
    pytest.param(lambda a: json.dumps({"mappings": [], "confidence": "high"}), r"rejected by validation.*confidence",
                 id="extra-fields"),
])
def test_invalid_output_is_refused_and_nothing_is_written(registry, vigil_env, monkeypatch, reply, match):
    path = write(vigil_env / "m.json", DOC)
    with StandIn(reply) as server:
        connect(monkeypatch, server)
        with pytest.raises(ImportRefused, match=match) as err:
            import_path(path, registry, llm_mapper=True)
    assert API_KEY not in str(err.value)
    assert nothing_written(registry.engine, vigil_env / "var")


def test_http_errors_never_show_the_api_key(registry, vigil_env, monkeypatch, caplog):
    path = write(vigil_env / "m.json", DOC)
    with StandIn(good_reply, status=401) as server:
        connect(monkeypatch, server)
        with pytest.raises(ImportRefused, match=r"answered HTTP 401") as err:
            import_path(path, registry, llm_mapper=True)
    assert "bad key" in str(err.value)  # the server's body is shown ...
    assert API_KEY not in str(err.value) and "***" in str(err.value)  # ... with the key redacted
    assert API_KEY not in caplog.text
    server_gone = server.host
    monkeypatch.setenv("AIRFLOW_CONN_VIGIL_LLM_MAPPER", json.dumps(
        {"conn_type": "http", "host": server_gone, "password": API_KEY, "extra": {"model": "m", "timeout": 2}}))
    with pytest.raises(ImportRefused, match=r"cannot reach the LLM mapper") as err:
        import_path(path, registry, llm_mapper=True)
    assert API_KEY not in str(err.value)
    assert nothing_written(registry.engine, vigil_env / "var")


def test_off_by_default_and_a_clear_error_without_a_connection(registry, vigil_env, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_VIGIL_LLM_MAPPER", raising=False)
    path = write(vigil_env / "m.json", DOC)
    with StandIn(good_reply) as server:
        connect(monkeypatch, server)
        result = import_path(path, registry, dry_run=True)  # llm_mapper not asked for
    assert server.requests == [] and result.plan.report["llm_mapper"] is None
    assert "m.json:holdout_auc_score_v2" in [i["source"] for i in result.plan.report["ignored"]]
    monkeypatch.delenv("AIRFLOW_CONN_VIGIL_LLM_MAPPER")
    with pytest.raises(ImportRefused, match=r"connection 'vigil_llm_mapper' is not configured"):
        import_path(path, registry, llm_mapper=True)
