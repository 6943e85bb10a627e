"""The serverless deployment's fixtures: moto (one server per session, reset per test), an ECR
proxy that pages and reports scan states like real ECR, a webhook receiver, and a
:class:`tests.support.lambdas.Deployment` of the functions on them."""

from __future__ import annotations

import pytest


@pytest.fixture
def deploy(moto, proxy, receiver, monkeypatch, tmp_path):
    from tests.support.lambdas import Deployment

    made = []

    def make(watch, **kw):
        kw.setdefault("hook_url", receiver.url + "/hook")
        d = Deployment(moto.url, monkeypatch, tmp_path, ecr_url=proxy.url, watch=watch, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()
