-- release.lua: give up the beat lease on shutdown so a standby replica takes over at its next
-- tick instead of waiting out the lease time. Deletes only our own lease.
--
-- KEYS[1]  lease key
-- ARGV[1]  "<token>:<holder id>"
-- Returns  1 when released, 0 when it was not ours any more

if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
