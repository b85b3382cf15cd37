"""Rate limits: token buckets a tool call must pass before it costs anything.

    rate.py      ``30/minute``: the written form of a rate, parsed and described
    config.py    the manifest's ``rate_limits:`` block (pydantic, validated at load)
    buckets.py   which buckets apply to a tool: per tool glob, per module, overall
    store.py     the ``BucketStore`` interface: take one token from every bucket, or none
    local.py     the in-process store (monotonic clock, the default)
    shared.py    the Redis store, shared by every process of one agent type (one Lua script)
    script.py    that Lua script
    plan.py      the shared store's URL as a broker credential
    limiter.py   ``RateLimiter``: a call's buckets, the refusal, the pipeline's view
    check.py     ``creds check``: the shared store is ok only after a PING through its URL
    errors.py    ``RateLimited`` and ``LimiterUnavailable``

Nothing here imports the Redis client unless the manifest sets ``rate_limits.shared``.
"""
