"""The Lua script the shared store runs: check every bucket, then take from all or from none.

It runs atomically in Redis, on Redis's clock (``TIME``), so neither a second process nor a skewed
process clock can slip a call between the check and the take. A bucket is a hash (``tokens``,
``at``) that expires once it would be full again, so an idle agent type leaves nothing behind.

    KEYS[i]                  bucket i
    ARGV[2i-1], ARGV[2i]     bucket i's capacity and refill (tokens per second)
    returns                  {0, "0"} when taken; {i, wait} when bucket i needs ``wait`` seconds
"""

from __future__ import annotations

from typing import Final

TAKE: Final = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local levels = {}
local worst, longest = 0, 0
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[2 * i - 1])
  local refill = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(state[1]) or capacity
  local at = tonumber(state[2]) or now
  if now > at then tokens = tokens + (now - at) * refill end
  if tokens > capacity then tokens = capacity end
  levels[i] = tokens
  if tokens < 1 then
    local wait = (1 - tokens) / refill
    if wait > longest then worst, longest = i, wait end
  end
end
if worst > 0 then return {worst, tostring(longest)} end
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[2 * i - 1])
  local refill = tonumber(ARGV[2 * i])
  redis.call('HSET', key, 'tokens', tostring(levels[i] - 1), 'at', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(capacity / refill * 1000) + 1000)
end
return {0, '0'}
"""
