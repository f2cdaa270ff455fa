-- renew.lua: extend the beat lease, but only if it still holds exactly our token and holder
-- (compare-and-extend). A leader whose lease expired and was taken over learns it here.
--
-- KEYS[1]  lease key
-- ARGV[1]  "<token>:<holder id>"   ARGV[2]  lease time (ms)
-- Returns  1 when extended, 0 when the lease is gone or belongs to someone else

if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
