-- fetch.lua: pop up to ARGV[2] messages, highest-priority list first, and record each one as
-- unacked and owned by this worker in the same atomic step. A fetched message therefore never
-- exists only in the worker's memory: if the worker dies right after this script, the reaper
-- finds the message in its owned set and puts it back.
--
-- The unacked/unacked_index layout is kombu's (celery tooling reads it): unacked maps the
-- delivery tag to '[envelope, exchange, routing_key]', unacked_index scores it by delivery time.
--
-- KEYS[1]    unacked                  (hash)
-- KEYS[2]    unacked_index            (zset)
-- KEYS[3]    taskbox:owned:<worker>   (hash: tag -> list key it came from)
-- KEYS[4..]  queue list keys, in the order they must be drained
-- ARGV[1]    now, unix seconds as a float (kombu's unacked_index score)
-- ARGV[2]    the most messages to take
-- ARGV[3]    JSON object queue -> the most messages to take from that queue ('{}': no caps)
-- Returns    a flat array: list_key, tag, envelope, list_key, tag, envelope, ...

local out = {}
local max = tonumber(ARGV[2])
local taken = 0
local caps = {}
if ARGV[3] and ARGV[3] ~= '' and ARGV[3] ~= '{}' then
    caps = cjson.decode(ARGV[3])
end

local function queue_of(key)
    local sep = string.find(key, '\6\22', 1, true)
    if sep then
        return string.sub(key, 1, sep - 1)
    end
    return key
end

for i = 4, #KEYS do
    local queue = queue_of(KEYS[i])
    while taken < max and (caps[queue] == nil or caps[queue] > 0) do
        -- A queue key of the wrong type (someone SET it) is skipped, not fatal to the fetch.
        local raw = redis.pcall('RPOP', KEYS[i])
        if type(raw) ~= 'string' then
            break
        end
        local tag, exchange, routing_key
        local ok, envelope = pcall(cjson.decode, raw)
        if ok and type(envelope) == 'table' and type(envelope.properties) == 'table' then
            tag = envelope.properties.delivery_tag
            local info = envelope.properties.delivery_info
            if type(info) == 'table' then
                exchange = info.exchange
                routing_key = info.routing_key
            end
        end
        -- An undecodable message still gets a stable tag so it can be dead-lettered by tag.
        if type(tag) ~= 'string' or tag == '' then
            tag = 'taskbox-undecodable-' .. redis.sha1hex(raw)
        end
        -- Two messages with one tag (a producer reusing an envelope) must not share an unacked
        -- entry, or finishing one would silently drop the other: give the second its own.
        if redis.call('HEXISTS', KEYS[1], tag) == 1 then
            tag = tag .. '#' .. redis.sha1hex(raw .. ARGV[1] .. taken)
        end
        if type(exchange) ~= 'string' then
            exchange = ''
        end
        if type(routing_key) ~= 'string' then
            routing_key = queue_of(KEYS[i])
        end
        redis.call('HSET', KEYS[1], tag,
            '[' .. cjson.encode(raw) .. ',' .. cjson.encode(exchange) .. ',' .. cjson.encode(routing_key) .. ']')
        redis.call('ZADD', KEYS[2], ARGV[1], tag)
        redis.call('HSET', KEYS[3], tag, KEYS[i])
        out[#out + 1] = KEYS[i]
        out[#out + 1] = tag
        out[#out + 1] = raw
        taken = taken + 1
        if caps[queue] ~= nil then
            caps[queue] = caps[queue] - 1
        end
    end
    if taken >= max then
        break
    end
end
return out
