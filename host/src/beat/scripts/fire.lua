-- fire.lua: enqueue one occurrence of a periodic entry, or mark occurrences as passed over,
-- in one atomic step. Everything that makes "each occurrence at most once" true is checked
-- here, inside Redis, so no clock or process pause on the caller's side can break it:
--
--   1. the caller still holds the lease (same holder and fencing token), and the token is
--      still the newest ever handed out; otherwise it is fenced off and nothing changes;
--   2. the occurrence is newer than anything already enqueued or passed over for the entry.
--      Occurrences of an entry are instants that only move forward, so the newest one done
--      is the dedupe record: an occurrence at or before it was handled (by this leader or a
--      previous one) and is refused;
--   3. the Celery message goes onto the queue list (LPUSH, like a Celery producer), the queue's
--      kombu bindings are declared, and the entry's last run is recorded.
--
-- KEYS[1]  lease key                KEYS[2]  fencing counter
-- KEYS[3]  last-run hash (entry -> ms of the newest occurrence enqueued)
-- KEYS[4]  since hash (entry -> ms before which occurrences no longer count)
-- KEYS[5]  queue list               KEYS[6]  _kombu.binding.<queue>
-- KEYS[7]  _kombu.binding_permanent.<queue>
-- ARGV[1]  "<token>:<holder id>"    ARGV[2]  token
-- ARGV[3]  entry name               ARGV[4]  occurrence (ms since the epoch)
-- ARGV[5]  Celery envelope, or '' to only mark occurrences up to ARGV[4] as passed over
-- ARGV[6]  kombu binding member
-- Returns  1 enqueued, 2 marked passed over, 0 already handled, -1 fenced off

if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[2] then
    return -1
end
local at = tonumber(ARGV[4])
local last = tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or '') or -1
local since = tonumber(redis.call('HGET', KEYS[4], ARGV[3]) or '') or -1
if at <= last or at <= since then
    return 0
end
if ARGV[5] == '' then
    redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
    return 2
end
redis.call('LPUSH', KEYS[5], ARGV[5])
redis.call('SADD', KEYS[6], ARGV[6])
redis.call('SADD', KEYS[7], ARGV[6])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
return 1
