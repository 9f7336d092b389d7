"""ONNX Runtime sessions: at most two threads, each running a batch, that do not spin by default; both settable."""

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


@pytest.mark.parametrize("cores, load, expected", [(16, 0.0, 2), (2, 0.3, 2), (2, 6.5, 2), (1, 0.0, 1)])
def test_default_threads_are_two_at_most_whatever_the_load(monkeypatch, cores, load, expected):
    monkeypatch.delenv("MULTIFIELD_THREADS", raising=False)
    monkeypatch.setattr(onnx_session.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(onnx_session.os, "getloadavg", lambda: (load, load, load), raising=False)
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



def test_onnx_call_runs_batches_side_by_side_one_core_each(monkeypatch):
    import threading
    import time

    import numpy as np

    from multifield.data.batches import predict_in_buckets
    from multifield.onnx_session import OnnxCall

    class Recorded(OnnxCall):
        def __call__(self, batch):
            self.seen.append((threading.current_thread().name, batch["plot"].shape))
            time.sleep(self.pause)  # a batch that takes a while, as a real one does
            return super().__call__(batch)

    call = Recorded(tiny_graph(), threads=2)
    call.seen, call.pause = [], 0.0
    assert call.workers == 2 and call.session.get_session_options().intra_op_num_threads == 1
    ids = np.zeros((9, 4), dtype=np.int32)
    ids[np.arange(9), 0] = np.arange(1, 10)  # every row at least one token long, its own value
    ids[:3, 1:] = 7  # three rows four tokens long, sorted last
    # Fewer records than two full batches: split between the two workers, the outputs back in input order.
    outputs = predict_in_buckets(call, {"plot": ids}, batch_size=256, sort_by="plot", fixed_shapes=False)
    np.testing.assert_array_equal(outputs["scores"][:, 0], np.arange(1, 10))
    np.testing.assert_array_equal(outputs["scores"][:3, 1:], 7)
    np.testing.assert_array_equal(outputs["scores"][3:, 1:], 0)
    assert sorted(shape for _, shape in call.seen) == [(4, 4), (5, 1)]  # five short rows, then the rest: each cut to its longest
    # The calling thread runs one batch, a thread of the call's own the other (or both, when it is quicker).
    assert {name for name, _ in call.seen} <= {"MainThread", "multifield-onnx_0"}
    call.pause = 0.002
    many = predict_in_buckets(call, {"plot": np.repeat(ids, 40, axis=0)}, batch_size=8, sort_by="plot", fixed_shapes=False)
    np.testing.assert_array_equal(many["scores"][:, 0], np.repeat(np.arange(1, 10), 40))
    assert {name for name, _ in call.seen[2:]} == {"MainThread", "multifield-onnx_0"}  # 45 batches: both ran some
    single = Recorded(tiny_graph(), threads=1)
    single.seen, single.pause = [], 0.0
    predict_in_buckets(single, {"plot": ids}, batch_size=4, sort_by="plot", fixed_shapes=False)
    assert [shape[0] for _, shape in single.seen] == [4, 4, 1] and {name for name, _ in single.seen} == {"MainThread"}
    with pytest.raises(ConfigError, match="threads must be 1 or more"):
        OnnxCall(tiny_graph(), threads=0)
