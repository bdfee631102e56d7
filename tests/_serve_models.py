"""Train the small, seeded models the serving tests package; run as a script: python _serve_models.py OUT.

Writes OUT/artifacts/{pipe.joblib, sk.skops, onx.onnx, kr.keras} and OUT/expected.json with the
inputs sent and each original model's outputs. A separate process keeps TensorFlow out of pytest's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

FEATURES = ["tenure", "charges", "plan"]


def main(out: Path) -> None:
    art = out / "artifacts"
    art.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    n = 300
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(1, 60, n).astype(float),
            "charges": rng.normal(70, 20, n).round(2),
            "plan": rng.choice(["monthly", "yearly"], n),
        }
    )
    y = (
        (frame["charges"] - 70) / 20 - frame["tenure"] / 30 + (frame["plan"] == "monthly") + rng.normal(0, 0.5, n) > 0
    ).astype(int)
    pipe = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [("num", StandardScaler(), ["tenure", "charges"]), ("cat", OneHotEncoder(), ["plan"])]
                ),
            ),
            ("model", LogisticRegression()),
        ]
    ).fit(frame, y)
    joblib.dump(pipe, art / "pipe.joblib")
    rows = frame.head(5)

    X = rng.normal(size=(n, 3))
    yx = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    sk = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]).fit(X, yx)
    import skops.io as sio

    sio.dump(sk, art / "sk.skops")

    from skl2onnx import to_onnx

    onx = to_onnx(sk, X[:1].astype(np.float32), options={"zipmap": False})
    (art / "onx.onnx").write_bytes(onx.SerializeToString())
    import onnxruntime as ort

    session = ort.InferenceSession(str(art / "onx.onnx"))
    onnx_input = session.get_inputs()[0].name
    onnx_out = session.run(None, {onnx_input: X[:5].astype(np.float32)})

    import keras

    keras.utils.set_random_seed(5)
    km = keras.Sequential(
        [keras.Input(shape=(3,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid")]
    )
    km.compile(optimizer="adam", loss="binary_crossentropy")
    km.fit(X.astype("float32"), yx, epochs=2, verbose=0)
    km.save(art / "kr.keras")

    expected = {
        "rows": rows.to_dict(orient="list"),
        "pipe_predict": pipe.predict(rows).tolist(),
        "pipe_proba": pipe.predict_proba(rows).tolist(),
        "X": X[:5].tolist(),
        "sk_predict": sk.predict(X[:5]).tolist(),
        "sk_proba": sk.predict_proba(X[:5]).tolist(),
        "onnx_input": onnx_input,
        "onnx_outputs": {o.name: v.tolist() for o, v in zip(session.get_outputs(), onnx_out, strict=True)},
        "kr_predict": km.predict(X[:5].astype("float32"), verbose=0).tolist(),
    }
    (out / "expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
