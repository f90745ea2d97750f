"""Shared fixtures: PyTorch for the comparison tests, which must run in CI."""

import os
from types import ModuleType

import pytest

# scikit-learn's estimator checks include array-API checks that skip unless SciPy's
# array-API support is switched on before SciPy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")


@pytest.fixture(scope="session")
def torch() -> ModuleType:
    """The torch module, in float64. Skips locally when torch is absent; under CI=true fails."""
    try:
        import torch
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but torch is not installed: the PyTorch comparisons must run")
        pytest.skip("torch is not installed (pip install torch==2.13.0)")
    return torch
