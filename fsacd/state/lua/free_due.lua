-- free_due.lua: agents whose ready_at has come: wrap-up -> idle; their queues are woken
-- (also after a busy/reject/no-answer delay, when the state is already idle).
--
-- KEYS[1]  events stream
-- KEYS[2]  ready zset (agent id -> ready_at)
-- ARGV[1]  key prefix (agent keys are built from it)
-- ARGV[2]  now
-- Returns the queue names woken (PUBLISHed on the wake channel).

local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', NOW_S)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[2], id)
  local key = agent_key(id)
  local a = redis.call('HMGET', key, 'state', 'ready_at')
  if a[1] then
    if num(a[2]) > NOW then
      redis.call('ZADD', KEYS[2], a[2], id)
    else
      if a[1] == 'wrap-up' then
        redis.call('HSET', key, 'state', 'idle', 'state_since', NOW_S)
        emit('agent-state', {'agent', id, 'state', 'idle', 'reason', 'wrap-up-over'})
        agent_mark(id)
      end
      wake_agent(id)
    end
  end
end
return woken_list
