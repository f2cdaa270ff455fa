-- finish.lua: everything that happens when a task is done, as one atomic step: publish its
-- follow-ups (chain step, callbacks, retry into the delayed set), store its results, dead-letter
-- it if it failed for good, and ack it. Because it is atomic, a worker killed at any point either
-- did all of it or none of it: a chain step is never published twice and never lost.
--
-- Fencing: with ARGV[2] == '1' the script does nothing (returns 0) unless this worker still owns
-- the tag. A worker that was declared dead and whose task was redelivered elsewhere must not
-- ack or store anything for it.
--
-- KEYS[1]  unacked          KEYS[2]  unacked_index     KEYS[3]  taskbox:owned:<worker>
-- KEYS[4]  dead-letter list KEYS[5]  delayed zset
-- KEYS[6 .. 5+P]            list keys to LPUSH to (P = ARGV[6])
-- KEYS[6+P .. 5+P+R]        result keys to SET (R = ARGV[7])
-- ARGV[1]  delivery tag
-- ARGV[2]  '1' to require ownership (late ack), '0' when the message was acked early
-- ARGV[3]  result expiry in seconds, '0' for none
-- ARGV[4]  dead-letter entry, '' for none
-- ARGV[5]  delayed score (ms), '' for none; ARGV[8] is then the delayed member
-- ARGV[6]  P, the number of pushes     ARGV[7]  R, the number of results
-- ARGV[9 .. 8+P]            envelopes to push, matching the push keys
-- ARGV[9+P .. 8+P+R]        result JSON, matching the result keys (also PUBLISHed on the key)
-- Returns  1 when applied, 0 when fenced off

local tag = ARGV[1]
if ARGV[2] == '1' and redis.call('HEXISTS', KEYS[3], tag) == 0 then
    return 0
end
local pushes = tonumber(ARGV[6])
local results = tonumber(ARGV[7])
for i = 1, pushes do
    redis.call('LPUSH', KEYS[5 + i], ARGV[8 + i])
end
local ttl = tonumber(ARGV[3])
for i = 1, results do
    local key = KEYS[5 + pushes + i]
    local value = ARGV[8 + pushes + i]
    if ttl > 0 then
        redis.call('SETEX', key, ttl, value)
    else
        redis.call('SET', key, value)
    end
    redis.call('PUBLISH', key, value)
end
if ARGV[5] ~= '' then
    redis.call('ZADD', KEYS[5], ARGV[5], ARGV[8])
end
if ARGV[4] ~= '' then
    redis.call('LPUSH', KEYS[4], ARGV[4])
end
redis.call('HDEL', KEYS[1], tag)
redis.call('ZREM', KEYS[2], tag)
redis.call('HDEL', KEYS[3], tag)
return 1
