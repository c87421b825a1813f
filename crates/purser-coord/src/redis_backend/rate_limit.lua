-- GCRA: one attempt against a rate limit. This mirrors `gcra::attempt` in gcra.rs line for
-- line; change both together. Times are microseconds on Redis's clock (TIME), so every Purser
-- instance agrees. Lua numbers are doubles: exact for integers below 2^53 (about 285 years of
-- microseconds since 1970 plus a window of at most a year), so the arithmetic is exact.
--
-- KEYS[1]  the rate-limit key; holds the theoretical arrival time (TAT) while it is ahead
-- ARGV[1]  the emission interval T in microseconds (window / limit, at least 1)
-- ARGV[2]  the limit (the burst)
-- returns  {allowed (0 or 1), remaining, retry_after in microseconds}

local interval = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])

local capacity = limit * interval
-- A missing key, or one that holds something else, is an empty bucket.
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
    tat = now
end
local new_tat = tat + interval
local used = new_tat - now

if used > capacity then
    -- Denied: the state does not move.
    return {0, 0, used - capacity}
end

-- Keep the TAT until it passes, rounded up to whole milliseconds: after that a missing key
-- means the same thing. '%.0f' prints the integer exactly (tostring would round to 14 digits).
local ttl_ms = math.max(math.ceil(used / 1000), 1)
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', ttl_ms))
return {1, math.floor((capacity - used) / interval), 0}
