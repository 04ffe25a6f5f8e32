-- Shared circuit breaker: ask for a half-open probe slot, across every instance.
--
-- KEYS[1]  the state hash
-- KEYS[2]  the probe leases: member = lease id, score = lease expiry (microseconds)
-- ARGV[1]  the lease id (instance id and sequence)
-- ARGV[2]  lease length in microseconds: a lease whose holder died frees itself then
-- ARGV[3]  most probes at once (half_open_max_calls)
-- ARGV[4]  TTL of the state in milliseconds
--
-- An open circuit whose time is up becomes half-open here, once, for every instance.
-- Returns {granted (1/0), state, version, open_remaining_us}.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local fields = redis.call('HMGET', KEYS[1], 'state', 'version', 'open_until')
local state = fields[1] or 'closed'
local version = tonumber(fields[2]) or 0
local open_until = tonumber(fields[3]) or 0

if state == 'open' then
  if now < open_until then
    return {0, state, version, open_until - now}
  end
  state = 'half_open'
  version = version + 1
  redis.call('HSET', KEYS[1], 'state', state, 'version', version, 'successes', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('DEL', KEYS[2])
end
if state ~= 'half_open' then
  return {0, state, version, 0}
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', now))
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  return {0, state, version, 0}
end
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], string.format('%.0f', now + lease), ARGV[1])
redis.call('PEXPIRE', KEYS[2], string.format('%.0f', math.ceil(lease / 1000)))
return {1, state, version, 0}
