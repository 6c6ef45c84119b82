"""A model folder that needs its own Python code is refused without --trust-remote-code; stdin is never read."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from dogiqa.errors import RemoteCodeError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def custom_code_model(tmp_path):
    """A folder whose config names an unknown model type and points to Python code that leaves a marker."""
    folder = tmp_path / "custom-model"
    folder.mkdir()
    marker = tmp_path / "CODE_RAN"
    (folder / "config.json").write_text(
        json.dumps(
            {
                "model_type": "dogiqa_unknown_type",
                "auto_map": {
                    "AutoConfig": "evil.EvilConfig",
                    "AutoModelForImageTextToText": "evil.EvilModel",
                    "AutoProcessor": "evil.EvilProcessor",
                },
            }
        )
    )
    (folder / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import PretrainedConfig\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'dogiqa_unknown_type'\n"
    )
    image = tmp_path / "img.png"
    Image.new("RGB", (16, 16), (100, 50, 20)).save(image)
    return folder, marker, image


def _score(folder, image, stdin) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src"), "NO_COLOR": "1"}
    env.pop("TRANSFORMERS_TRUST_REMOTE_CODE", None)
    cmd = [sys.executable, "-m", "dogiqa.cli", "score", str(image), "--model", str(folder), "-q"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, **stdin)


@pytest.mark.parametrize("stdin", ["closed", "yes"])
def test_remote_code_never_runs_without_the_flag(custom_code_model, stdin):
    folder, marker, image = custom_code_model
    if stdin == "closed":
        read_end, write_end = os.pipe()
        os.close(write_end)  # stdin at EOF from the start
        with os.fdopen(read_end) as closed:
            proc = _score(folder, image, {"stdin": closed})
    else:
        proc = _score(folder, image, {"input": "y\ny\nyes\n"})  # a prompt answered "y" would run the code
    output = proc.stdout + proc.stderr
    assert not marker.exists(), "the model folder's Python code ran"
    assert proc.returncode == 2, output
    assert "--trust-remote-code" in " ".join(output.split())
    assert "Do you wish to run the custom code" not in output


def test_backend_raises_remote_code_error_in_process(custom_code_model):
    from dogiqa.backends.transformers_vlm import TransformersVLM

    folder, marker, _ = custom_code_model
    with pytest.raises(RemoteCodeError, match="--trust-remote-code"):
        TransformersVLM(str(folder))
    assert not marker.exists()
