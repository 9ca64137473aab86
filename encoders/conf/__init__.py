"""Encoder configs shipped with the package (``pkg://encoders.conf``)."""
