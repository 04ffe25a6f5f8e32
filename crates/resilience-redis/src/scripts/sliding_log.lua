-- Sliding-window log: one decision for one key, atomically, on the Redis server's clock.
--
-- KEYS[1]  a sorted set of the requests allowed in the last window: score = the request's
--          time in microseconds since the Unix epoch, member = that time and a suffix unique
--          to the request, so requests in the same microsecond never collapse (bug B14).
-- ARGV[1]  window in microseconds (period * burst / count, rounded up)
-- ARGV[2]  limit: requests allowed in any window
-- ARGV[3]  the request's unique suffix (the limiter instance's random id and a sequence)
--
-- Returns {allowed (1/0), remaining, reset_after_us, retry_after_us}.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])

-- Keep the log ordered even if the server clock stepped back.
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if newest[2] and tonumber(newest[2]) > now then
  now = tonumber(newest[2])
end

-- An entry at `t` counts while t + window > now.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - window))
local held = redis.call('ZCARD', KEYS[1])
if held < limit then
  local at = string.format('%.0f', now)
  redis.call('ZADD', KEYS[1], at, at .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil(window / 1000)))
  return {1, limit - held - 1, window, 0}
end
-- Denied requests are not recorded, so a persistent client is never locked out (bug B14).
-- The request fits once the entry `limit` places from the newest slides out.
local oldest = redis.call('ZRANGE', KEYS[1], held - limit, held - limit, 'WITHSCORES')
newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
return {0, 0, tonumber(newest[2]) + window - now, tonumber(oldest[2]) + window - now}
