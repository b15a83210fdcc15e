-- set_status.lua: an agent's status: login, logout, break, available. A call in progress is
-- not touched (after a logout it goes on; the agent is just not offered calls any more).
--
-- KEYS[1]  events stream
-- KEYS[2]  agent:<id>
-- ARGV[1]  key prefix (used for the wake channel)
-- ARGV[2]  now
-- ARGV[3]  agent id
-- ARGV[4]  op: 'login' | 'available' | 'break' | 'logout'
-- ARGV[5]  break reason (op 'break')
-- Returns the previous status, or nil if the agent is unknown.

local id, op, reason = ARGV[3], ARGV[4], ARGV[5]
local a = redis.call('HMGET', KEYS[2], 'status', 'state')
local old = a[1]
if not old then
  return false
end
local status = 'available'
local new_reason = ''
if op == 'login' or op == 'available' then
  redis.call('HSET', KEYS[2], 'status', 'available', 'break_reason', '', 'no_answer_streak', 0)
  if old == 'logged-out' then
    redis.call('HSET', KEYS[2], 'login_at', NOW_S)
  end
elseif op == 'break' then
  status = 'on-break'
  new_reason = reason
  redis.call('HSET', KEYS[2], 'status', status, 'break_reason', reason)
elseif op == 'logout' then
  status = 'logged-out'
  redis.call('HSET', KEYS[2], 'status', status, 'break_reason', '')
else
  return redis.error_reply('unknown op ' .. op)
end
emit('agent-status', {'agent', id, 'status', status, 'old', old, 'reason', new_reason,
                      'state', a[2] or ''})
agent_mark(id)
wake_agent(id)
return old
