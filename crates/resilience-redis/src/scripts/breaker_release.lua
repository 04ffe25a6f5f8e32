-- Shared circuit breaker: a probe finished; give its lease back and count its outcome
-- (after breaker_common.lua).
--
-- KEYS[1]  the state hash
-- KEYS[2]  the probe leases
-- ARGV[1]  the lease id
-- ARGV[2]  the epoch the probe was granted in
-- ARGV[3]  the version the probe was granted in
-- ARGV[4]  'success', 'failure' or 'ignored'
-- ARGV[5]  successful probes that close the circuit (success_threshold)
-- ARGV[6]  open duration in microseconds, for a failed probe
-- ARGV[7]  TTL of the state in milliseconds
-- ARGV[8]  a fresh epoch
--
-- Outcomes count only in the half-open period they were granted in (compare-and-set on the
-- epoch and version): a late probe result never closes or reopens a newer period.
redis.call('ZREM', KEYS[2], ARGV[1])
if state ~= 'half_open' or epoch ~= ARGV[2] or version ~= tonumber(ARGV[3])
    or ARGV[4] == 'ignored' then
  return answer(0)
end
if ARGV[4] == 'success' then
  local successes = redis.call('HINCRBY', KEYS[1], 'successes', 1)
  if successes < tonumber(ARGV[5]) then
    return answer(0)
  end
  state = 'closed'
  open_until = 0
else
  state = 'open'
  open_until = now + tonumber(ARGV[6])
end
version = version + 1
redis.call('HSET', KEYS[1], 'state', state, 'version', version,
  'open_until', string.format('%.0f', open_until), 'successes', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('DEL', KEYS[2])
announce()
return answer(1)
