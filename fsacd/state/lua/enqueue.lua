-- enqueue.lua: a call enters a queue, or re-enters one (it keeps its seq, hence its place
-- among calls of the same priority).
--
-- KEYS[1]  events stream
-- KEYS[2]  call:<call_id>
-- KEYS[3]  calls set
-- KEYS[4]  seq counter
-- KEYS[5]  queue:<q>:waiting of the target queue
-- ARGV[1]  key prefix (the waiting zset of a queue the call leaves is built from it)
-- ARGV[2]  now
-- ARGV[3]  call id
-- ARGV[4]  queue name
-- ARGV[5]  priority (already clamped to 0..PRIORITY_MAX)
-- ARGV[6]  PRIORITY_MAX
-- ARGV[7]  owner (controller id)
-- ARGV[8]  JSON object of further string fields for the call hash (number, name, ...)
-- ARGV[9]  '1': enter parked (a dialog comes first, see park.lua): the call has its place
--          but is not in `waiting` until unparked; else '' (optional)
-- Returns {seq, score, new} (new = 1 for a first arrival); an error reply if the call is
-- offering or bridged.

local call_id, queue, prio, pmax, owner = ARGV[3], ARGV[4], num(ARGV[5]), num(ARGV[6]), ARGV[7]
local c = redis.call('HMGET', KEYS[2], 'state', 'queue', 'seq', 'entered_at')
local state = c[1]
if state == 'offering' or state == 'bridged' then
  return redis.error_reply('call ' .. call_id .. ' is ' .. state)
end
local seq = c[3]
local fresh = 0
if not seq or seq == '' then
  seq = tostring(redis.call('INCR', KEYS[4]))
  fresh = 1
end
local score = string.format('%.0f', (pmax - prio) * 1099511627776 + tonumber(seq))
if state == 'waiting' and c[2] and c[2] ~= queue then
  redis.call('ZREM', waiting_key(c[2]), call_id)
end
if state == 'ended' then
  redis.call('HDEL', KEYS[2], 'outcome', 'ended_at', 'agent', 'answered_at')
  redis.call('PERSIST', KEYS[2])
end
local extra = cjson.decode(ARGV[8])
for k, v in pairs(extra) do
  if type(v) == 'string' then
    redis.call('HSET', KEYS[2], k, v)
  end
end
redis.call('HSET', KEYS[2], 'id', call_id, 'queue', queue, 'priority', string.format('%d', prio),
           'seq', seq, 'score', score, 'state', 'waiting', 'owner', owner, 'offer', '',
           'agents', '', 'state_since', NOW_S)
if not c[4] then
  redis.call('HSET', KEYS[2], 'entered_at', NOW_S)
end
local parked = ARGV[9] == '1'
if parked then
  redis.call('HSET', KEYS[2], 'parked', '1')
else
  redis.call('HDEL', KEYS[2], 'parked')
  redis.call('ZADD', KEYS[5], score, call_id)
end
redis.call('SADD', KEYS[3], call_id)
-- figures: offered = entered this queue: a first arrival or from another queue (a call handed
-- back by a draining controller and queued again in the same queue stays one offer)
local entered = c[4] or NOW_S
if c[2] and c[2] ~= queue then
  redis.call('ZREM', inqueue_key(c[2]), call_id)
  queue_live(c[2])
end
redis.call('ZADD', inqueue_key(queue), entered, call_id)
if fresh == 1 or c[2] ~= queue then
  stats_put('queue', queue, NOW, {'offered', 1})
end
queue_live(queue)
local reentry = ''
if fresh == 0 then
  reentry = '1'
end
emit('call-entered', {'call', call_id, 'queue', queue, 'priority', string.format('%d', prio),
                      'number', extra['number'] or '', 'reentry', reentry})
if not parked then
  wake(queue)
end
return {seq, score, fresh}
