-- park.lua: a waiting caller in a dialog (recording notice, callback dialog) is parked: out
-- of its queue's `waiting` zset, so no agent is reserved for it meanwhile (the callers behind
-- are served), its record and score kept so that unparking puts it back in its place.
--
-- KEYS[1]  events stream
-- KEYS[2]  call:<call_id>
-- ARGV[1]  key prefix (queue:<q>:waiting of the call's queue is built from it)
-- ARGV[2]  now
-- ARGV[3]  call id
-- ARGV[4]  op: 'park' or 'unpark'
-- park: returns 1 if parked, 0 if the call is not waiting (an offer is already on its way).
-- unpark: returns 1 if the call is back in `waiting` with its score (its queue woken), 0 if
--   it was not parked (ended, offered, or a callback that registered meanwhile).

local call_id, op = ARGV[3], ARGV[4]
local c = redis.call('HMGET', KEYS[2], 'state', 'queue', 'score', 'parked')
local state, queue = c[1] or '', c[2] or ''
if op == 'park' then
  if state ~= 'waiting' or queue == '' or not c[3] then
    return 0
  end
  redis.call('ZREM', waiting_key(queue), call_id)
  redis.call('HSET', KEYS[2], 'parked', '1')
  return 1
end
if c[4] ~= '1' then
  return 0
end
redis.call('HDEL', KEYS[2], 'parked')
if state ~= 'waiting' or queue == '' then
  return 0
end
redis.call('ZADD', waiting_key(queue), c[3], call_id)
wake(queue)
return 1
