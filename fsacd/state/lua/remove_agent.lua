-- remove_agent.lua: delete an agent unless it is reserved, ringing or in a call.
--
-- KEYS[1]  events stream
-- KEYS[2]  agent:<id>
-- KEYS[3]  agents set
-- KEYS[4]  ready zset
-- ARGV[1]  key prefix (queue:<q>:members and queue:<q>:free keys are built from it)
-- ARGV[2]  now
-- ARGV[3]  agent id
-- Returns {'ok'}, {'unknown'} or {'busy', state, call}.

local id = ARGV[3]
local a = redis.call('HMGET', KEYS[2], 'state', 'call')
if not a[1] then
  redis.call('SREM', KEYS[3], id)
  return {'unknown'}
end
if a[1] == 'reserved' or a[1] == 'ringing' or a[1] == 'in-call' then
  return {'busy', a[1], a[2] or ''}
end
for _, q in ipairs(agent_queues(id)) do
  redis.call('ZREM', members_key(q), id)
  redis.call('ZREM', free_key(q), id)
end
agent_mark(id, true)
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
emit('agent-removed', {'agent', id})
return {'ok'}
