-- move_call.lua: overflow: a waiting call moves to another queue with its score (priority
-- and seq) unchanged.
--
-- KEYS[1]  events stream
-- KEYS[2]  call:<call_id>
-- KEYS[3]  queue:<to>:waiting
-- ARGV[1]  key prefix (the waiting zset of the queue it leaves is built from it)
-- ARGV[2]  now
-- ARGV[3]  call id
-- ARGV[4]  target queue name
-- ARGV[5]  reason (e.g. 'max-wait')
-- Returns 1 if moved, 0 if the call is not waiting (offering, bridged, ended, unknown).

local call_id, to, reason = ARGV[3], ARGV[4], ARGV[5]
local c = redis.call('HMGET', KEYS[2], 'state', 'queue', 'score', 'entered_at')
if c[1] ~= 'waiting' then
  return 0
end
local from = c[2] or ''
if from ~= '' then
  redis.call('ZREM', waiting_key(from), call_id)
end
redis.call('ZADD', KEYS[3], c[3], call_id)
redis.call('HSET', KEYS[2], 'queue', to, 'state_since', NOW_S)
redis.call('HINCRBY', KEYS[2], 'overflows', 1)
if from ~= '' then
  redis.call('ZREM', inqueue_key(from), call_id)
  stats_put('queue', from, NOW, {'overflowed', 1})
  queue_live(from)
end
redis.call('ZADD', inqueue_key(to), c[4] or NOW_S, call_id)
stats_put('queue', to, NOW, {'offered', 1})
queue_live(to)
emit('call-overflowed', {'call', call_id, 'queue', to, 'from', from, 'reason', reason})
wake(to)
return 1
