-- Shared circuit breaker: ask for a half-open probe slot, across every instance (after
-- breaker_common.lua).
--
-- KEYS[1]  the state hash
-- KEYS[2]  the probe leases: member = lease id, score = lease expiry (microseconds)
-- ARGV[1]  the lease id (instance id and sequence)
-- ARGV[2]  lease length in microseconds: a lease whose holder died frees itself then
-- ARGV[3]  most probes at once (half_open_max_calls)
-- ARGV[4]  TTL of the state in milliseconds
-- ARGV[5]  a fresh epoch
--
-- An open circuit whose time is up becomes half-open here, once, for every instance.
-- Answers as breaker_common.lua, `changed` meaning "granted".
if state == 'open' then
  if now < open_until then
    return answer(0)
  end
  claim_epoch()
  state = 'half_open'
  version = version + 1
  redis.call('HSET', KEYS[1], 'state', state, 'version', version, 'successes', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('DEL', KEYS[2])
  announce()
end
if state ~= 'half_open' then
  return answer(0)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', now))
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  return answer(0)
end
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], string.format('%.0f', now + lease), ARGV[1])
redis.call('PEXPIRE', KEYS[2], string.format('%.0f', math.ceil(lease / 1000)))
return answer(1)
