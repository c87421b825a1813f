-- GCRA: take up to n attempts at once against a rate limit. This mirrors `gcra::take` in
-- gcra.rs line for line; change both together. Times are microseconds on Redis's clock (TIME),
-- so every Purser instance agrees. Lua numbers are doubles: exact for integers below 2^53
-- (about 285 years of microseconds since 1970 plus a window of at most a year), so the
-- arithmetic is exact.
--
-- KEYS[1]  the rate-limit key; holds the theoretical arrival time (TAT) while it is ahead
-- ARGV[1]  the emission interval T in microseconds (window / limit, at least 1)
-- ARGV[2]  the limit (the burst)
-- ARGV[3]  how many attempts are wanted (1 to the limit)
-- returns  {granted (0 to wanted), remaining, retry_after in microseconds}

local interval = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local wanted = math.min(math.max(tonumber(ARGV[3]), 1), limit)
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])

local capacity = limit * interval
-- A missing key, or one that holds something else, is an empty bucket.
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
    tat = now
end
local ahead = tat - now
local fits = math.floor(math.max(capacity - ahead, 0) / interval)
local granted = math.min(wanted, fits)

if granted == 0 then
    -- Denied: the state does not move; one attempt fits once the TAT is back in the bucket.
    return {0, 0, ahead + interval - capacity}
end

local new_tat = tat + granted * interval
local used = new_tat - now
-- Keep the TAT until it passes, rounded up to whole milliseconds: after that a missing key
-- means the same thing. '%.0f' prints the integer exactly (tostring would round to 14 digits).
local ttl_ms = math.max(math.ceil(used / 1000), 1)
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', ttl_ms))
return {granted, math.floor(math.max(capacity - used, 0) / interval), 0}
