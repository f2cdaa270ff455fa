-- acquire.lua: try to become the beat leader. The lease is one string key holding
-- "<fencing token>:<holder id>" with a time to live; whoever sets it leads until it expires.
-- Each successful acquisition takes a fresh fencing token from a counter that only grows, so
-- a replica that lost the lease (paused, partitioned) can never pass off its stale token as the
-- current one: fire.lua compares both before enqueueing anything.
--
-- KEYS[1]  lease key              KEYS[2]  fencing counter
-- ARGV[1]  holder id              ARGV[2]  lease time (ms)
-- Returns  the fencing token (> 0) when this holder now leads, 0 when another holder does

local current = redis.call('GET', KEYS[1])
if current then
    -- Still ours (a renewal reply was lost, say): keep the token we were given.
    local sep = string.find(current, ':', 1, true)
    if sep and string.sub(current, sep + 1) == ARGV[1] then
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        return tonumber(string.sub(current, 1, sep - 1))
    end
    return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ':' .. ARGV[1], 'NX', 'PX', ARGV[2])
return token
