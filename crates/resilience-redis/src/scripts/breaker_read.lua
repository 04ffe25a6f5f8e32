-- Shared circuit breaker: read the state.
--
-- KEYS[1]  the state hash: state, version, open_until (microseconds, server clock)
--
-- Returns {0, state, version, open_remaining_us}; a missing hash reads as closed, version 0.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local fields = redis.call('HMGET', KEYS[1], 'state', 'version', 'open_until')
local state = fields[1] or 'closed'
local version = tonumber(fields[2]) or 0
local remaining = 0
if state == 'open' then
  remaining = math.max(0, (tonumber(fields[3]) or 0) - now)
end
return {0, state, version, remaining}
