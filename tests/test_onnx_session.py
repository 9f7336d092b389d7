"""ONNX Runtime sessions: few threads that do not spin by default, one when the machine is busy; both settable."""

import onnx
import pytest
from onnx import TensorProto, helper

from multifield import onnx_session
from multifield.errors import ConfigError
from multifield.onnx_session import default_threads, inference_session


def tiny_graph() -> bytes:
    node = helper.make_node("Cast", ["plot"], ["scores"], to=TensorProto.FLOAT)
    graph = helper.make_graph(
        [node], "tiny", [helper.make_tensor_value_info("plot", TensorProto.INT32, ["batch", "length"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "length"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.mark.parametrize("cores, load, expected", [(16, 0.0, 2), (2, 0.3, 2), (2, 1.2, 1), (2, 6.5, 1), (1, 0.0, 1)])
def test_default_threads_leave_busy_cores_alone(monkeypatch, cores, load, expected):
    monkeypatch.delenv("MULTIFIELD_THREADS", raising=False)
    monkeypatch.setattr(onnx_session.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(onnx_session.os, "getloadavg", lambda: (load, load, load))
    assert default_threads() == expected


def test_threads_and_spinning_are_settings(monkeypatch):
    monkeypatch.setenv("MULTIFIELD_THREADS", "3")
    monkeypatch.delenv("MULTIFIELD_SPINNING", raising=False)
    options = inference_session(tiny_graph()).get_session_options()
    assert options.intra_op_num_threads == 3
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    monkeypatch.setenv("MULTIFIELD_SPINNING", "1")
    options = inference_session(tiny_graph(), threads=1).get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert inference_session(tiny_graph(), spinning=False).get_session_options().get_session_config_entry(
        "session.intra_op.allow_spinning") == "0"
    with pytest.raises(ConfigError, match="threads must be 1 or more"):
        inference_session(tiny_graph(), threads=0)
    monkeypatch.setenv("MULTIFIELD_THREADS", "0")
    with pytest.raises(ConfigError, match="MULTIFIELD_THREADS must be a whole number"):
        default_threads()
