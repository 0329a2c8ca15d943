"""Stands for an observing script in the API tests with a runner stand-in (never run)."""


def run() -> None:
    pass
