-- promote.lua: move delayed messages (countdown, ETA, retry backoff) whose time has come onto
-- their queues. Delayed messages live in Redis, not in worker memory, so they survive restarts;
-- removal and push happen in one atomic step, so exactly one worker promotes each message.
--
-- Members are JSON '[list_key, envelope, nonce]'; the list key is read from the member, so (like
-- restore.lua) this needs a standalone or Sentinel-managed Redis.
--
-- KEYS[1]  taskbox:delayed (zset scored by due time in ms)
-- KEYS[2]  dead-letter list
-- ARGV[1]  now (ms)      ARGV[2]  the most messages to move
-- Returns  the number of messages moved

local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
    redis.call('ZREM', KEYS[1], member)
    local ok, item = pcall(cjson.decode, member)
    local pushed = false
    if ok and type(item) == 'table' and type(item[1]) == 'string' and type(item[2]) == 'string' then
        pushed = type(redis.pcall('RPUSH', item[1], item[2])) == 'number'
    end
    if not pushed then
        redis.call('LPUSH', KEYS[2], cjson.encode({
            reason = 'delayed entry could not be moved to its queue (not [list_key, envelope] or not a list)', kind = 'Delayed',
            at_ms = tonumber(ARGV[1]), raw = member }))
    end
end
return #due
