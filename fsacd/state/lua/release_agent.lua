-- release_agent.lua: free an agent left reserved, ringing or in a call by a dead controller
-- whose call record is gone or over, once FreeSWITCH says the agent's leg is gone.
--
-- KEYS[1]  events stream
-- KEYS[2]  agent:<agent_id>
-- ARGV[1]  key prefix (queue keys for the wake are built from it)
-- ARGV[2]  now
-- ARGV[3]  agent id
-- ARGV[4]  the call id the agent is expected to hold (nothing happens if it holds another)
-- ARGV[5]  reason (recorded in the agent-state event)
-- Returns 1 if released, 0 otherwise.

local agent_id, call_id, reason = ARGV[3], ARGV[4], ARGV[5]
local a = redis.call('HMGET', KEYS[2], 'state', 'call')
if a[1] ~= 'reserved' and a[1] ~= 'ringing' and a[1] ~= 'in-call' then
  return 0
end
if (a[2] or '') ~= call_id then
  return 0
end
redis.call('HSET', KEYS[2], 'state', 'idle', 'state_since', NOW_S, 'call', '', 'offer', '',
           'owner', '')
emit('agent-state', {'agent', agent_id, 'state', 'idle', 'call', call_id, 'reason', reason})
agent_mark(agent_id)
wake_agent(agent_id)
return 1
