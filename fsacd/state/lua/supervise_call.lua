-- supervise_call.lua: a supervisor moves a waiting call to another queue (keeping its score:
-- priority and arrival) or gives it another priority (a new score, same arrival).
--
-- KEYS[1]  events stream
-- KEYS[2]  call:<call_id>
-- ARGV[1]  key prefix (the waiting zsets are built from it)
-- ARGV[2]  now
-- ARGV[3]  op: 'move' or 'priority'
-- ARGV[4]  call id
-- ARGV[5]  move: target queue name; priority: the new priority (0..PRIORITY_MAX)
-- ARGV[6]  PRIORITY_MAX
-- ARGV[7]  who asked (for the event)
-- Returns {1, old value} when done (old queue / old priority), {0, why} when the call is not
-- waiting in its queue ('unknown', its state, or 'not-queued' for a scheduled callback).

local op, call_id, arg, pmax, by = ARGV[3], ARGV[4], ARGV[5], num(ARGV[6]), ARGV[7]
local c = redis.call('HMGET', KEYS[2], 'state', 'queue', 'score', 'seq', 'priority')
if not c[1] then
  return {0, 'unknown'}
end
if c[1] ~= 'waiting' then
  return {0, c[1]}
end
local from = c[2] or ''
if from == '' or not redis.call('ZSCORE', waiting_key(from), call_id) then
  return {0, 'not-queued'}
end
if op == 'move' then
  if arg == from then
    return {0, 'already-there'}
  end
  redis.call('ZREM', waiting_key(from), call_id)
  redis.call('ZADD', waiting_key(arg), c[3], call_id)
  redis.call('HSET', KEYS[2], 'queue', arg, 'state_since', NOW_S)
  emit('call-moved', {'call', call_id, 'queue', arg, 'from', from, 'by', by})
  wake(arg)
  return {1, from}
end
local prio = num(arg)
local score = string.format('%.0f', (pmax - prio) * 1099511627776 + num(c[4]))
redis.call('ZADD', waiting_key(from), score, call_id)
redis.call('HSET', KEYS[2], 'priority', string.format('%d', prio), 'score', score)
emit('call-priority', {'call', call_id, 'queue', from, 'priority', string.format('%d', prio),
                       'from', c[5] or '0', 'by', by})
wake(from)
return {1, c[5] or '0'}
