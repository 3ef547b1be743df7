"""A webhook: the notification as a JSON POST, signed like GitHub's webhooks.

Body: `{"key", "state", "branch", "subject", "body", "xsas", "url"}`. With a secret, the
header `X-Xsabot-Signature-256: sha256=<hex HMAC-SHA256 of the body>`; `X-Xsabot-Delivery`
carries the key, the same on a repeat, for the receiver to drop it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request

from bot.config import WebhookNotify
from bot.core.notify import Message
from bot.forges.credentials import read_secret
from bot.notify import NotifyFailed
from bot.redact import redact

SIGNATURE_HEADER = "X-Xsabot-Signature-256"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def payload(message: Message) -> bytes:
    data = {
        "key": message.key,
        "state": message.kind,
        "branch": message.branch,
        "subject": redact(message.subject),
        "body": redact(message.body),
        "xsas": list(message.xsas),
        "url": message.url,
    }
    return json.dumps(data, sort_keys=True).encode()


class WebhookChannel:
    name = "webhook"

    def __init__(self, config: WebhookNotify) -> None:
        self.config = config
        self.secret = read_secret("notify.webhook.secret", config.secret_env, config.secret_file)

    def send(self, message: Message) -> None:
        body = payload(message)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "xsabot",
            "X-Xsabot-Delivery": message.key,
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        request = urllib.request.Request(self.config.url, data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
                response.read()
        except (OSError, ValueError) as exc:  # HTTPError and URLError are OSErrors
            raise NotifyFailed(f"webhook {self.config.url}: {redact(str(exc))}") from None
