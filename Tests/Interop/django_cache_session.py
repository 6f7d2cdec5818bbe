"""One Django process using the cache session backend on RedisCache at a LOCATION URL.

Run as a subprocess (Django's settings can be configured once per process, and
test_django_sessions.py configures its own):

    python3 django_cache_session.py redis://127.0.0.1:PORT/1 create user=ann
    python3 django_cache_session.py redis://127.0.0.1:PORT/1 load <session key>

Prints one JSON line: {"key": ..., "data": {...}} (data null when the session is unknown).
"""

import json
import sys

import django
from django.conf import settings


def main(location, action, argument):
    settings.configure(
        SECRET_KEY="interop-secret",
        INSTALLED_APPS=["django.contrib.sessions"],
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
        SESSION_COOKIE_AGE=1800,
        CACHES={"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": location}},
        USE_TZ=True,
    )
    django.setup()
    from django.contrib.sessions.backends.cache import SessionStore

    if action == "create":
        name, value = argument.split("=", 1)
        session = SessionStore()
        session[name] = value
        session.create()
        print(json.dumps({"key": session.session_key, "data": dict(session.items())}))
    elif action == "load":
        session = SessionStore(session_key=argument)
        data = dict(session.items())
        # An unknown key loads as an empty session (and Django drops the key it was given).
        print(json.dumps({"key": argument, "data": data if session.exists(argument) else None}))
    else:
        raise SystemExit(f"unknown action {action}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
