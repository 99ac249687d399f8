"""Shared fixtures: the small fixture catalog and a matcher over it with a cheap deterministic encoder."""

from __future__ import annotations

from pathlib import Path

import pytest

from matcher.catalog import load_catalog
from matcher.config import MatcherConfig

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE_CATALOG = FIXTURES / "catalog"
FIXTURE_REQUESTS = FIXTURES / "requests.jsonl"


@pytest.fixture(scope="session")
def fixture_catalog():
    return load_catalog(FIXTURE_CATALOG)


def fast_config(tmp: Path, **changes) -> MatcherConfig:
    """Hashing encoder + BM25 over the fixture catalog: no model weights, milliseconds per request."""
    base = MatcherConfig(
        name="fixture",
        catalog_dir=str(FIXTURE_CATALOG),
        index_dir=str(tmp / "index"),
        model_dir=str(tmp),
        retrievers=("hashing", "bm25"),
        retriever_weights=(1.0, 1.0),
    )
    return base.replace(**changes)


@pytest.fixture(scope="session")
def fast_matcher(tmp_path_factory):
    from matcher.engine import Matcher

    return Matcher.from_config(fast_config(tmp_path_factory.mktemp("fast")))


@pytest.fixture
def fast_config_file(tmp_path) -> Path:
    path = tmp_path / "fixture.toml"
    fast_config(tmp_path).save(path)
    return path


@pytest.fixture(scope="module")
def desk(fast_matcher, tmp_path_factory):
    """A triage desk over the fixture matcher, with its own feedback store per test module."""
    from matcher.serve.desk import Desk, DeskSettings

    tmp = tmp_path_factory.mktemp("desk")
    desk = Desk(
        fast_matcher, DeskSettings(feedback_db=tmp / "fb.sqlite3", work_dir=tmp, runs_dir=tmp / "runs")
    )
    yield desk
    desk.close()


@pytest.fixture(scope="module")
def client(desk):
    """The desk's app behind FastAPI's test client."""
    from fastapi.testclient import TestClient

    from matcher.serve.app import create_app

    with TestClient(create_app(desk)) as c:
        yield c
