"""Puts the package's config groups (``encoder=lstm|bilstm|gru|bigru``) on every Hydra app's search path."""
from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class EncodersSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="encoders", path="pkg://encoders.conf")
