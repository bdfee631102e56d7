"""A minimal prediction service: the model comes from the installed churn-model wheel.

Run: python service.py --port 8080
  GET  /health   -> the model's name, version and sha256 (from the package's manifest)
  POST /predict  -> body: a JSON list of customer records; answer: churn probabilities
Standard library only (plus pandas, which the model's feature pipeline expects).
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import churn_model
import pandas as pd

MODEL = churn_model.load()  # verified against its sha256 before it is unpickled
INFO = {
    "package": "churn-model",
    "version": churn_model.__version__,
    "model": churn_model.metadata()["name"],
    "sha256": churn_model.metadata()["files"][0]["sha256"],
}


class Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, payload: object) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, INFO)
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path != "/predict":
            self._send(404, {"error": "not found"})
            return
        try:
            records = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            frame = pd.DataFrame.from_records(records)
            self._send(200, {"churn_probability": MODEL.predict_proba(frame)[:, 1].tolist(), **INFO})
        except (ValueError, KeyError, TypeError) as exc:
            self._send(400, {"error": str(exc)})

    def log_message(self, format: str, *args: object) -> None:  # keep the demo's output short
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"serving churn-model {churn_model.__version__} on http://{args.host}:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
