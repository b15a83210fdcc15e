-- contact_lookup.lua: the contacts having one number, in one round trip (the screen pop's
-- lookup when a call arrives, sent with the arrival: fsacd/state/contacts.py).
--
-- KEYS[1]  events stream (not written)
-- KEYS[2]  contacts:number:<e164>   set of the ids of the contacts with that number
-- ARGV[1]  key prefix (contact keys are built from it)
-- ARGV[2]  now
-- Returns {id, hash as a flat list, id, ...} for the ids whose contact hash exists, by id.

local ids = redis.call('SMEMBERS', KEYS[2])
table.sort(ids)
local out = {}
for _, id in ipairs(ids) do
  local h = redis.call('HGETALL', contact_key(id))
  if #h > 0 then
    out[#out + 1] = id
    out[#out + 1] = h
  end
end
return out
