-- Shared circuit breaker: close it (after breaker_common.lua).
--
-- KEYS[1]  the state hash
-- KEYS[2]  the probe leases
-- KEYS[3]  the trip votes
-- ARGV[1]  the epoch the caller saw ('' with ARGV[2] = -1 for an unconditional reset)
-- ARGV[2]  the version the caller saw when its own breaker closed; -1 for an unconditional
--          reset (an operator's)
-- ARGV[3]  TTL of the state in milliseconds
-- ARGV[4]  a fresh epoch
--
-- Compare-and-set: a conditional close applies only if nobody changed the state since the
-- caller's breaker closed (an instance whose probes succeeded must not close a circuit
-- another instance has reopened meanwhile: bug B6).
local expected = tonumber(ARGV[2])
if state == 'closed' or (expected >= 0 and (expected ~= version or ARGV[1] ~= epoch)) then
  return answer(0)
end
claim_epoch()
state = 'closed'
open_until = 0
version = version + 1
redis.call('HSET', KEYS[1], 'state', 'closed', 'version', version, 'open_until', 0, 'successes', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[2], KEYS[3])
announce()
return answer(1)
