"""Train the example churn model on synthetic customer data and save it for packaging.

No downloads: the data is generated from a fixed seed, so every run writes the same model.
Run: python train.py  (writes artifacts/churn.joblib and artifacts/sample.csv)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = ["tenure_months", "monthly_charges", "support_calls"]
CATEGORICAL = ["contract"]


def make_customers(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers whose churn depends on tenure, price, support calls and contract type."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "tenure_months": rng.integers(1, 72, n),
            "monthly_charges": rng.normal(70, 20, n).round(2),
            "support_calls": rng.poisson(1.5, n),
            "contract": rng.choice(["monthly", "one_year", "two_year"], n, p=[0.55, 0.25, 0.2]),
        }
    )
    logit = (
        -1.0
        - 0.04 * df["tenure_months"]
        + 0.03 * (df["monthly_charges"] - 70)
        + 0.5 * df["support_calls"]
        + df["contract"].map({"monthly": 1.2, "one_year": -0.3, "two_year": -1.2})
    )
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    return df, churned.astype(int)


def build_pipeline(kind: str, seed: int) -> Pipeline:
    features = ColumnTransformer(
        [("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)]
    )
    if kind == "forest":
        model = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=seed)
    else:
        model = LogisticRegression(max_iter=1000)
    return Pipeline([("features", features), ("model", model)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "artifacts")
    parser.add_argument("--model", choices=["logistic", "forest"], default="logistic")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()

    X, y = make_customers(args.rows, args.seed)
    pipeline = build_pipeline(args.model, args.seed).fit(X, y)
    args.out.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, args.out / "churn.joblib")
    sample = X.head(20)
    sample.to_csv(args.out / "sample.csv", index=False)
    np.save(args.out / "sample_predictions.npy", pipeline.predict_proba(sample)[:, 1])
    print(f"accuracy on training data: {pipeline.score(X, y):.3f}; wrote {args.out / 'churn.joblib'}")


if __name__ == "__main__":
    main()
