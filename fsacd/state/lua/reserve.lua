-- reserve.lua: THE atomic match of a queue's head call with free agents.
--
-- KEYS[1]  events stream
-- KEYS[2]  queue:<q>:waiting   zset of waiting calls
-- KEYS[3]  call:<call_id>      hash
-- KEYS[4]  queue:<q>:members   zset agent id -> position
-- KEYS[5]  queue:<q>           hash; rr_last (position of the agent offered last) is set
-- ARGV[1]  key prefix (agent keys are built from it)
-- ARGV[2]  now
-- ARGV[3]  queue name
-- ARGV[4]  call id: must still be the head of KEYS[2] and in state `waiting`
-- ARGV[5]  offer id (new, unique)
-- ARGV[6]  want: how many agents to take (0 = every free candidate: ring-all)
-- ARGV[7…] candidate agent ids in preference order
-- Returns nil when nothing changed (the call is no longer the head, or no candidate is free
-- any more), else {offer_id, owner, agent_id...}.
-- A head whose hash is not a waiting call of this queue cannot be served: it is dropped
-- from the zset (the queue is woken so matching moves on) and nil is returned.

local queue, call_id, offer_id, want = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local head = redis.call('ZRANGE', KEYS[2], 0, 0)
if head[1] ~= call_id then
  return false
end
local c = redis.call('HMGET', KEYS[3], 'state', 'queue', 'owner')
if c[1] ~= 'waiting' or c[2] ~= queue then
  redis.call('ZREM', KEYS[2], call_id)
  wake(queue)
  return false
end

local taken, seen = {}, {}
for i = 7, #ARGV do
  local id = ARGV[i]
  if not seen[id] then
    seen[id] = true
    if agent_free(id, KEYS[4]) then
      taken[#taken + 1] = id
      if want > 0 and #taken >= want then
        break
      end
    end
  end
end
if #taken == 0 then
  return false
end

local owner = c[3] or ''
local agents = table.concat(taken, ',')
redis.call('ZREM', KEYS[2], call_id)
redis.call('HSET', KEYS[3], 'state', 'offering', 'offer', offer_id, 'agents', agents,
           'state_since', NOW_S)
redis.call('HINCRBY', KEYS[3], 'offers', 1)
for _, id in ipairs(taken) do
  redis.call('HSET', agent_key(id), 'state', 'reserved', 'call', call_id, 'offer', offer_id,
             'owner', owner, 'last_offer_at', NOW_S, 'state_since', NOW_S)
  redis.call('ZREM', READY, id)
  emit('agent-state', {'agent', id, 'state', 'reserved', 'call', call_id, 'queue', queue,
                       'offer', offer_id})
end
local pos = redis.call('ZSCORE', KEYS[4], taken[1])
if pos then
  redis.call('HSET', KEYS[5], 'rr_last', pos)
end
emit('call-offered', {'call', call_id, 'queue', queue, 'offer', offer_id, 'agents', agents})
local out = {offer_id, owner}
for _, id in ipairs(taken) do
  out[#out + 1] = id
end
return out
