"""The one path of outgoing messages that matter (SPEC §8).

:mod:`~bot.delivery.outbox` records a Bot API call in the transaction of the change that causes
it; :mod:`~bot.delivery.sender` delivers recorded calls in the background: in order within a
stream (one chat, one ticket), the most urgent first, within Telegram's limits
(:mod:`~bot.delivery.limiter`), retrying network errors and 5xx, waiting out 429
``retry_after``, and across restarts. A delivery is leased before it is sent and marked sent in
the same commit that records what it produced, so two senders (two processes) never send it
twice. The one window left is a crash between Telegram's answer and that commit: then the lease
expires and the call is repeated (at least once beats lost).
"""
