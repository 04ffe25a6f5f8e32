-- Shared circuit breaker: an instance's detector tripped (or an operator forced it open)
-- (after breaker_common.lua).
--
-- KEYS[1]  the state hash
-- KEYS[2]  the probe leases (sorted set, score = lease expiry in microseconds)
-- KEYS[3]  the trip votes (sorted set, member = instance, score = vote time)
-- ARGV[1]  open duration in microseconds
-- ARGV[2]  TTL of the state in milliseconds
-- ARGV[3]  1 to force open (only a reset closes it), 0 for a detector's trip
-- ARGV[4]  instances that must have tripped within ARGV[5] microseconds to open (quorum)
-- ARGV[6]  this instance's id (its vote)
-- ARGV[7]  a fresh epoch
--
-- Opens only from closed or half-open (or an open whose time is up): a circuit that is
-- already open keeps its opening time and version, so concurrent trips from many instances
-- make one transition, never a flurry of last-writer-wins overwrites (bug B6).
if ARGV[3] == '1' then
  if state == 'forced_open' then
    return answer(0)
  end
  state = 'forced_open'
else
  if state == 'forced_open' or (state == 'open' and now < open_until) then
    return answer(0)
  end
  local quorum = tonumber(ARGV[4])
  if quorum > 1 then
    redis.call('ZADD', KEYS[3], now, ARGV[6])
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', string.format('%.0f', now - tonumber(ARGV[5])))
    redis.call('PEXPIRE', KEYS[3], string.format('%.0f', math.ceil(tonumber(ARGV[5]) / 1000)))
    if redis.call('ZCARD', KEYS[3]) < quorum then
      return answer(0)
    end
  end
  state = 'open'
  open_until = now + tonumber(ARGV[1])
end
claim_epoch()
version = version + 1
redis.call('HSET', KEYS[1], 'state', state, 'version', version,
  'open_until', string.format('%.0f', open_until), 'successes', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2], KEYS[3])
announce()
return answer(1)
