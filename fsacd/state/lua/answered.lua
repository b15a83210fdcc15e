-- answered.lua: an agent of the offer answered: it goes in-call, the call is bridged, the
-- offer's other agents are released at once without penalty.
--
-- KEYS[1]  events stream
-- KEYS[2]  call:<call_id>
-- ARGV[1]  key prefix (agent keys are built from it)
-- ARGV[2]  now
-- ARGV[3]  call id
-- ARGV[4]  offer id
-- ARGV[5]  agent id that answered
-- Returns 1 if the call is now bridged to the agent, 0 if refused (stale offer, call no
-- longer offering, agent not reserved/ringing for this offer): nothing changed then.

local call_id, offer_id, agent_id = ARGV[3], ARGV[4], ARGV[5]
local c = redis.call('HMGET', KEYS[2], 'state', 'offer', 'queue', 'agents', 'entered_at')
if c[1] ~= 'offering' or c[2] ~= offer_id then
  return 0
end
local key = agent_key(agent_id)
local a = redis.call('HMGET', key, 'state', 'call', 'offer', 'state_since')
if (a[1] ~= 'reserved' and a[1] ~= 'ringing') or a[2] ~= call_id or a[3] ~= offer_id then
  return 0
end
local queue = c[3] or ''
redis.call('HSET', key, 'state', 'in-call', 'state_since', NOW_S, 'no_answer_streak', 0)
emit('agent-state', {'agent', agent_id, 'state', 'in-call', 'call', call_id, 'queue', queue,
                     'offer', offer_id})
for _, id in ipairs(split(c[4])) do
  if id ~= agent_id then
    release_agent(id, call_id, offer_id, 'lose-race', nil, queue, 'lost')
  end
end
redis.call('HSET', KEYS[2], 'state', 'bridged', 'agent', agent_id, 'answered_at', NOW_S,
           'state_since', NOW_S)
local waited = ''
if c[5] then
  waited = fmt_time(NOW - num(c[5]))
end
-- figures: answered (within the queue's service level?), wait and ring time
local wait = math.max(0, NOW - num(c[5] or NOW_S))
local ring = math.max(0, NOW - num(a[4] or NOW_S))
local sl = tonumber(redis.call('HGET', PREFIX .. 'queue:' .. queue, 'service_level_seconds'))
local in_sl = 0
if wait <= (sl or 20) then
  in_sl = 1
end
stats_put('queue', queue, NOW, {'answered', 1, 'answered_in_sl', in_sl},
          {'wait_answered', wait, 'ring_time', ring}, {'longest_wait', wait})
stats_observe(queue, 'wait', WAIT_BUCKETS, wait)
stats_observe(queue, 'ring', RING_BUCKETS, ring)
stats_put('agent', agent_id, NOW, {'answered', 1}, {'ring_time', ring})
agent_mark(agent_id)
redis.call('ZREM', inqueue_key(queue), call_id)
queue_live(queue, 1)
emit('call-bridged', {'call', call_id, 'queue', queue, 'agent', agent_id, 'offer', offer_id,
                      'waited', waited})
return 1
