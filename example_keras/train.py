"""Train the example sensor-anomaly model on synthetic data and save it for packaging.

No downloads: readings are generated from a fixed seed. Run with TensorFlow installed:
    python train.py            # writes artifacts/anomaly.keras, artifacts/anomaly_savedmodel/, samples
The build itself does not need TensorFlow: hatch-modelpack reads the versions from the files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import keras
import numpy as np

FEATURES = ["temperature", "vibration", "pressure", "current", "rpm", "humidity"]


def make_readings(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sensor readings; a machine is failing when vibration and current rise together with heat."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES))).astype("float32")
    score = 1.2 * X[:, 1] + 0.8 * X[:, 3] + 0.6 * X[:, 0] * X[:, 1] - 0.4 * X[:, 4]
    y = (score + rng.normal(scale=0.5, size=n) > 1.0).astype("float32")
    return X, y


def build_model() -> keras.Model:
    inputs = keras.Input(shape=(len(FEATURES),), name="readings")
    x = keras.layers.Dense(32, activation="relu")(inputs)
    x = keras.layers.Dense(16, activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="failure_probability")(x)
    model = keras.Model(inputs, outputs, name="anomaly")
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "artifacts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    X, y = make_readings(args.rows, args.seed)
    model = build_model()
    model.fit(X, y, epochs=args.epochs, batch_size=64, validation_split=0.1, verbose=0)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "anomaly.keras")  # the Keras 3 format: loaded with keras.models.load_model
    model.export(str(args.out / "anomaly_savedmodel"), verbose=False)  # for TF Serving / tf.saved_model.load
    sample = X[:20]
    np.save(args.out / "sample.npy", sample)
    np.save(args.out / "sample_predictions.npy", model.predict(sample, verbose=0).ravel())
    (args.out / "features.json").write_text(json.dumps(FEATURES))
    _, accuracy = model.evaluate(X, y, verbose=0)
    print(f"accuracy on training data: {accuracy:.3f}; wrote {args.out}")


if __name__ == "__main__":
    main()
