"""Feedback on an alert: "false alarm" / "correct" links that teach the model the site.

- :mod:`vigil_feedback.links`: the signed link (canonical string, HMAC-SHA256, expiry)
  and its check; the alert Lambda signs with it, the feedback Lambda verifies.
- :mod:`vigil_feedback.secret`: the HMAC key from Secrets Manager, read once per cold start.
- :mod:`vigil_feedback.store`: the events table (features from an event's end message,
  the verdict) and the labelled training rows written from them.
- :mod:`vigil_feedback.handler`: the function URL's handler and its HTML pages.
"""
