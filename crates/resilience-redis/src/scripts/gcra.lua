-- GCRA: one decision for one key, atomically, on the Redis server's clock.
--
-- KEYS[1]  the key's theoretical arrival time (TAT), a string holding microseconds since the
--          Unix epoch on the server's clock; absent means a whole budget.
-- ARGV[1]  emission interval in microseconds (period / count, rounded up)
-- ARGV[2]  burst: requests allowed at once
--
-- Returns {allowed (1/0), remaining, reset_after_us, retry_after_us}.
--
-- Every number stays below 2^53, so Lua's doubles hold them exactly; they are written back
-- with %.0f because Lua's own number-to-string conversion keeps only 14 digits.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local width = interval * burst

local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
local next_tat = tat + interval
local ahead = next_tat - now
if ahead <= width then
  -- The key expires when its budget is whole again: from then on it carries no information.
  redis.call('SET', KEYS[1], string.format('%.0f', next_tat),
    'PX', string.format('%.0f', math.ceil(ahead / 1000)))
  local remaining = math.floor((width - ahead) / interval)
  if remaining > burst - 1 then
    remaining = burst - 1
  end
  return {1, remaining, ahead, 0}
end
-- Denied: nothing is written, so a client that keeps retrying gets in as soon as it fits.
return {0, 0, tat - now, ahead - width}
