-- mark_ringing.lua: the agents of an offer are being rung (reserved -> ringing).
--
-- KEYS[1]  events stream
-- KEYS[2]  call:<call_id>
-- ARGV[1]  key prefix (agent keys are built from it)
-- ARGV[2]  now
-- ARGV[3]  call id
-- ARGV[4]  offer id
-- ARGV[5]  JSON object of call fields to set while the offer is live (legs, presentation:
--          written with the ringing, in the same round trip), or ''
-- ARGV[6…] agent ids (those still reserved for this offer change)
-- Returns {live, n, contact × #agents}: live = 1 while the call is still offering this
-- offer, n = agents changed, then each agent's contact ('' when unknown), in ARGV order.

local call_id, offer_id = ARGV[3], ARGV[4]
local c = redis.call('HMGET', KEYS[2], 'state', 'offer', 'queue')
if c[1] ~= 'offering' or c[2] ~= offer_id then
  return {0, 0}
end
if ARGV[5] ~= '' then
  for k, v in pairs(cjson.decode(ARGV[5])) do
    if type(v) == 'string' then
      redis.call('HSET', KEYS[2], k, v)
    end
  end
end
local n = 0
local contacts = {}
for i = 6, #ARGV do
  local id = ARGV[i]
  local key = agent_key(id)
  local a = redis.call('HMGET', key, 'state', 'call', 'offer', 'contact')
  contacts[#contacts + 1] = a[4] or ''
  if a[1] == 'reserved' and a[2] == call_id and a[3] == offer_id then
    redis.call('HSET', key, 'state', 'ringing', 'state_since', NOW_S)
    emit('agent-state', {'agent', id, 'state', 'ringing', 'call', call_id, 'queue', c[3],
                         'offer', offer_id})
    n = n + 1
    stats_put('agent', id, NOW, {'offered', 1})
    agent_mark(id)
  end
end
local out = {1, n}
for _, c in ipairs(contacts) do
  out[#out + 1] = c
end
return out
