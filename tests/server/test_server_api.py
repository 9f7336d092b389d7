"""The HTTP API on the session's small model: readiness, the model's description, predictions equal to
the library's, the same prediction alone or batched, attention weights, ids and unknown keys."""

from __future__ import annotations

import json
import threading
import time

from server_helpers import assert_close, model_held, read_records

import multifield


def predict(client, records, attention=False):
    response = client.post("/v1/predict", json={"records": records}, params={"attention": str(attention).lower()})
    assert response.status_code == 200, response.text[:500]
    return response.json()["predictions"]


def test_healthz_is_503_while_warming_up_then_ok(client):
    first = client.first_health
    # On ONNX Runtime nothing compiles: the warm-up may be over before the first request.
    if first.status_code != 200:
        assert first.status_code == 503
        assert first.json() == {"status": "warming_up"}
        assert int(first.headers["retry-after"]) >= 1
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_model_description(client, trained_bundle):
    info = client.get("/v1/model").json()
    assert info["labels"] == json.loads((trained_bundle / "labels.json").read_text())
    assert info["multifield_version"] == multifield.__version__
    assert info["bundle"]["format_version"] == 1
    assert info["fields"]["plot"] == {"kind": "text", "encoder": "rnn_attention", "max_tokens": 40, "attention": True}
    assert info["fields"]["actors"]["kind"] == "items" and info["fields"]["actors"]["encoder"] == "pooled"
    assert info["config"]["name"] == "small-movies" and info["config"]["labels"]["field"] == "genres"
    assert 0.0 <= info["validation"]["micro_f1"] <= 1.0
    metrics = json.loads((trained_bundle / "metrics.json").read_text())
    assert info["attention_check"] == metrics["attention_check"] and "plot" in info["attention_check"]
    assert set(info["thresholds"]) == set(info["labels"])
    assert info["limits"] == {"max_records": 1000, "max_field_chars": 100_000, "max_body_bytes": 10 * 1024 * 1024}


def test_openapi_schema_is_generated_from_the_config(client):
    schema = client.get("/openapi.json").json()
    record = schema["components"]["schemas"]["Record"]
    assert set(record["properties"]) == {"id", "actors", "plot", "features", "reviews", "title"}
    assert {"type": "string", "maxLength": 100_000} in record["properties"]["plot"]["anyOf"]
    assert any(option.get("type") == "array" for option in record["properties"]["actors"]["anyOf"])
    assert "ignored" in schema["info"]["description"]  # unknown keys: documented as ignored
    request = schema["components"]["schemas"]["PredictRequest"]["properties"]["records"]
    assert request["minItems"] == 1 and request["maxItems"] == 1000
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "/static/swagger-ui/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text.lower()
    script = client.get("/static/swagger-ui/swagger-ui-bundle.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert len(script.content) > 100_000


def test_predictions_are_the_library_predictions(client, trained_bundle, movie_files):
    records = read_records(movie_files["test"], 6)
    served = predict(client, records, attention=True)
    assert_close(served, multifield.load(trained_bundle).predict_records(records, attention=True))
    assert [row["id"] for row in served] == [record["id"] for record in records]


def test_a_record_predicts_the_same_alone_or_batched(client, app, movie_files):
    records = read_records(movie_files["test"], 12)
    records[3] = {"id": "empty"}  # every field missing
    alone = [predict(client, [record], attention=True)[0] for record in records]

    # One request of twelve records: one model call, padded to 16 rows, the plot trimmed to the longest.
    assert_close(predict(client, records, attention=True), alone)

    # Twelve concurrent requests, gathered by the batcher while the model thread is busy.
    batcher = app.state.batcher
    results: dict[int, list] = {}

    def send(index):
        results[index] = predict(client, [records[index]], attention=index % 2 == 0)

    with model_held(batcher) as (entered, release, calls):
        blocker = threading.Thread(target=send, args=(0,))
        blocker.start()
        assert entered.wait(30)
        threads = [threading.Thread(target=send, args=(index,)) for index in range(1, 12)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while batcher.queued_requests < 11:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        release.set()
        for thread in [blocker, *threads]:
            thread.join(30)
    assert calls[:2] == [1, 11]  # the eleven waiting requests went to the model as one batch
    for index, record in enumerate(records):
        expected = dict(alone[index])
        if index % 2:
            assert "attention" not in results[index][0]  # asked without attention: none given
            expected.pop("attention")
        assert_close(results[index], [expected])


def test_attention_weights_sum_to_one_per_non_empty_field(client, movie_files):
    records = read_records(movie_files["test"], 5) + [{"id": "no plot", "reviews": "A short tagline."}]
    for row in predict(client, records, attention=True):
        assert set(row["attention"]) == {"plot", "reviews"}
        for name, pairs in row["attention"].items():
            if pairs:
                assert abs(sum(weight for _, weight in pairs) - 1.0) < 1e-4, (row["id"], name)
                assert all(isinstance(word, str) and 0.0 <= weight <= 1.0 for word, weight in pairs)
        if row["id"] == "no plot":
            assert row["attention"]["plot"] == []
    assert all("attention" not in row for row in predict(client, records))


def test_answers_carry_the_server_time(client):
    for response in (client.get("/healthz"), client.post("/v1/predict", json={"records": [{}]}), client.get("/nothing")):
        name, duration = response.headers["server-timing"].split(";dur=")
        assert name == "app" and float(duration) >= 0.0


def test_ids_are_optional_and_unknown_keys_ignored(client):
    plot = "A retired detective hunts a killer in a snowed-in mountain town."
    rows = predict(client, [{"id": "a", "plot": plot}, {"id": 7, "plot": plot}, {"plot": plot}])
    assert [row["id"] for row in rows] == ["a", 7, None]
    with_extras = predict(client, [{"id": "a", "plot": plot, "genres": ["Drama"], "colour": {"x": 1}}])
    assert_close(with_extras, rows[:1])
    for row in rows:
        assert set(row) == {"id", "labels", "scores"}
        assert all(label in row["scores"] for label in row["labels"])


def test_items_field_as_list_json_string_or_delimited_string(client):
    rows = predict(
        client,
        [
            {"actors": ["Tom Hanks", "Meg Ryan"]},
            {"actors": '["Tom Hanks", "Meg Ryan"]'},
            {"actors": "Tom Hanks|Meg Ryan"},
        ],
    )
    assert_close(rows[1:], [rows[0], rows[0]])


def test_text_over_max_tokens_is_truncated_not_rejected(client):
    words = [f"word{i % 50}" for i in range(5_000)]  # 40 tokens are read; the rest is cut off
    long, short = predict(client, [{"plot": " ".join(words)}, {"plot": " ".join(words[:40])}])
    assert_close([long], [short])
