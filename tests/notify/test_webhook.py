"""The run-end notification client against a local receiver."""

from __future__ import annotations

import pytest

from deploy_manager.notify.http import DeliveryFailed, DeliveryUnavailable
from deploy_manager.notify.webhook import WebhookNotifier
from deploy_manager.retry import RetryPolicy
from tests.notifylib import WebhookReceiver

FAST = RetryPolicy(attempts=2, initial=0.01, maximum=0.02)


def test_the_body_arrives_as_json() -> None:
    with WebhookReceiver() as hook:
        WebhookNotifier(hook.hook_url, policy=FAST).post({"text": "run 3 failed", "status": "failed"})
        assert hook.bodies() == [{"text": "run 3 failed", "status": "failed"}]


def test_errors_never_name_the_url_which_is_the_secret() -> None:
    with WebhookReceiver() as hook:
        wrong = hook.url + "/services/T000/B000/wrong-secret"
        with pytest.raises(DeliveryFailed) as info:
            WebhookNotifier(wrong, policy=FAST).post({"text": "x"})
        assert str(info.value) == "webhook answered 404: no such hook"
        hook.fail_with = 503
        with pytest.raises(DeliveryUnavailable) as unavailable:
            WebhookNotifier(hook.hook_url, policy=FAST).post({"text": "x"})
        assert "secretpart" not in str(unavailable.value) and hook.requests == 1 + FAST.attempts
