-- restore.lua: put a worker's unfinished messages back at the consuming end of their queues
-- (RPUSH, as kombu's restore does, so they run next) and forget them as unacked. Used by a
-- worker on graceful shutdown for its own messages, and by any worker to reap a dead one.
--
-- The queue list keys come from the owned hash (they are where each message was fetched
-- from), so this script touches keys it did not declare: like kombu's own restore, it needs a
-- standalone or Sentinel-managed Redis, not Redis Cluster.
--
-- KEYS[1]  unacked   KEYS[2]  unacked_index   KEYS[3]  taskbox:owned:<worker>
-- KEYS[4]  dead-letter list                   KEYS[5]  taskbox:workers (zset)
-- ARGV[1]  worker id to remove from taskbox:workers, '' to keep it registered
-- ARGV[2]  now (ms), for dead-letter entries
-- ARGV[3..] tags to restore; none means every tag the worker owns
-- Returns  the number of messages put back

local tags = {}
if #ARGV > 2 then
    for i = 3, #ARGV do
        tags[#tags + 1] = ARGV[i]
    end
else
    tags = redis.call('HKEYS', KEYS[3])
end
local restored = 0
for _, tag in ipairs(tags) do
    local key = redis.call('HGET', KEYS[3], tag)
    -- Only messages this worker owns are touched: a tag it no longer owns may be another
    -- worker's now, and its unacked record is that worker's safety net.
    if key then
        local record = redis.call('HGET', KEYS[1], tag)
        if record then
            local ok, parts = pcall(cjson.decode, record)
            local pushed = false
            if ok and type(parts) == 'table' and type(parts[1]) == 'string' then
                pushed = redis.pcall('RPUSH', key, parts[1])
                pushed = type(pushed) == 'number'
            end
            if pushed then
                restored = restored + 1
            else
                redis.call('LPUSH', KEYS[4], cjson.encode({
                    reason = 'unacked record could not be restored to ' .. key,
                    kind = 'Restore', queue = key, list_key = key, at_ms = tonumber(ARGV[2]),
                    raw = (ok and type(parts) == 'table' and type(parts[1]) == 'string') and parts[1] or record }))
            end
            redis.call('HDEL', KEYS[1], tag)
            redis.call('ZREM', KEYS[2], tag)
        end
        redis.call('HDEL', KEYS[3], tag)
    end
end
if ARGV[1] ~= '' then
    redis.call('ZREM', KEYS[5], ARGV[1])
end
return restored
