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
local owned = redis.call('HEXISTS', KEYS[3], tag) == 1
if ARGV[2] == '1' and not owned then
    return 0
end
local pushes = tonumber(ARGV[6])
local results = tonumber(ARGV[7])
-- A push to a key of the wrong type (a signature naming a non-list "queue") must not abort the
-- rest half-way: it is dead-lettered with the envelope instead.
for i = 1, pushes do
    local pushed = redis.pcall('LPUSH', KEYS[5 + i], ARGV[8 + i])
    if type(pushed) ~= 'number' then
        redis.call('LPUSH', KEYS[4], cjson.encode({
            reason = 'could not publish a follow-up task to ' .. KEYS[5 + i] .. ': not a queue list',
            kind = 'Publish', list_key = KEYS[5 + i], raw = ARGV[8 + i] }))
    end
end
local ttl = tonumber(ARGV[3])
for i = 1, results do
    local key = KEYS[5 + pushes + i]
    local value = ARGV[8 + pushes + i]
    -- As Celery's backend does, a stored SUCCESS is never overwritten (a late duplicate run
    -- must not replace it).
    local current = redis.pcall('GET', key)
    local done = type(current) == 'string'
        and (string.find(current, '"status":"SUCCESS"', 1, true) or string.find(current, '"status": "SUCCESS"', 1, true))
    if not done then
        if ttl > 0 then
            redis.pcall('SETEX', key, ttl, value)
        else
            redis.pcall('SET', key, value)
        end
        redis.call('PUBLISH', key, value)
    end
end
if ARGV[5] ~= '' then
    redis.call('ZADD', KEYS[5], ARGV[5], ARGV[8])
end
if ARGV[4] ~= '' then
    redis.call('LPUSH', KEYS[4], ARGV[4])
end
-- Early-acked messages were already removed; only an owned tag is ours to remove.
if owned then
    redis.call('HDEL', KEYS[1], tag)
    redis.call('ZREM', KEYS[2], tag)
    redis.call('HDEL', KEYS[3], tag)
end
return 1
