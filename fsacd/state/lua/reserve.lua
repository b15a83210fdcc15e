-- reserve.lua: THE atomic match of a queue's waiting calls with free agents.
--
-- KEYS[1]  events stream
-- KEYS[2]  queue:<q>:waiting   zset of waiting calls
-- KEYS[3]  call:<call_id>      hash of the expected head call (unused when ARGV[4] is '')
-- KEYS[4]  queue:<q>:members   zset agent id -> position
-- KEYS[5]  queue:<q>           hash; rr_last (position of the agent offered last) is set;
--                              nothing is offered while its field paused is "1"
-- ARGV[1]  key prefix (agent and call keys are built from it)
-- ARGV[2]  now
-- ARGV[3]  queue name
-- ARGV[4]  call id that must still be the head of KEYS[2], or '' to serve whatever calls head
--          the queue now, in order
-- ARGV[5]  offer ids (new, unique), comma-separated: one per call to serve at most
-- ARGV[6]  want: how many agents per call (0 = every free candidate: ring-all, one call)
-- ARGV[7…] candidate agent ids in preference order; each call takes the next free ones
-- Returns nil when nothing changed (the expected call is no longer the head, or no candidate
-- is free any more), else a flat list of offers: {offer_id, call_id, owner, n, agent_id × n,
-- offer_id, …}.
-- A waiting call whose hash is not a waiting call of this queue cannot be served: it is
-- dropped from the zset (the queue is woken so matching moves on).

local queue, expected, want = ARGV[3], ARGV[4], tonumber(ARGV[6])
local offer_ids = split(ARGV[5])
if redis.call('HGET', KEYS[5], 'paused') == '1' or #offer_ids == 0 then
  return false
end
local calls
if expected ~= '' then
  calls = redis.call('ZRANGE', KEYS[2], 0, 0)
  if calls[1] ~= expected then
    return false
  end
else
  calls = redis.call('ZRANGE', KEYS[2], 0, #offer_ids - 1)
end

local cands, seen = {}, {}
for i = 7, #ARGV do
  cands[#cands + 1] = ARGV[i]
end
local next_i = 1
-- the next free candidates (want of them; all when want is 0), or an empty list
local function take()
  local taken = {}
  while next_i <= #cands do
    local id = cands[next_i]
    next_i = next_i + 1
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
  return taken
end

return offer_calls(queue, calls, offer_ids, want, take, KEYS[2], KEYS[4], KEYS[5], sync_free,
                   expected ~= '')
