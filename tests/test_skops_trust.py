"""skops: the types a file names are admitted by the same reviewed allowlist, for the way skops uses
them (a ConstructorFromReduceNode or ObjectNode calls its type); ``trusted=`` holds only those."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from hatch_modelpack.formats.skops import SCHEMA, SkopsFormat
from hatch_modelpack.safety import check_globals

sio = pytest.importorskip("skops.io")


def _model():
    X = np.arange(24.0).reshape(12, 2)
    return LogisticRegression().fit(X, np.arange(12) % 2), X


def _with_node(data: bytes, node: dict) -> bytes:
    """The same skops file with ``node`` added as an attribute of the root estimator."""
    src = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(src.read(SCHEMA))
    schema["content"]["content"]["extra"] = node
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, json.dumps(schema) if info.filename == SCHEMA else src.read(info))
    return out.getvalue()


def _findings(path):
    inspection = SkopsFormat().inspect(path, "m")
    return inspection, check_globals(inspection.globals, "churn_model", [], uses=inspection.uses)


def test_an_ordinary_skops_model_is_admitted_and_loads_with_the_recorded_trust(tmp_path):
    model, X = _model()
    path = tmp_path / "m.skops"
    sio.dump(model, path)
    inspection, findings = _findings(path)
    assert findings == []
    loaded = sio.load(path, trusted=inspection.details["trusted"])
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_constructor_from_reduce_node_outside_the_list_is_refused_and_skops_refuses_it_too(tmp_path):
    model, _ = _model()
    marker = tmp_path / "payload-ran"
    args = {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
            "content": [{"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
                         "content": json.dumps(f"touch {marker}"), "is_json": True}]}  # fmt: skip
    node = {"__class__": "system", "__module__": "os", "__loader__": "ConstructorFromReduceNode", "content": args}
    path = tmp_path / "evil.skops"
    path.write_bytes(_with_node(sio.dumps(model), node))
    inspection, findings = _findings(path)
    assert [f.name for f in findings] == ["os.system"]
    # A manifest that a tricked build wrote would trust only the admitted types: skops refuses the rest.
    trusted = [t for t in inspection.details["trusted"] if t != "os.system"]
    with pytest.raises(Exception, match=r"os\.system|Untrusted"):
        sio.load(path, trusted=trusted)
    assert not marker.exists()


def test_an_allowlisted_value_called_by_a_constructor_node_is_refused(tmp_path):
    model, _ = _model()
    node = {"__class__": "log1p", "__module__": "numpy", "__loader__": "ConstructorFromReduceNode",
            "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": []}}  # fmt: skip
    path = tmp_path / "m.skops"
    path.write_bytes(_with_node(sio.dumps(model), node))
    _, findings = _findings(path)
    assert [f.name for f in findings] == ["numpy.log1p"] and "call" in findings[0].reason
