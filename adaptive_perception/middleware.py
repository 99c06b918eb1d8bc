"""Middleware settings every process of a pipeline gets: the large-data Fast DDS profile.

Best-effort camera frames of a few hundred KB and more are mostly lost between
processes with Fast DDS's default transports; the shipped profile
(``config/fastdds_large_data.xml``) fixes that, but only when publisher and
subscriber both use it. So both launchers give it to every process they start,
through the variable Fast DDS reads. A profile the user already set wins.
"""

import os
from pathlib import Path

from adaptive_perception.paths import fastdds_profile_file

PROFILE_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'


def middleware_env(environ=None, profile: str | Path | None = None) -> dict:
    """Variables to add to a node's environment: ``{}`` when the user set their own.

    ``profile``: the Fast DDS XML file to use ('' = none; None = the shipped one).
    """
    environ = os.environ if environ is None else environ
    if environ.get(PROFILE_VARIABLE):
        return {}
    path = fastdds_profile_file() if profile is None else profile
    return {PROFILE_VARIABLE: str(path)} if str(path) else {}
