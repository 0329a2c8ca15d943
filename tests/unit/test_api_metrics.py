"""How /metrics names the reason a procedure failed: one low-cardinality word."""

from oet.api.metrics import failure_reason


def event(history: dict[str, object]) -> dict[str, object]:
    return {"procedure": {"history": history}}


def test_the_backend_s_reason_word_is_used_when_it_has_one() -> None:
    assert failure_reason(event({"reason_code": "OOMKilled", "stacktrace": None})) == "OOMKilled"


def test_a_traceback_means_the_script_failed() -> None:
    assert failure_reason(event({"stacktrace": "Traceback ...", "reason": "x"})) == "ScriptFailed"


def test_a_script_that_raised_in_init_is_script_failed_on_every_backend() -> None:
    # The Kubernetes runner says InitFailed; the embedded backend's metric says ScriptFailed.
    init_failed = event({"reason_code": "InitFailed", "stacktrace": "Traceback ..."})
    assert failure_reason(init_failed) == "ScriptFailed"


def test_no_traceback_means_the_runner_failed() -> None:
    assert failure_reason(event({"stacktrace": None, "reason": "runner died"})) == "RunnerFailed"
    assert failure_reason({}) == "RunnerFailed"


def test_a_reason_that_is_not_one_short_word_is_not_used_as_a_label() -> None:
    long_sentence = event({"reason_code": "the runner died of something", "stacktrace": None})
    assert failure_reason(long_sentence) == "RunnerFailed"
    assert failure_reason(event({"reason_code": "X" * 41})) == "RunnerFailed"
