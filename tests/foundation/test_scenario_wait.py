"""`devcluster.scenario.wait`: an API that is not served yet (a kubectl error such as a resource
type the apiserver does not know for a moment after its CRD changes) is waited out like a missing
answer, and a wait that times out says the last error it saw."""

from __future__ import annotations

import pytest
from helpers import wait_for

from devcluster.kubectl import KubectlError
from devcluster.scenario import wait
from devcluster.stack import StackError

NOT_SERVED = "Error from server (NotFound): the server could not find the requested resource"


def test_a_kubectl_error_is_waited_out():
    calls = []

    def check() -> bool:
        calls.append(1)
        if len(calls) < 3:
            raise KubectlError(["-n", "demo", "get", "dgd", "llm"], 1, NOT_SERVED)
        return True

    assert wait(check, 5, "the DGD", interval_s=0.01) is True
    assert len(calls) == 3


def test_a_wait_that_times_out_names_the_last_error():
    def check() -> bool:
        raise KubectlError(["-n", "demo", "get", "dgd", "llm"], 1, NOT_SERVED)

    with pytest.raises(StackError, match=r"waiting for the DGD \(last error: kubectl -n demo get dgd llm exited 1: "
                                         r"Error from server \(NotFound\)"):
        wait(check, 0.05, "the DGD", interval_s=0.01)


def test_a_falsy_answer_times_out_without_an_error_to_name():
    with pytest.raises(StackError, match=r"timed out after 0 s waiting for nothing$"):
        wait(lambda: None, 0.05, "nothing", interval_s=0.01)


def test_a_test_wait_that_times_out_says_what_its_explanation_saw():
    with pytest.raises(pytest.fail.Exception, match=r"waiting for the pod \(last: 0\)\nstatus: Pending"):
        wait_for(lambda: 0, timeout=0.05, interval=0.01, what="the pod", explain=lambda: "status: Pending")
    with pytest.raises(pytest.fail.Exception, match=r"no explanation: RuntimeError\('gone'\)"):
        wait_for(lambda: 0, timeout=0.05, interval=0.01, what="the pod",
                 explain=lambda: (_ for _ in ()).throw(RuntimeError("gone")))
