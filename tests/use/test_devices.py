"""load_run(device=...) and --device of predict/evaluate: the device names, and a device that does
not exist here as a ConfigError (one line and exit code 2 in the CLI). On a GPU machine the GPU
half runs in tests/torch/test_runtime_gpu.py."""
import numpy as np
import pytest

import encoders
from encoders.use import cli
from encoders.use.devices import parse_device, resolve_device
from encoders.errors import ConfigError
from tests.helpers import text_run, text_run_data


@pytest.mark.parametrize("name,want", [("auto", ("auto", None)), ("cpu", ("cpu", None)), ("cuda", ("cuda", None)),
                                       ("cuda:3", ("cuda", 3)), (" CUDA:0 ", ("cuda", 0))])
def test_device_names(name, want):
    assert parse_device(name) == want


@pytest.mark.parametrize("bad", ["tpu", "gpu", "cuda:x", "cpu:1", "cuda:", "", 0, None])
def test_unknown_device_names_are_config_errors(bad):
    with pytest.raises(ConfigError, match=r"device must be one of auto, cpu, cuda or cuda:N, got"):
        parse_device(bad)


def _gpus(backend):
    from encoders.use.devices import _gpu_count

    return _gpu_count(backend)


@pytest.mark.parametrize("backend", ["torch", "tf"])
def test_load_run_on_a_device(tmp_path_factory, backend):
    run_dir = text_run(tmp_path_factory, backend)
    cpu = encoders.load_run(run_dir, device="cpu")
    assert cpu.device == ("cpu" if backend == "torch" else "/CPU:0")
    auto = encoders.load_run(run_dir)  # auto: the GPU when there is one
    gpus = _gpus(backend)
    assert auto.device == (("cuda:0" if backend == "torch" else "/GPU:0") if gpus else cpu.device)
    texts = ["some prose here", "def f(x): return x", ""]
    np.testing.assert_allclose(auto.predict_proba(texts), cpu.predict_proba(texts), atol=1e-3 if gpus else 0)
    if backend == "torch":
        assert next(cpu.model.parameters()).device.type == "cpu"
    missing = "cuda" if not gpus else f"cuda:{gpus}"
    with pytest.raises(ConfigError, match=rf"device='{missing}': .* sees .* use device=cpu or auto"):
        encoders.load_run(run_dir, device=missing)
    with pytest.raises(ConfigError, match="device must be one of"):
        encoders.load_run(run_dir, device="tpu")


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("device", ["tpu", "cuda:7"])
def test_cli_device_that_does_not_exist_is_one_line_and_exit_2(tmp_path_factory, capsys, command, device):
    if device == "cuda:7" and _gpus("torch") > 7:
        pytest.skip("this machine has a cuda:7")
    run_dir = text_run(tmp_path_factory, "torch")
    code = cli.main([command, run_dir, text_run_data(run_dir), "--device", device, "--output",
                     str(tmp_path_factory.mktemp("out") / ("p.csv" if command == "predict" else "e.json"))])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: ConfigError: device") and device in err


def test_cli_device_cpu_predicts(tmp_path_factory, capsys):
    run_dir = text_run(tmp_path_factory, "torch")
    out = tmp_path_factory.mktemp("out") / "p.csv"
    assert cli.main(["predict", run_dir, text_run_data(run_dir), "--device", "cpu", "--output", str(out)]) == 0
    assert out.read_text().count("\n") > 100


def test_resolve_device_without_a_gpu():
    if _gpus("torch"):
        pytest.skip("this machine has a GPU")
    assert resolve_device("torch", "auto") == "cpu"
    with pytest.raises(ConfigError, match="torch sees no GPU here"):
        resolve_device("torch", "cuda:0")
