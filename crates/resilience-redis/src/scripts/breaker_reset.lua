-- Shared circuit breaker: close it.
--
-- KEYS[1]  the state hash
-- KEYS[2]  the probe leases
-- KEYS[3]  the trip votes
-- ARGV[1]  the version the caller saw; -1 for an unconditional reset (an operator's)
-- ARGV[2]  TTL of the state in milliseconds
--
-- Compare-and-set: a conditional close applies only if nobody changed the state since the
-- caller saw it (an instance whose probes succeeded must not close a circuit another
-- instance has reopened meanwhile: bug B6).
-- Returns {changed (1/0), state, version, open_remaining_us}.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local fields = redis.call('HMGET', KEYS[1], 'state', 'version', 'open_until')
local state = fields[1] or 'closed'
local version = tonumber(fields[2]) or 0
local expected = tonumber(ARGV[1])
if state == 'closed' or (expected >= 0 and expected ~= version) then
  local remaining = 0
  if state == 'open' then
    remaining = math.max(0, (tonumber(fields[3]) or 0) - now)
  end
  return {0, state, version, remaining}
end
version = version + 1
redis.call('HSET', KEYS[1], 'state', 'closed', 'version', version, 'open_until', 0, 'successes', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2], KEYS[3])
return {1, 'closed', version, 0}
