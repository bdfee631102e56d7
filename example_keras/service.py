"""A tiny scoring service: the model arrives as an ordinary dependency (pip install anomaly-model).

Run: python service.py            (scores the sample the training script wrote, or random readings)
     python service.py --serve    (an HTTP endpoint: POST {"readings": [[...6 floats...], ...]} to :8080)
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
from anomaly_model import load, metadata  # imports no TensorFlow until load()

MODEL = load()  # the default model (.keras), verified against its sha256 first
SERVING = load("anomaly_serving")  # the SavedModel, via tf.saved_model.load
FEATURES = metadata()["metadata"]["features"]


def score(readings: np.ndarray) -> list[float]:
    return MODEL.predict(np.asarray(readings, dtype="float32"), verbose=0).ravel().tolist()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        reply = json.dumps({"failure_probability": score(np.array(body["readings"]))}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(reply)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    if args.serve:
        HTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
        return
    sample_file = Path(__file__).parent / "artifacts" / "sample.npy"
    sample = (
        np.load(sample_file)
        if sample_file.exists()
        else np.random.default_rng(0).normal(size=(5, len(FEATURES))).astype("float32")
    )
    keras_scores = score(sample)
    serving_scores = np.asarray(SERVING.serve(sample)).ravel().tolist()
    for row, p, q in zip(sample, keras_scores, serving_scores, strict=True):
        print(
            {f: round(float(v), 2) for f, v in zip(FEATURES, row, strict=True)},
            f"p(failure) = {p:.3f} (SavedModel: {q:.3f})",
        )


if __name__ == "__main__":
    main()
