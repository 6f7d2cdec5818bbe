"""Django sessions (backends.cache on django.core.cache.backends.redis.RedisCache) on sessionfed."""

import pytest

import django
from django.conf import settings
from django.http import JsonResponse
from django.urls import path

CACHE_PREFIX = ":1:django.contrib.sessions.cache"


def visit(request):
    request.session["cart"] = [1, 2]
    return JsonResponse({"ok": True})


def login(request):
    # What django.contrib.auth.login() does: a new key for the same data, then the user.
    request.session.cycle_key()
    request.session["user"] = request.POST["user"]
    return JsonResponse({"ok": True})


def me(request):
    return JsonResponse({"user": request.session.get("user"), "cart": request.session.get("cart")})


def logout(request):
    request.session.flush()
    return JsonResponse({"ok": True})


urlpatterns = [
    path("visit", visit),
    path("login", login),
    path("me", me),
    path("logout", logout),
]


@pytest.fixture(scope="module")
def django_node(node):
    if settings.configured:
        pytest.fail("Django settings were configured elsewhere in this process")
    settings.configure(
        DEBUG=False,
        SECRET_KEY="interop-secret",
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=["django.contrib.sessions"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        ROOT_URLCONF=__name__,
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
        SESSION_COOKIE_AGE=1800,
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": f"redis://127.0.0.1:{node.port}/0",
            }
        },
        USE_TZ=True,
    )
    django.setup()
    yield node
    from django.core.cache import caches

    caches.close_all()


@pytest.fixture
def store(django_node):
    client = django_node.redis(decode_responses=False)
    yield client
    client.close()


def test_session_store_story(store):
    from django.contrib.sessions.backends.cache import SessionStore

    # Create: SET key value EX 1800 NX.
    created = SessionStore()
    created["user"] = "ann"
    created.create()
    first = created.session_key
    assert first
    assert store.exists(f"{CACHE_PREFIX}{first}") == 1
    assert 1790 <= store.ttl(f"{CACHE_PREFIX}{first}") <= 1800

    # Load in a later request.
    loaded = SessionStore(session_key=first)
    assert loaded["user"] == "ann"
    assert SessionStore().exists(first) is True

    # Regenerate: cycle_key() keeps the data under a new key, deletes the old one.
    loaded.cycle_key()
    second = loaded.session_key
    assert second != first
    assert store.exists(f"{CACHE_PREFIX}{first}") == 0
    assert SessionStore(session_key=second)["user"] == "ann"
    assert SessionStore(session_key=first).get("user") is None

    # Logout: flush() deletes the session.
    loaded.flush()
    assert loaded.session_key is None
    assert store.exists(f"{CACHE_PREFIX}{second}") == 0
    assert SessionStore().exists(second) is False


def test_test_client_story(store):
    from django.test import Client

    client = Client()
    assert client.get("/me").json() == {"user": None, "cart": None}

    assert client.get("/visit").status_code == 200
    anonymous = client.cookies["sessionid"].value
    assert store.exists(f"{CACHE_PREFIX}{anonymous}") == 1

    assert client.post("/login", {"user": "ann"}).status_code == 200
    logged_in = client.cookies["sessionid"].value
    assert logged_in != anonymous
    assert store.exists(f"{CACHE_PREFIX}{anonymous}") == 0
    assert store.exists(f"{CACHE_PREFIX}{logged_in}") == 1
    assert client.get("/me").json() == {"user": "ann", "cart": [1, 2]}

    assert client.post("/logout").status_code == 200
    assert store.exists(f"{CACHE_PREFIX}{logged_in}") == 0
    assert client.get("/me").json() == {"user": None, "cart": None}
    assert store.keys(f"{CACHE_PREFIX}*") == []
