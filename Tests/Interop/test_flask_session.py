"""Flask-Session (SESSION_TYPE=redis) on a real sessionfed node, driven by Flask's test client."""

import flask
import pytest
from flask import Flask, session
from flask_session import Session

COOKIE = "session"


@pytest.fixture(scope="module")
def store(node):
    client = node.redis(decode_responses=False)
    yield client
    client.close()


@pytest.fixture
def app(store):
    app = Flask("interop_flask")
    app.config.update(
        SECRET_KEY="interop-secret",
        SESSION_TYPE="redis",
        SESSION_REDIS=store,
        SESSION_PERMANENT=True,
        PERMANENT_SESSION_LIFETIME=1800,
        SESSION_USE_SIGNER=False,
        TESTING=True,
    )
    Session(app)

    @app.post("/login")
    def login():
        session["user"] = flask.request.form["user"]
        session["roles"] = ["reader"]
        return "ok"

    @app.get("/me")
    def me():
        return {"user": session.get("user"), "roles": session.get("roles")}

    @app.post("/elevate")
    def elevate():
        # Privilege change: new session id, same data (Flask-Session's regenerate()).
        app.session_interface.regenerate(session)
        session["roles"] = ["reader", "admin"]
        return "ok"

    @app.post("/logout")
    def logout():
        session.clear()
        return "ok"

    return app


def sid_of(client):
    cookie = client.get_cookie(COOKIE)
    return cookie.value if cookie is not None else None


def test_flask_session_story(app, store):
    client = app.test_client()

    # No session yet: nothing stored, no cookie.
    assert client.get("/me").json == {"user": None, "roles": None}
    assert sid_of(client) is None

    # Login stores the session under session:<sid> with the app's lifetime.
    assert client.post("/login", data={"user": "ann"}).status_code == 200
    first = sid_of(client)
    assert first
    assert store.exists(f"session:{first}") == 1
    assert 1790 <= store.ttl(f"session:{first}") <= 1800

    # A later request reads it back.
    assert client.get("/me").json == {"user": "ann", "roles": ["reader"]}

    # Regenerate: the old key is deleted, the data lives on under a new id.
    assert client.post("/elevate").status_code == 200
    second = sid_of(client)
    assert second and second != first
    assert store.exists(f"session:{first}") == 0
    assert store.exists(f"session:{second}") == 1
    assert client.get("/me").json == {"user": "ann", "roles": ["reader", "admin"]}

    # An old cookie no longer finds anything.
    stale = app.test_client()
    stale.set_cookie(COOKIE, first)
    assert stale.get("/me").json == {"user": None, "roles": None}

    # Logout: session.clear() deletes the key and the cookie.
    assert client.post("/logout").status_code == 200
    assert sid_of(client) is None
    assert store.exists(f"session:{second}") == 0
    assert store.get(f"session:{second}") is None
    assert client.get("/me").json == {"user": None, "roles": None}
