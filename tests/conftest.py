"""Test-wide settings: a private request cache, few threads (CI has 2 cores), offline hubs."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    os.environ["PAPERLAB_CACHE"] = str(tmp_path_factory.mktemp("cache") / "requests.sqlite")
    yield
