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
