"""``dogiqa serve``: an HTTP scoring service (FastAPI + uvicorn, the optional extra ``serve``).

One pipeline is loaded once, in the background; concurrent requests are batched together in one model thread.
"""

from dogiqa.serve.settings import DEFAULT_TOKEN_ENV, ServeSettings, check_exposure, is_loopback, token_from_env

__all__ = [
    "DEFAULT_TOKEN_ENV",
    "ServeSettings",
    "check_exposure",
    "is_loopback",
    "token_from_env",
    "create_app",
    "run_server",
]


def __getattr__(name: str):  # FastAPI/uvicorn only when the service is used
    if name == "create_app":
        from dogiqa.serve.app import create_app

        return create_app
    if name == "run_server":
        from dogiqa.serve.server import run_server

        return run_server
    raise AttributeError(name)
