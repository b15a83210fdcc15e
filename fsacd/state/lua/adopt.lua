-- adopt.lua: a controller takes over a call whose owner is dead (lease lapsed), so only
-- one survivor watches it; the agents the call holds get the new owner too.
--
-- KEYS[1]  events stream
-- KEYS[2]  call:<call_id>
-- ARGV[1]  key prefix (agent keys are built from it)
-- ARGV[2]  now
-- ARGV[3]  call id
-- ARGV[4]  the dead owner we expect (the adoption fails if someone else was faster)
-- ARGV[5]  the new owner
-- Returns 1 if adopted, 0 if the call is gone, ended or no longer owned by ARGV[4].

local call_id, old, new = ARGV[3], ARGV[4], ARGV[5]
local c = redis.call('HMGET', KEYS[2], 'state', 'owner', 'agent', 'agents', 'queue')
if not c[1] or c[1] == 'ended' or (c[2] or '') ~= old then
  return 0
end
redis.call('HSET', KEYS[2], 'owner', new)
local seen = {}
for _, list in ipairs({c[3] or '', c[4] or ''}) do
  for _, id in ipairs(split(list)) do
    if not seen[id] then
      seen[id] = true
      local key = agent_key(id)
      if redis.call('HGET', key, 'call') == call_id then
        redis.call('HSET', key, 'owner', new)
      end
    end
  end
end
emit('call-adopted', {'call', call_id, 'queue', c[5] or '', 'old_owner', old, 'owner', new})
return 1
