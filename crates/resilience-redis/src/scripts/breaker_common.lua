-- Shared circuit breaker: the opening of every breaker script (prepended to each one).
--
-- KEYS[1]  the state hash: state, version, open_until (microseconds, server clock),
--          successes, epoch
--
-- The epoch names one lifetime of the record: it is set once, by the first write to a hash
-- that has none, and never changed by a transition. A record that Redis lost (a restart
-- without persistence, FLUSHALL, expiry, a failover to a replica that had not seen it) comes
-- back with another epoch, so an instance comparing (epoch, version) can tell "older" from
-- "a new lifetime that restarted its versions at 1". Writing scripts take a fresh epoch as
-- their last argument, used only if the record has none.
--
-- Every script answers {changed (1/0), state, version, open_remaining_us, epoch}; a missing
-- record reads as closed, version 0, epoch ''.
--
-- Every transition is announced on the pub/sub channel named like the state key (channels
-- and keys are separate namespaces), in the same atomic step as the write, so the other
-- instances read the new state at once instead of at their next poll. The message is only a
-- nudge (epoch:version); they read the state through the usual compare-and-set path.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local fields = redis.call('HMGET', KEYS[1], 'state', 'version', 'open_until', 'epoch')
local state = fields[1] or 'closed'
local version = tonumber(fields[2]) or 0
local open_until = tonumber(fields[3]) or 0
local epoch = fields[4] or ''

local function answer(changed)
  local remaining = 0
  if state == 'open' then
    remaining = math.max(0, open_until - now)
  end
  return {changed, state, version, remaining, epoch}
end

-- Before a write: a record without an epoch starts its lifetime now.
local function claim_epoch()
  if epoch == '' then
    epoch = ARGV[#ARGV]
    redis.call('HSET', KEYS[1], 'epoch', epoch)
  end
end

-- After a transition: tell the other instances. On a cluster, PUBLISH reaches every node.
local function announce()
  redis.call('PUBLISH', KEYS[1], epoch .. ':' .. version)
end
