"""What the numbers were measured on: CPU, BLAS libraries and threads, versions, load."""

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = ("handprop", "numpy", "torch", "jax", "jaxlib", "scikit-learn", "threadpoolctl")
ENV_PREFIXES = ("OPENBLAS_", "OMP_", "MKL_", "GOTO_", "BLIS_", "XLA_", "NVPL_")


def cpu_model() -> str:
    """The first "model name" in /proc/cpuinfo, with the number of logical CPUs."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return f"{platform.processor() or 'unknown'} ({os.cpu_count()} logical CPUs)"
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return f"{names[0] if names else 'unknown'} ({os.cpu_count()} logical CPUs)"


def blas_info() -> list[dict[str, Any]]:
    """threadpoolctl's view of every BLAS / OpenMP pool loaded in this process so far."""
    from threadpoolctl import threadpool_info

    keep = ("user_api", "internal_api", "version", "num_threads", "architecture", "filepath")
    return [{key: pool.get(key) for key in keep} for pool in threadpool_info()]


def describe_pool(pool: dict[str, Any]) -> str:
    return (
        f"{pool['user_api']}: {pool['internal_api']} {pool['version']}, {pool['num_threads']} "
        f"threads, {pool['architecture']} ({Path(str(pool['filepath'])).name})"
    )


def blas_threads() -> int:
    """Threads of numpy's BLAS (the one every numpy contender runs on)."""
    for pool in blas_info():
        if pool["user_api"] == "blas" and "numpy" in str(pool["filepath"]):
            return int(pool["num_threads"])
    return os.cpu_count() or 1


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def git_revision() -> str:
    """The commit of the working tree, "+dirty" if src/ has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head or 'unknown'}{'+dirty' if dirty else ''}"


def environment() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "platform": platform.platform(),
        "versions": versions(),
        "blas": blas_info(),
        "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)},
        "git": git_revision(),
        "loadavg": list(os.getloadavg()),
    }
