"""Process-wide test settings only; shared helpers live in tests/helpers.py."""
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# tokenized files are cached; tests (and the train.py children they start) use a fresh cache
if "ENCODERS_CACHE" not in os.environ:
    import tempfile

    os.environ["ENCODERS_CACHE"] = tempfile.mkdtemp(prefix="encoders-cache-")


import signal  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _process_state_restored():
    """A test that trains in this process (``encoders.app.run``) sets process-wide state for the run:
    the environment (``KERAS_BACKEND``, the thread share's ``OMP_NUM_THREADS``) and torch's
    flush-denormal mode, and Ctrl-C's handler. Later tests, and the children they start, get the state as it was."""
    saved, ctrl_c = dict(os.environ), signal.getsignal(signal.SIGINT)
    yield
    if signal.getsignal(signal.SIGINT) is not ctrl_c and ctrl_c is not None:
        signal.signal(signal.SIGINT, ctrl_c)  # Lightning ignores Ctrl-C after an interrupted fit
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)
    if "torch" in sys.modules:
        sys.modules["torch"].set_flush_denormal(False)
