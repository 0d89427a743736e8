import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))


def _target_dir():
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT, check=True, capture_output=True, text=True
    )
    return Path(json.loads(meta.stdout)["target_directory"])


@pytest.fixture(scope="session")
def anycast6_bin():
    """The `anycast6` binary, built (debug) from this checkout."""
    subprocess.run(["cargo", "build", "-q", "-p", "anycast6", "--bin", "anycast6"], cwd=ROOT, check=True)
    return _target_dir() / "debug" / "anycast6"


@pytest.fixture(scope="session")
def emit_corpus_bin():
    """The example that emits packets with anycast6-wire's `emit` functions."""
    subprocess.run(["cargo", "build", "-q", "-p", "anycast6", "--example", "emit_corpus"], cwd=ROOT, check=True)
    return _target_dir() / "debug" / "examples" / "emit_corpus"
