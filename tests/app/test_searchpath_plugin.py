"""Another Hydra app gets `encoder=bilstm` etc. from the package through the search-path plugin."""
import os
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import ROOT

APP = textwrap.dedent('''
    import hydra
    from omegaconf import OmegaConf

    @hydra.main(version_base="1.3", config_path="conf", config_name="config")
    def main(cfg):
        print("ENCODER", OmegaConf.to_container(cfg.encoder, resolve=True))

    if __name__ == "__main__":
        main()
''')


@pytest.mark.parametrize("choice,cell,bi", [(None, "lstm", True), ("gru", "gru", False), ("bigru", "gru", True)])
def test_other_app_composes_packaged_encoder_configs(tmp_path, choice, cell, bi):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("defaults:\n  - encoder: bilstm\n  - _self_\n")
    (tmp_path / "my_app.py").write_text(APP)
    args = [sys.executable, "my_app.py", "hydra.run.dir=out"] + ([f"encoder={choice}"] if choice else [])
    # the app lives outside the repo; the package (and its plugin) come from the import path only
    out = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(l for l in out.stdout.splitlines() if l.startswith("ENCODER"))
    assert f"'cell': '{cell}'" in line and f"'bidirectional': {bi}" in line


def test_plugin_is_discovered_by_hydra():
    code = ("from hydra.core.plugins import Plugins\n"
            "from hydra.plugins.search_path_plugin import SearchPathPlugin\n"
            "print([p.__name__ for p in Plugins.instance().discover(SearchPathPlugin)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=ROOT), cwd="/")
    assert "EncodersSearchPathPlugin" in out.stdout, out.stderr[-2000:]
