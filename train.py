"""Train a padding-correct sequence encoder: ``python train.py encoder=bilstm backend=torch``.

Hydra composes ``configs/train.yaml``; everything else lives in the ``encoders`` library.
"""
import logging
import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from encoders.config import register_configs

register_configs()
log = logging.getLogger("train")


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float:
    from encoders.app import EncodersError, run
    from encoders.errors import exit_line

    hc = HydraConfig.get()
    try:
        metrics = run(cfg, hc.runtime.output_dir, hc.runtime.choices.get("encoder"))
    except (EncodersError, OSError) as e:  # the user's to fix: the message, not a traceback (as the CLI)
        from encoders.io import storage_error

        # a full disk in a framework's own write (Keras checkpoints, logs): one line too
        ended = exit_line(storage_error(e, where=f"the run dir {hc.runtime.output_dir}")
                          if isinstance(e, OSError) else e)
        if ended is None:
            raise
        log.error("%s", ended[0])
        sys.exit(ended[1])
    except KeyboardInterrupt:  # Ctrl-C: where the run can be continued from, not a traceback
        from encoders.errors import INTERRUPTED
        from encoders.run.resume import resume_hint

        print(resume_hint(hc.runtime.output_dir, cfg.backend.name, list(hc.overrides.task),
                          os.path.relpath(sys.argv[0])), file=sys.stderr, flush=True)
        sys.exit(INTERRUPTED)
    if metrics:
        from encoders.tasks import summary

        log.info("%s", summary(metrics))  # val_acc/val_loss, or the task's own figures
        print(f"run dir: {hc.runtime.output_dir}")
    from encoders.run.recipe import objective

    # what a Hydra sweeper optimises: the best epoch's value of the task's monitored metric
    return objective(metrics, cfg.task.name) if metrics else None


if __name__ == "__main__":
    from encoders.app import hydra_errors_as_one_line
    from encoders.use.cli import exit_process

    try:
        hydra_errors_as_one_line(main)  # Hydra's own config errors too: one line, exit code 2
    except SystemExit as e:  # exit codes 2 and 130 too skip the teardown, where h5py can crash after a full disk
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
        exit_process(e.code if e.code is None or isinstance(e.code, int) else 1)
    exit_process(0)  # everything is written: skip the interpreter's slow teardown of torch and Lightning
