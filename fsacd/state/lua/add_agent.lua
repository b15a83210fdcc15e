-- add_agent.lua: create an agent (logged out, idle) or update its contact and queues.
--
-- KEYS[1]  events stream
-- KEYS[2]  agent:<id>
-- KEYS[3]  agents set
-- ARGV[1]  key prefix (queue:<q>:members and queue:<q>:free keys are built from it)
-- ARGV[2]  now
-- ARGV[3]  agent id
-- ARGV[4]  contact (dial string)
-- ARGV[5]  queues: JSON object name -> position (integer)
-- Returns 1 if created, 0 if updated.

local id, contact, queues_json = ARGV[3], ARGV[4], ARGV[5]
local new = cjson.decode(queues_json)
local created = 0
if redis.call('EXISTS', KEYS[2]) == 0 then
  created = 1
  redis.call('HSET', KEYS[2], 'id', id, 'status', 'logged-out', 'break_reason', '',
             'state', 'idle', 'state_since', NOW_S, 'call', '', 'offer', '', 'owner', '',
             'ready_at', '0', 'login_at', '', 'last_call_end', '', 'last_offer_at', '',
             'answered', 0, 'missed', 0, 'talk_time', '0', 'no_answer_streak', 0)
else
  for _, q in ipairs(agent_queues(id)) do
    if new[q] == nil then
      redis.call('ZREM', members_key(q), id)
      redis.call('ZREM', free_key(q), id)
    end
  end
end
for q, pos in pairs(new) do
  redis.call('ZADD', members_key(q), string.format('%d', pos), id)
end
redis.call('HSET', KEYS[2], 'contact', contact, 'queues', queues_json)
redis.call('SADD', KEYS[3], id)
local etype = 'agent-updated'
if created == 1 then
  etype = 'agent-added'
end
agent_mark(id)
emit(etype, {'agent', id, 'contact', contact, 'queues', queues_json})
wake_agent(id)
return created
