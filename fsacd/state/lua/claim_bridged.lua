-- claim_bridged.lua: FreeSWITCH bridged the caller to an agent although the offer was stale
-- in Redis (answered.lua refused it: the offer was cancelled or the agent released meanwhile,
-- or Redis was away when the bridge came). The agent *is* talking to this caller, so Redis is
-- made to say so: the agent in-call for the call, the call bridged to the agent. Whatever the
-- call or the agent held before is released. Refused only when the agent is in-call for
-- another call (a real conflict: both records stay, the caller's controller logs it).
--
-- KEYS[1]  events stream
-- KEYS[2]  call:<call_id>
-- ARGV[1]  key prefix (agent, queue and ready/calls keys are built from it)
-- ARGV[2]  now
-- ARGV[3]  call id
-- ARGV[4]  offer id (of the bridge that FreeSWITCH made)
-- ARGV[5]  agent id that answered
-- ARGV[6]  owner (controller id of the caller's socket)
-- Returns 1 when the records now say bridged, 0 when refused.

local call_id, offer_id, agent_id, owner = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = agent_key(agent_id)
local a = redis.call('HMGET', key, 'state', 'call', 'offer', 'id')
if not a[4] then
  return 0 -- no such agent (removed): nothing to make busy
end
if a[1] == 'in-call' and a[2] ~= call_id then
  return 0
end
local c = redis.call('HMGET', KEYS[2], 'state', 'queue', 'agents', 'offer')
local queue = c[2] or ''
-- the agent's earlier reservation for another call ends (that call's offer will fail)
if (a[1] == 'reserved' or a[1] == 'ringing') and a[2] ~= call_id and a[2] and a[2] ~= '' then
  emit('agent-state', {'agent', agent_id, 'state', 'idle', 'call', a[2], 'reason', 'taken'})
end
-- other agents still reserved for this call are released without penalty
for _, id in ipairs(split(c[3])) do
  if id ~= agent_id then
    release_agent(id, call_id, nil, 'none', nil, queue, 'lost')
  end
end
if c[1] == 'waiting' and queue ~= '' then
  redis.call('ZREM', waiting_key(queue), call_id)
end
redis.call('ZREM', READY, agent_id)
redis.call('HSET', key, 'state', 'in-call', 'call', call_id, 'offer', offer_id, 'owner', owner,
           'state_since', NOW_S, 'no_answer_streak', 0)
emit('agent-state', {'agent', agent_id, 'state', 'in-call', 'call', call_id, 'queue', queue,
                     'offer', offer_id, 'reason', 'claimed'})
agent_mark(agent_id)
sync_free(agent_id)
redis.call('HSET', KEYS[2], 'id', call_id, 'state', 'bridged', 'agent', agent_id, 'agents',
           agent_id, 'offer', offer_id, 'owner', owner, 'answered_at', NOW_S,
           'state_since', NOW_S)
redis.call('HDEL', KEYS[2], 'outcome', 'ended_at')
redis.call('PERSIST', KEYS[2])
redis.call('SADD', CALLS, call_id)
emit('call-bridged', {'call', call_id, 'queue', queue, 'agent', agent_id, 'offer', offer_id,
                      'reason', 'claimed'})
return 1
