import pytest


@pytest.fixture
def no_sparse(monkeypatch):
    """Keep the C backend's sparse storage (backends/c/sparse_weights.py) out of the way in tests about
    other kernels: for tiny or zero-rich weights sparse int8 values can be smaller than the storage the
    test is about, and the backend would rightly pick them."""
    from edgec.backends.c import sparse_weights
    monkeypatch.setattr(sparse_weights, "conv_sparse_call", lambda *a, **k: None)
    monkeypatch.setattr(sparse_weights, "fc_sparse_call", lambda *a, **k: None)
