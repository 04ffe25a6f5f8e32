-- Shared circuit breaker: a probe finished; give its lease back and count its outcome.
--
-- KEYS[1]  the state hash
-- KEYS[2]  the probe leases
-- ARGV[1]  the lease id
-- ARGV[2]  the version the probe was granted in
-- ARGV[3]  'success', 'failure' or 'ignored'
-- ARGV[4]  successful probes that close the circuit (success_threshold)
-- ARGV[5]  open duration in microseconds, for a failed probe
-- ARGV[6]  TTL of the state in milliseconds
--
-- Outcomes count only in the half-open period they were granted in (compare-and-set on the
-- version): a late probe result never closes or reopens a newer period.
-- Returns {changed (1/0), state, version, open_remaining_us}.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
redis.call('ZREM', KEYS[2], ARGV[1])
local fields = redis.call('HMGET', KEYS[1], 'state', 'version', 'open_until', 'successes')
local state = fields[1] or 'closed'
local version = tonumber(fields[2]) or 0
local remaining = 0
if state == 'open' then
  remaining = math.max(0, (tonumber(fields[3]) or 0) - now)
end
if state ~= 'half_open' or version ~= tonumber(ARGV[2]) or ARGV[3] == 'ignored' then
  return {0, state, version, remaining}
end
if ARGV[3] == 'success' then
  local successes = redis.call('HINCRBY', KEYS[1], 'successes', 1)
  if successes < tonumber(ARGV[4]) then
    return {0, state, version, 0}
  end
  state = 'closed'
  remaining = 0
  redis.call('HSET', KEYS[1], 'state', state, 'version', version + 1, 'open_until', 0, 'successes', 0)
else
  state = 'open'
  remaining = tonumber(ARGV[5])
  redis.call('HSET', KEYS[1], 'state', state, 'version', version + 1,
    'open_until', string.format('%.0f', now + remaining), 'successes', 0)
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('DEL', KEYS[2])
return {1, state, version + 1, remaining}
