-- finish.lua: everything that happens when a task is done, as one atomic step per task: publish
-- its follow-ups (chain step, callbacks, retry into the delayed set), store its results,
-- dead-letter it if it failed for good, and ack it. Because each step is atomic, a worker killed
-- at any point either did all of a task's step or none of it: a chain step is never published
-- twice and never lost.
--
-- One call carries the steps of one or more tasks (tasks that ended together share the round
-- trip and the script start-up); each step is applied and answered on its own.
--
-- Fencing: a step whose require-owned flag is '1' does nothing (answers 0) unless this worker
-- still owns the tag. A worker that was declared dead and whose task was redelivered elsewhere
-- must not ack or store anything for it.
--
-- KEYS[1]  unacked          KEYS[2]  unacked_index     KEYS[3]  taskbox:owned:<worker>
-- KEYS[4]  dead-letter list KEYS[5]  delayed zset
-- KEYS[6..]  each step's P list keys to LPUSH to, then its R result keys, step after step
-- ARGV[1]    the number of steps
-- ARGV[2..]  each step as 8 + P + R arguments, step after step:
--   tag, '1' to require ownership (late ack) or '0' (acked early), result expiry in seconds
--   ('0' for none), dead-letter entry ('' for none), delayed score in ms ('' for none), P, R,
--   delayed member, then P envelopes (matching the push keys) and R result JSON values
--   (matching the result keys; each is also PUBLISHed on its key)
-- Returns    one answer per step: 1 when applied, 0 when fenced off

-- Applies the step whose keys start at KEYS[k] and whose arguments start at ARGV[a].
local function apply(k, a, pushes, results)
    local tag = ARGV[a]
    local owned = redis.call('HEXISTS', KEYS[3], tag) == 1
    if ARGV[a + 1] == '1' and not owned then
        return 0
    end
    -- A push to a key of the wrong type (a signature naming a non-list "queue") must not abort
    -- the rest half-way: it is dead-lettered with the envelope instead.
    for i = 1, pushes do
        local key = KEYS[k + i - 1]
        local envelope = ARGV[a + 7 + i]
        local pushed = redis.pcall('LPUSH', key, envelope)
        if type(pushed) ~= 'number' then
            redis.call('LPUSH', KEYS[4], cjson.encode({
                reason = 'could not publish a follow-up task to ' .. key .. ': not a queue list',
                kind = 'Publish', list_key = key, raw = envelope }))
        end
    end
    local ttl = tonumber(ARGV[a + 2])
    for i = 1, results do
        local key = KEYS[k + pushes + i - 1]
        local value = ARGV[a + 7 + pushes + i]
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
    if ARGV[a + 4] ~= '' then
        redis.call('ZADD', KEYS[5], ARGV[a + 4], ARGV[a + 7])
    end
    if ARGV[a + 3] ~= '' then
        redis.call('LPUSH', KEYS[4], ARGV[a + 3])
    end
    -- Early-acked messages were already removed; only an owned tag is ours to remove.
    if owned then
        redis.call('HDEL', KEYS[1], tag)
        redis.call('ZREM', KEYS[2], tag)
        redis.call('HDEL', KEYS[3], tag)
    end
    return 1
end

local answers = {}
local k, a = 6, 2
for s = 1, tonumber(ARGV[1]) do
    local pushes = tonumber(ARGV[a + 5])
    local results = tonumber(ARGV[a + 6])
    answers[s] = apply(k, a, pushes, results)
    k = k + pushes + results
    a = a + 8 + pushes + results
end
return answers
