"""The model loop's steps, one Lambda each (state machine: ``infra/model_loop.py``).

evaluate -> gate -> register (-> wait for approval) -> component -> canary -> check (Wait
loop) -> promote or roll back. The work is in pure functions taking boto3 clients; the
Lambda-shaped shells (Powertools logging, environment) are in :mod:`vigil_loop.handlers`.
"""
