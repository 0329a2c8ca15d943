"""Stands for a script that completes at once in the API tests with a runner stand-in."""


def run() -> None:
    pass
