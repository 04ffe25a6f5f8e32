-- Shared circuit breaker: start a new lifetime of a record that went back in time (after
-- breaker_common.lua).
--
-- KEYS[1]  the state hash
-- ARGV[1]  the epoch the caller read
-- ARGV[2]  the version the caller read, lower than one it had seen before in that epoch:
--          Redis lost the newer writes (a failover to a lagging replica)
-- ARGV[3]  TTL of the state in milliseconds
-- ARGV[4]  the new epoch
--
-- Compare-and-set: only the record the caller saw is renewed, so a stale read changes
-- nothing. With a new epoch, every instance adopts the record as it is now, instead of
-- mistaking a version it has seen for the same state.
if fields[1] == false or epoch ~= ARGV[1] or version ~= tonumber(ARGV[2]) then
  return answer(0)
end
epoch = ARGV[4]
redis.call('HSET', KEYS[1], 'epoch', epoch)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
announce()
return answer(1)
